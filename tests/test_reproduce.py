"""The reproduce command: notebook selection, parameters, failures that name the cell, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from gdflows import reproduce as rp
from gdflows.__main__ import main


def make_notebook(folder: Path, name: str, body: str) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_code_cell("smoke = False\nsteps = 3", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ]
    (folder / "notebooks").mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / "notebooks" / f"{name}.ipynb")


def test_select_resolves_prefixes_and_lists_valid_names():
    names = rp.available()
    assert {"F1_oscillation", "F2_divergence", "F3_coefficient"} <= set(names)
    assert rp.select(["F1"]) == ["F1_oscillation"]
    with pytest.raises(rp.ReproduceError, match="unknown notebook 'F99'; valid names: F1_oscillation"):
        rp.select(["F99"])


def test_unknown_parameter_names_the_valid_ones(tmp_path):
    with pytest.raises(rp.ReproduceError, match="F1_oscillation has no parameter 'stepz'.*steps"):
        rp.execute("F1_oscillation", smoke=True, build=tmp_path, overrides={"stepz": 3})


def test_command_line_reports_errors_and_exits_non_zero(capsys):
    assert main(["reproduce", "--smoke", "NOPE"]) == 1
    assert "unknown notebook 'NOPE'" in capsys.readouterr().err
    assert main(["reproduce", "F1", "-p", "oops"]) == 1
    assert "must look like name=value" in capsys.readouterr().err


def test_parameters_are_parsed_as_json():
    assert rp.parse_parameters(["steps=10", "smoke=true", "lrs=[0.1, 0.2]", "name=abc"]) == {
        "steps": 10,
        "smoke": True,
        "lrs": [0.1, 0.2],
        "name": "abc",
    }


def test_a_failing_notebook_names_the_cell_and_the_error(tmp_path):
    make_notebook(tmp_path, "X1_fails", "assert steps > 5, f'steps is {steps}'")
    with pytest.raises(rp.ReproduceError, match=r"notebook X1_fails failed in cell 2 .*AssertionError: steps is 3"):
        rp.execute("X1_fails", smoke=True, build=tmp_path / "build", root=tmp_path)


def test_a_passing_notebook_gets_provenance(tmp_path):
    make_notebook(tmp_path, "X2_passes", "print(steps * 2)")
    outcome = rp.execute("X2_passes", smoke=True, build=tmp_path / "build", overrides={"steps": 4}, root=tmp_path)
    assert outcome.status == "ok"
    record = json.loads((tmp_path / "build" / "notebooks" / "X2_passes.provenance.json").read_text())
    assert record["parameters"]["steps"] == "4" and record["parameters"]["smoke"] == "True"
    assert {"jax", "diffrax", "gdflows"} <= set(record["packages"]) and record["git_revision"]
    executed = nbformat.read(tmp_path / "build" / "notebooks" / "X2_passes.ipynb", as_version=4)
    assert executed.cells[-1].source.startswith("## Provenance")
    assert "8" in executed.cells[2].outputs[0]["text"]  # cell 1 is papermill's injected parameters
