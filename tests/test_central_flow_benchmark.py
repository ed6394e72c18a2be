"""benchmarks/central_flow.py: the published example's problem, and the --quick run of the smoke build."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
from conftest import ROOT


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("central_flow_benchmark", ROOT / "benchmarks" / "central_flow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_problem_is_the_published_example():
    """The data are the released example's float32 draws (x[0, :3] and the initial loss it prints), upcast.

    Drawn without a dtype under 64-bit mode they would be float64 draws: x[0, :3] = 1.880, -0.481, 0.415
    and initial loss 0.7857, another problem.
    """
    loss, loss32, p0, x, y = _benchmark_module().problem()
    np.testing.assert_allclose(np.asarray(x[0, :3]), [1.0040143, -0.9063372, -0.7481722], rtol=1e-6)
    assert x.dtype == np.float32 and y.dtype == np.float32 and p0.dtype == np.float64 and p0.shape == (433,)
    np.testing.assert_allclose(float(loss(p0)), 1.0598204, rtol=1e-6)
    np.testing.assert_allclose(float(loss32(p0.astype(np.float32))), float(loss(p0)), rtol=1e-6)


def test_quick_run_writes_consistent_costs(smoke_build):
    payload = json.loads((smoke_build / "benchmarks/central_flow.json").read_text())
    results, steps = payload["results"], payload["results"]["steps"]
    assert "git_revision" in payload["provenance"] and results["parameters"] == 433
    np.testing.assert_allclose(results["data"]["x_first"], [1.0040143, -0.9063372, -0.7481722], rtol=1e-6)
    for name in ("central", "rod", "gradient_flow", "gd"):
        record = results[name]
        assert record["first_seconds"] > 0 and record["seconds"] > 0, name
        assert math.isfinite(record["final_loss"]) and record["final_loss"] > 0, name
    central, tracked = results["central"], results["tracked"]
    assert central["gradients"] == 4 * steps  # one gradient per Euler substep, 4 substeps per GD step
    # k = "auto": every tracked pair enters the SDCP, tracked (tracked + 1) / 2 products per substep
    assert central["third_derivative_products"] == 4 * steps * tracked * (tracked + 1) // 2
    assert central["hvps"] >= 4 * steps * tracked  # at least one block of products per substep
    assert results["rod"]["gradients"] == 2 * results["rod"]["vector_field_evaluations"]
    assert results["gradient_flow"]["gradients"] == results["gradient_flow"]["vector_field_evaluations"]
    assert central["sharpness_lr"] <= 2.0 + 1e-3  # the central flow never exceeds the edge
    # float32 GD is the published reference: it differs from float64 GD, and both distances are reported
    assert results["gd_float32"]["distance_gd"] > 0 and "distance_gd_float32" in central
    text = (smoke_build / "benchmarks/central_flow.md").read_text()
    assert "Cost per GD step" in text and "nan" not in text.lower()
    assert "faster than the released" not in text  # quick mode makes no speed claim against 1,000 steps
