"""Every notebook executes in smoke mode through papermill, and leaves its checks and provenance."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from gdflows_book import runner

pytestmark = pytest.mark.notebooks
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", runner.available(ROOT))
def test_notebook_runs_in_smoke_mode(smoke_build, name):
    executed = smoke_build / "notebooks" / f"{name}.ipynb"
    notebook = nbformat.read(executed, as_version=4)
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    record = json.loads(executed.with_suffix(".provenance.json").read_text())
    assert record["mode"] == "smoke" and record["status"] == "ok"
    figure = name.split("_")[0]
    checks = json.loads((smoke_build / "checks" / f"{figure}.json").read_text())["checks"]
    assert checks and all(row["passed"] for row in checks)
    assert any(p.name.startswith(figure) for p in (smoke_build / "figures").glob("*.png"))
    assert any(p.name.startswith(figure) for p in (smoke_build / "figures").glob("*.pdf"))


def test_readme_example_runs_and_records_the_given_steps(tmp_path):
    """``reproduce --smoke F1 -p steps=50``: the user's value wins over the smoke value and is what the kernel used."""
    from gdflows_book.__main__ import main

    command = ["reproduce", "--smoke", "F1", "-p", "steps=50", "--root", str(ROOT), "--build-dir", str(tmp_path)]
    assert main(command) == 0
    record = json.loads((tmp_path / "notebooks" / "F1_oscillation.provenance.json").read_text())
    assert record["parameters"]["steps"] == 50 and record["mode"] == "custom" and record["status"] == "ok"
    assert record["parameters"]["learning_rates"] == [0.9, 1.0]
