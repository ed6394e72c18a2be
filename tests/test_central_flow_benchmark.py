"""benchmarks/central_flow.py, run in --quick mode by the smoke build: well-formed results, exact cost counts."""

from __future__ import annotations

import json
import math


def test_quick_run_writes_consistent_costs(smoke_build):
    payload = json.loads((smoke_build / "benchmarks/central_flow.json").read_text())
    results, steps = payload["results"], payload["results"]["steps"]
    assert "git_revision" in payload["provenance"] and payload["results"]["parameters"] == 433
    for name in ("central", "rod", "gradient_flow", "gd"):
        record = results[name]
        assert record["first_seconds"] > 0 and record["seconds"] > 0, name
        assert math.isfinite(record["final_loss"]) and record["final_loss"] > 0, name
    central = results["central"]
    assert central["gradients"] == 4 * steps  # one gradient per Euler substep, 4 substeps per GD step
    assert central["third_derivative_products"] == 4 * steps * 3  # k = 2: k (k + 1) / 2 per substep
    assert central["hvps"] >= 4 * steps * 5  # at least one block of 5 products per substep
    assert results["rod"]["gradients"] == 2 * results["rod"]["vector_field_evaluations"]
    assert results["gradient_flow"]["gradients"] == results["gradient_flow"]["vector_field_evaluations"]
    assert central["sharpness_lr"] <= 2.0 + 1e-3  # the central flow never exceeds the edge
    text = (smoke_build / "benchmarks/central_flow.md").read_text()
    assert "Cost per GD step" in text and "nan" not in text.lower()
