"""benchmarks/networks.py, run in --quick mode by the smoke build, writes well-formed results (no timing asserted)."""

from __future__ import annotations

import json
import math


def test_quick_run_writes_tables_json_and_figure(smoke_build):
    """The smoke build ran benchmarks/networks.py in --quick mode."""
    results = json.loads((smoke_build / "benchmarks/networks.json").read_text())
    assert results["mode"] == "quick"
    for key in ("parameters", "git_revision", "packages", "python", "machine"):  # the provenance 232e03f lost
        assert key in results["provenance"], f"networks.json has no provenance field {key!r}"
    rows = results["krylov_error"]["rows"]
    assert [row["m"] for row in rows] == results["settings"]["krylov_dims"]
    assert rows[-1]["real"] < 1e-8 and rows[-1]["complex"] < 1e-8  # m = 64 is exact on this network
    for row in results["cost"]:
        assert math.isfinite(row["krylov"]["median_s"]) and row["gd_steps_per_second"] > 0
        assert row["gd_tracked_steps_per_second"] > 0
    assert any("dense" in row for row in results["cost"])
    text = (smoke_build / "benchmarks/networks.md").read_text()
    assert "Krylov against dense" in text and "nan" not in text.lower()
    assert (smoke_build / "figures/benchmark_networks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
