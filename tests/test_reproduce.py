"""The paper pipeline (gdflows_book): parameters, provenance read back from the kernel, failures that
leave nothing stale, the status page, the execution cache and the book's refusal of mixed builds.

Most tests run a tiny notebook written into a throwaway repository (``tmp_path``)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from gdflows_book import book, cache, parameters, runner, status
from gdflows_book.__main__ import main

ROOT = Path(__file__).resolve().parents[1]

BODY = """
from pathlib import Path
Path(build_dir, "figures").mkdir(parents=True, exist_ok=True)
Path(build_dir, "figures", "X1_plot.png").write_text(str(steps))
assert steps != 13, f"steps is {steps}"
print(steps * 2)
"""


def make_repo(root: Path, name: str = "X1_demo", body: str = BODY, smoke: str | None = "steps = 7") -> Path:
    """A repository with ``notebooks/<name>.ipynb``: parameters ``steps``, ``rate``, ``label``, ``build_dir``."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [
        nbformat.v4.new_code_cell(
            'steps = 3\nrate = 0.5\nlabel = "a"\nbuild_dir = "../build"', metadata={"tags": ["parameters"]}
        )
    ]
    if smoke is not None:
        cells.append(nbformat.v4.new_raw_cell(smoke, metadata={"tags": ["smoke-parameters"]}))
    cells.append(nbformat.v4.new_code_cell(body))
    notebook.cells = cells
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    (root / "src" / "gdflows").mkdir(parents=True, exist_ok=True)
    (root / "src" / "gdflows" / "__init__.py").write_text("# a library\n")
    nbformat.write(notebook, root / "notebooks" / f"{name}.ipynb")
    return root / "notebooks" / f"{name}.ipynb"


def record(build: Path, name: str = "X1_demo") -> dict:
    return json.loads((build / "notebooks" / f"{name}.provenance.json").read_text())


# --- the library knows nothing of the pipeline ----------------------------------------------


def test_library_never_imports_or_names_the_pipeline():
    for path in (ROOT / "src" / "gdflows").rglob("*.py"):
        text = path.read_text()
        assert "gdflows_book" not in text, f"{path} names the pipeline package"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.startswith("gdflows_book") for n in names), path
    code = "import sys, gdflows; print(sorted(m for m in sys.modules if m.startswith('gdflows_book')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_environment_writes_or_file_relative_paths_in_the_pipeline():
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]:
        text = path.read_text()
        assert "os.environ[" not in text and "environ.setdefault" not in text and "putenv" not in text, path
    for path in [*(ROOT / "src" / "gdflows_book").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]:
        names = {node.id for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Name)}
        assert "__file__" not in names, path


# --- parameters ------------------------------------------------------------------------------


def test_parameters_are_json_or_an_error_that_shows_the_quoting():
    assert parameters.parse(["steps=10", "flag=true", "lrs=[0.1, 0.2]", 'name="abc"']) == {
        "steps": 10,
        "flag": True,
        "lrs": [0.1, 0.2],
        "name": "abc",
    }
    with pytest.raises(parameters.ParameterError, match=r"parameter smoke: 'maybe' is not JSON.*-p smoke='\"maybe\"'"):
        parameters.parse(["smoke=maybe"])
    with pytest.raises(parameters.ParameterError, match="must look like name=value"):
        parameters.parse(["oops"])


def test_parameter_types_are_checked_against_the_defaults():
    defaults = {"steps": 3, "rate": 0.5, "flag": False, "lrs": [0.1], "label": "a"}
    parameters.check(defaults, {"steps": 4, "rate": 1, "flag": True, "lrs": [1, 2], "label": "b"}, "X")
    for bad in ({"steps": 1.5}, {"steps": True}, {"flag": 1}, {"lrs": 0.1}, {"label": 3}):
        with pytest.raises(parameters.ParameterError, match=f"parameter {next(iter(bad))} of X"):
            parameters.check(defaults, bad, "X")
    with pytest.raises(parameters.ParameterError, match="X has no parameter 'stepz'; its parameters are: steps"):
        parameters.check(defaults, {"stepz": 1}, "X")


