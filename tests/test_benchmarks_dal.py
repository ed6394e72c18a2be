"""benchmarks/dal.py, run in --quick mode by the smoke build, writes well-formed results (no timing is asserted)."""

from __future__ import annotations

import json
import math


def test_dal_benchmark_quick(smoke_build):
    """The smoke build ran benchmarks/dal.py in --quick mode."""
    results = json.loads((smoke_build / "benchmarks" / "dal.json").read_text())
    assert results["mode"] == "quick"
    for key in ("parameters", "git_revision", "packages", "python", "machine"):
        assert key in results["provenance"]
    assert [row["width"] for row in results["rows"]] == results["settings"]["widths"]
    for row in results["rows"]:
        assert set(row["methods"]) == {"GD", "DAL, exact Hg", "DAL, finite difference"}
        for timing in row["methods"].values():
            assert all(math.isfinite(timing[k]) and timing[k] > 0 for k in ("first_call_s", "median_s"))
        assert all(math.isfinite(v) and v > 0 for v in row["overhead"].values())
    text = (smoke_build / "benchmarks" / "dal.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(results["rows"])
    assert len({line.count("|") for line in table}) == 1, "ragged table"
    assert "nan" not in text.lower() and "inf |" not in text.lower()
