"""Every notebook executes in smoke mode through papermill, and leaves its checks and provenance."""

from __future__ import annotations

import json

import nbformat
import pytest

from gdflows import reproduce

pytestmark = pytest.mark.notebooks


@pytest.mark.parametrize("name", reproduce.available())
def test_notebook_runs_in_smoke_mode(smoke_build, name):
    executed = smoke_build / "notebooks" / f"{name}.ipynb"
    notebook = nbformat.read(executed, as_version=4)
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    record = json.loads(executed.with_suffix(".provenance.json").read_text())
    assert record["parameters"]["smoke"] == "True"
    figure = name.split("_")[0]
    checks = json.loads((smoke_build / "checks" / f"{figure}.json").read_text())
    assert checks and all(row["passed"] for row in checks)
    assert any(p.name.startswith(figure) for p in (smoke_build / "figures").glob("*.png"))
    assert any(p.name.startswith(figure) for p in (smoke_build / "figures").glob("*.pdf"))
