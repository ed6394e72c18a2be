"""benchmarks/networks.py runs in --quick mode and writes well-formed results (no timing is asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_writes_tables_json_and_figure(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GDFLOWS_BUILD_DIR"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "networks.py"), "--quick", "--build-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"benchmarks/networks.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    results = json.loads((tmp_path / "benchmarks/networks.json").read_text())
    assert results["mode"] == "quick" and "git_revision" in results["provenance"]
    rows = results["krylov_error"]["rows"]
    assert [row["m"] for row in rows] == results["settings"]["krylov_dims"]
    assert rows[-1]["real"] < 1e-8 and rows[-1]["complex"] < 1e-8  # m = 64 is exact on this network
    for row in results["cost"]:
        assert math.isfinite(row["krylov"]["median_s"]) and row["gd_steps_per_second"] > 0
        assert row["gd_tracked_steps_per_second"] > 0
    assert any("dense" in row for row in results["cost"])
    text = (tmp_path / "benchmarks/networks.md").read_text()
    assert "Krylov against dense" in text and "nan" not in text.lower()
    assert (tmp_path / "figures/benchmark_networks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
