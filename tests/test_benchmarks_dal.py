"""benchmarks/dal.py runs in --quick mode and writes well-formed results (no timing is asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dal_benchmark_quick(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GDFLOWS_BUILD_DIR"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "dal.py"), "--quick", "--build-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"benchmarks/dal.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    results = json.loads((tmp_path / "benchmarks" / "dal.json").read_text())
    assert results["mode"] == "quick"
    for key in ("parameters", "git_revision", "packages", "python", "machine"):
        assert key in results["provenance"]
    assert [row["width"] for row in results["rows"]] == results["settings"]["widths"]
    for row in results["rows"]:
        assert set(row["methods"]) == {"GD", "DAL, exact Hg", "DAL, finite difference"}
        for timing in row["methods"].values():
            assert all(math.isfinite(timing[k]) and timing[k] > 0 for k in ("first_call_s", "median_s"))
        assert all(math.isfinite(v) and v > 0 for v in row["overhead"].values())
    text = (tmp_path / "benchmarks" / "dal.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(results["rows"])
    assert len({line.count("|") for line in table}) == 1, "ragged table"
    assert "nan" not in text.lower() and "inf |" not in text.lower()