def test_parameter_cells_hold_literal_assignments_only():
    assert parameters.assignments("a = 1\nb, c = 2.0, [3]\nd = (1, 2)", "cell") == {
        "a": 1,
        "b": 2.0,
        "c": [3],
        "d": [1, 2],
    }
    with pytest.raises(parameters.ParameterError, match="line 2 does not assign a literal value"):
        parameters.assignments("a = 1\nb = a + 1", "cell")
    with pytest.raises(parameters.ParameterError, match="line 1 is not a plain assignment"):
        parameters.assignments("if x:\n    a = 1", "cell")


def test_every_book_notebook_declares_literal_parameters_and_valid_smoke_values():
    for name in runner.available(ROOT):
        notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        defaults = parameters.declared(notebook)
        assert "smoke" not in defaults and defaults["build_dir"] == "../build", name
        parameters.check(defaults, parameters.smoke(notebook, defaults), name)
        assert not any(c.source.lstrip().startswith("if smoke") for c in notebook.cells), name


# --- execution, read-back, failures ----------------------------------------------------------


def test_user_values_win_over_smoke_values_and_the_kernel_values_are_recorded(tmp_path):
    make_repo(tmp_path)
    build = tmp_path / "build"
    assert main(["reproduce", "--smoke", "X1", "-p", "steps=50", "--root", str(tmp_path)]) == 0
    rec = record(build)
    assert rec["parameters"] == {"steps": 50, "rate": 0.5, "label": "a", "build_dir": str(build)}
    assert rec["mode"] == "custom" and rec["status"] == "ok" and rec["git_revision"]
    assert {"jax", "diffrax", "gdflows"} <= set(rec["packages"])
    assert (build / "figures" / "X1_plot.png").read_text() == "50"  # the kernel ran 50
    executed = nbformat.read(build / "notebooks" / "X1_demo.ipynb", as_version=4)
    assert executed.cells[-1].source.startswith("## Provenance") and "`steps = 50`" in executed.cells[-1].source
    assert not any("gdflows-book-readback" in c.metadata.get("tags", []) for c in executed.cells)
    assert any("100" in o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    smoke_cell = next(c for c in executed.cells if "smoke-parameters" in c.metadata.get("tags", []))
    assert smoke_cell.cell_type == "markdown" and "steps = 7" in smoke_cell.source

    assert main(["reproduce", "--smoke", "X1", "--root", str(tmp_path)]) == 0
    assert record(build)["parameters"]["steps"] == 7 and record(build)["mode"] == "smoke"
    assert (build / "figures" / "X1_plot.png").read_text() == "7"
    assert main(["reproduce", "X1", "--root", str(tmp_path), "-p", 'label="b"']) == 0
    assert record(build)["parameters"] | {"build_dir": None} == {
        "steps": 3,
        "rate": 0.5,
        "label": "b",
        "build_dir": None,
    }


def test_command_line_errors_name_the_fix(tmp_path, capsys):
    make_repo(tmp_path)
    assert main(["reproduce", "NOPE", "--root", str(tmp_path)]) == 1
    assert "unknown notebook 'NOPE'; valid names: X1_demo" in capsys.readouterr().err
    assert main(["reproduce", "X1", "-p", "label=b", "--root", str(tmp_path)]) == 1
    assert "-p label='\"b\"'" in capsys.readouterr().err
    assert main(["reproduce", "X1", "-p", "steps=1.5", "--root", str(tmp_path)]) == 1
    assert "parameter steps of X1_demo" in capsys.readouterr().err
    assert main(["reproduce", "X1", "-p", 'build_dir="x"', "--root", str(tmp_path)]) == 1
    assert "--build-dir" in capsys.readouterr().err
    assert main(["list", "--root", str(tmp_path / "nowhere")]) == 1
    assert "has no notebooks/ folder: run from the repository root or pass --root" in capsys.readouterr().err


def test_a_failed_rerun_leaves_no_stale_figure_and_says_failed(tmp_path):
    make_repo(tmp_path)
    build = tmp_path / "build"
    runner.reproduce(["X1"], root=tmp_path, build=build)
    (build / "checks").mkdir()
    (build / "checks" / "X1.json").write_text("[]")
    assert (build / "figures" / "X1_plot.png").exists()
    with pytest.raises(
        runner.ReproduceError, match=r"notebook X1_demo failed in cell \d+ .*AssertionError: steps is 13"
    ):
        runner.reproduce(["X1"], root=tmp_path, build=build, overrides={"steps": 13})
    assert not (build / "figures" / "X1_plot.png").exists()  # written by the failed run, then removed
    assert not (build / "checks" / "X1.json").exists()
    rec = record(build)
    assert rec["status"] == "failed" and "steps is 13" in rec["error"] and rec["parameters"]["steps"] == 13
    assert (build / "notebooks" / "X1_demo.ipynb").exists()  # the executed copy with the traceback
    rows = json.loads((build / "status.json").read_text())
    assert rows[0]["status"] == "failed" and "failed" in (build / "status.md").read_text()


def test_the_cache_skips_unchanged_runs_and_reruns_changed_ones(tmp_path, capsys):
    source = make_repo(tmp_path)
    build = tmp_path / "build"
    assert [o.status for o in runner.reproduce(["X1"], root=tmp_path, build=build)] == ["ok"]
    assert [o.status for o in runner.reproduce(["X1"], root=tmp_path, build=build)] == ["cached"]
    assert "cached" in capsys.readouterr().out
    assert record(build)["cached"] and json.loads((build / "status.json").read_text())[0]["cached"]
    assert [o.status for o in runner.reproduce(["X1"], root=tmp_path, build=build, force=True)] == ["ok"]
    assert [o.status for o in runner.reproduce(["X1"], root=tmp_path, build=build, smoke=True)] == ["ok"]
    assert [o.status for o in runner.reproduce(["X1"], root=tmp_path, build=build, smoke=True)] == ["cached"]
    (tmp_path / "src" / "gdflows" / "__init__.py").write_text("# the library changed\n")
    assert [o.status for o in runner.reproduce(["X1"], root=tmp_path, build=build, smoke=True)] == ["ok"]
    make_repo(tmp_path, body=BODY + "\nprint('changed')")
    assert source.exists()
    assert [o.status for o in runner.reproduce(["X1"], root=tmp_path, build=build, smoke=True)] == ["ok"]
    (build / "figures" / "X1_plot.png").unlink()  # a missing output forces a re-run
    assert [o.status for o in runner.reproduce(["X1"], root=tmp_path, build=build, smoke=True)] == ["ok"]


def test_notebooks_run_in_parallel_give_the_same_records_and_stop_at_a_failure(tmp_path, capsys):
    make_repo(tmp_path)
    make_repo(tmp_path, name="X2_other", body=BODY.replace("X1_plot", "X2_plot"))
    build = tmp_path / "build"
    outcomes = runner.reproduce([], root=tmp_path, build=build, jobs=2)
    assert [(o.name, o.status) for o in outcomes] == [("X1_demo", "ok"), ("X2_other", "ok")]  # book order
    assert record(build)["status"] == "ok" and record(build, "X2_other")["parameters"]["steps"] == 3
    assert (build / "figures" / "X2_plot.png").read_text() == "3"
    assert [o.status for o in runner.reproduce([], root=tmp_path, build=build, jobs=2)] == ["cached", "cached"]
    with pytest.raises(runner.ReproduceError, match=r"notebook X\d_\w+ failed .*steps is 13"):
        runner.reproduce([], root=tmp_path, build=build, jobs=2, overrides={"steps": 13})
    assert "failed" in {record(build)["status"], record(build, "X2_other")["status"]}
    with pytest.raises(runner.ReproduceError, match="jobs must be a positive integer"):
        runner.reproduce([], root=tmp_path, build=build, jobs=0)
    capsys.readouterr()


LEDGER_BODY = """
from gdflows_book.checks import Checks
checks = Checks("X1", build_dir)
checks.at_most("error of the demo", steps * 1e-3, 1e-2)
checks.paper_claim(
    "the demo converges", source="Demo et al. 2099, §1", verdict="reproduced in part", rests_on="demo", note="n = 3"
)
checks.show()
"""


def test_the_ledger_shows_each_claim_with_its_run_and_a_failure_in_place_of_an_old_verdict(tmp_path):
    make_repo(tmp_path, body=LEDGER_BODY)
    build = tmp_path / "build"
    runner.reproduce(["X1"], root=tmp_path, build=build)
    page = (build / "ledger.md").read_text()
    revision = record(build)["git_revision"]
    claim = next(line for line in page.splitlines() if "the demo converges" in line)
    assert "Demo et al. 2099, §1" in claim and "reproduced in part" in claim
    assert "n = 3 error of the demo: 0.003 (required ≤ 0.01)" in claim  # the evidence quotes the check
    check = next(line for line in page.splitlines() if "| error of the demo |" in line)
    assert "| 0.003 | ≤ 0.01 | ✓ passed |" in check and f"`{revision}`" in check
    assert "1 (1 reproduced in part)" in page and "**Our checks:** 1, 1 passed" in page
    (rows,) = json.loads((build / "ledger.json").read_text())
    assert rows["state"] == "ok" and rows["paper_claims"][0]["verdict"] == "reproduced in part"

    with pytest.raises(runner.ReproduceError):
        runner.reproduce(["X1"], root=tmp_path, build=build, overrides={"steps": 30})
    page = (build / "ledger.md").read_text()
    assert "the demo converges" not in page  # no old verdict survives the failed run
    failed = next(line for line in page.splitlines() if "failed in the last build" in line)
    assert "error of the demo: measured 0.03, required ≤ 0.01" in failed
    assert "**Our checks:** 0, 0 passed" in page and "X1: failed" in page


def test_paper_claims_need_a_known_verdict_a_source_and_a_check():
    from gdflows_book.checks import Checks

    checks = Checks("F0", "unused")
    with pytest.raises(ValueError, match="verdict must be one of"):
        checks.paper_claim("x", source="A 2020", verdict="confirmed")
    with pytest.raises(ValueError, match="source must name the paper"):
        checks.paper_claim("x", source=" ", verdict="reproduced")
    with pytest.raises(ValueError, match="rests on no check"):
        checks.paper_claim("x", source="A 2020", verdict="reproduced", rests_on="error")
    checks.paper_claim("y", source="B 2021", verdict="not testable here", note="equations not available")
    checks.at_most("error of y", 1e-9, 1e-8)
    checks.paper_claim("x", source="A 2020", verdict="reproduced", rests_on="error")
    assert checks.paper_claims[1].evidence == "error of y: 1e-09 (required ≤ 1e-08)"
    assert [c.claim for c in checks.paper_claims] == ["y", "x"]


SCRIPT = """
import os, sys
from gdflows_book.benchmarks import parse_args, write_results
args = parse_args(sys.argv[1:], description="demo", quick="quick")
write_results(args.build_dir, "demo", {"quick": args.quick}, os.environ["OPENBLAS_NUM_THREADS"])
"""


def test_benchmarks_run_pinned_cached_and_leave_nothing_when_they_fail(tmp_path):
    make_repo(tmp_path)
    (tmp_path / "benchmarks").mkdir()
    script = tmp_path / "benchmarks" / "demo.py"
    script.write_text(SCRIPT)
    build = tmp_path / "build"
    assert runner.run_benchmark(script, root=tmp_path, build=build, quick=True).status == "ok"
    assert (build / "benchmarks" / "demo.md").read_text() == "1"  # one OpenBLAS thread, set by the runner
    rec = json.loads((build / "benchmarks" / "demo.run.json").read_text())
    assert rec["mode"] == "smoke" and sorted(rec["outputs"]) == ["benchmarks/demo.json", "benchmarks/demo.md"]
    assert runner.run_benchmark(script, root=tmp_path, build=build, quick=True).status == "cached"
    assert runner.run_benchmark(script, root=tmp_path, build=build, quick=False).status == "ok"
    script.write_text(SCRIPT + "raise SystemExit(3)\n")
    with pytest.raises(runner.ReproduceError, match="benchmark demo.py failed \\(exit 3\\)"):
        runner.run_benchmark(script, root=tmp_path, build=build, quick=False)
    assert not (build / "benchmarks" / "demo.md").exists() and not (build / "benchmarks" / "demo.json").exists()
    assert json.loads((build / "benchmarks" / "demo.run.json").read_text())["status"] == "failed"


def test_cache_key_covers_notebook_parameters_and_library(tmp_path):
    make_repo(tmp_path)
    base = cache.library_hash(tmp_path)
    (tmp_path / "constraints.txt").write_text("jax==0.10.0\n")
    assert cache.library_hash(tmp_path) != base
    assert cache.key("nb", {"a": 1}, base) != cache.key("nb", {"a": 2}, base)


def test_status_lists_every_notebook_with_mode_revision_and_currency(tmp_path):
    make_repo(tmp_path, "X1_demo")
    make_repo(tmp_path, "X2_other")
    build = tmp_path / "build"
    runner.reproduce(["X1"], root=tmp_path, build=build, smoke=True)
    rows = {row["name"]: row for row in json.loads((build / "status.json").read_text())}
    assert rows["X1_demo"]["mode"] == "smoke" and rows["X1_demo"]["current"] and rows["X1_demo"]["git_revision"]
    assert rows["X2_other"]["status"] == "not run"
    make_repo(tmp_path, "X1_demo", body=BODY + "\n# edited")
    assert not {r["name"]: r for r in status.entries(tmp_path, build)}["X1_demo"]["current"]


def test_book_refuses_mixed_or_stale_builds_and_marks_pages_when_allowed(tmp_path):
    make_repo(tmp_path, "X1_demo")
    make_repo(tmp_path, "X2_other")
    build = tmp_path / "build"
    with pytest.raises(book.BookError, match="holds no executed notebooks: run `python -m gdflows_book reproduce"):
        book.build_book(root=tmp_path, build=build)
    runner.reproduce(["X1"], root=tmp_path, build=build, smoke=True)
    with pytest.raises(book.BookError, match="not run in .*: X2_other; run `python -m gdflows_book reproduce X2_other"):
        book.build_book(root=tmp_path, build=build)
    runner.reproduce(["X2"], root=tmp_path, build=build)
    found = book.problems(status.entries(tmp_path, build))
    assert len(found) == 1 and "settings, the rest of the book with" in next(iter(found.values()))
    with pytest.raises(book.BookError, match="(?s)mixes runs:.*--allow-mixed"):
        book.build_book(root=tmp_path, build=build)
    runner.reproduce(["X2"], root=tmp_path, build=build, smoke=True)
    assert book.problems(status.entries(tmp_path, build)) == {}
    make_repo(tmp_path, "X2_other", body=BODY + "\n# edited")
    found = book.problems(status.entries(tmp_path, build))
    assert list(found) == ["X2_other"] and "changed since it ran" in found["X2_other"]

    for name in ("_config.yml", "_toc.yml"):
        (tmp_path / name).write_text("{}\n")
    (tmp_path / "book").mkdir()
    stage = book._stage(tmp_path, build, found)
    marked = nbformat.read(stage / "build" / "notebooks" / "X2_other.ipynb", as_version=4)
    assert "does not match the rest of the book" in marked.cells[0].source
    clean = nbformat.read(stage / "build" / "notebooks" / "X1_demo.ipynb", as_version=4)
    assert "does not match" not in clean.cells[0].source
    assert "does not match" not in nbformat.read(build / "notebooks" / "X2_other.ipynb", as_version=4).cells[0].source


def test_streams_read_on_the_page_as_a_terminal_leaves_them():
    """A progress line redrawn with carriage returns shows its final state, once; other output is kept."""
    cell = nbformat.v4.new_code_cell("solve(...)")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="before\n"),
        nbformat.v4.new_output("stream", name="stderr", text="\rPF: GD step 1/3"),
        nbformat.v4.new_output("stream", name="stderr", text="\rPF: GD step 2/3"),
        nbformat.v4.new_output("stream", name="stderr", text="\rPF: GD step 3/3 done\n"),
        nbformat.v4.new_output("stream", name="stderr", text="kept\r"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=1),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    runner._settle_streams(notebook)
    texts = [(o["output_type"], o.get("name"), o.get("text")) for o in notebook.cells[0].outputs]
    assert texts == [
        ("stream", "stdout", "before\n"),
        ("stream", "stderr", "PF: GD step 3/3 done\nkept"),
        ("execute_result", None, None),
    ]
