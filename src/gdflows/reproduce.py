"""Execute the book's notebooks with papermill into the build tree, then build the book.

``python -m gdflows reproduce [--smoke] [NAME ...]`` runs every notebook of
``notebooks/`` (or the named ones) with its paper parameters, or the smoke ones, writes
each executed copy to ``<build>/notebooks/`` with a provenance record beside it and a
provenance cell at its end, and a status page listing every notebook with its run time.
``python -m gdflows book`` renders the executed notebooks with Jupyter Book, without
executing them again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gdflows.provenance import provenance

ROOT = Path(__file__).resolve().parents[2]


class ReproduceError(RuntimeError):
    """A notebook failed, or the request named something that does not exist."""


@dataclass
class Outcome:
    name: str
    seconds: float
    status: str  # "ok" or the error


def notebook_dir(root: Path = ROOT) -> Path:
    return root / "notebooks"


def available(root: Path = ROOT) -> list[str]:
    """Names (file stems) of the notebooks, in book order."""
    return sorted((path.stem for path in notebook_dir(root).glob("*.ipynb")), key=_book_order)


def _book_order(name: str) -> tuple:
    """F2 before F10: the figure number as a number, then the rest of the name."""
    number = re.match(r"[A-Za-z]*(\d+)", name)
    return (int(number.group(1)) if number else 10**9, name)


def select(names: list[str], root: Path = ROOT) -> list[str]:
    """Resolve names or unique prefixes (``F1``) to notebook stems; raise on unknown ones."""
    known = available(root)
    if not names:
        return known
    chosen = []
    for name in names:
        matches = [k for k in known if k == name] or [k for k in known if k.startswith(name + "_")]
        if len(matches) != 1:
            raise ReproduceError(f"unknown notebook {name!r}; valid names: {', '.join(known)}")
        chosen.append(matches[0])
    return chosen


def parse_parameters(pairs: list[str]) -> dict:
    """``["steps=10", "smoke=true"]`` → ``{"steps": 10, "smoke": True}`` (values parsed as JSON)."""
    parsed = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ReproduceError(f"parameter {pair!r} must look like name=value")
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    return parsed


def _declared_parameters(path: Path) -> dict:
    import papermill

    return papermill.inspect_notebook(str(path))


def _provenance_cell(record: dict):
    import nbformat

    params = ", ".join(f"`{k} = {v}`" for k, v in record["parameters"].items())
    packages = ", ".join(f"{k} {v}" for k, v in record["packages"].items())
    text = (
        "## Provenance\n\n"
        f"Executed by `python -m gdflows reproduce` in {record['run_time_s']} s "
        f"on {record['finished_utc']} UTC, git revision `{record['git_revision']}`, "
        f"Python {record['python']} on {record['machine']}.\n\n"
        f"Parameters: {params}.\n\nPackages: {packages}."
    )
    return nbformat.v4.new_markdown_cell(text, metadata={"tags": ["provenance"]})


def execute(name: str, *, smoke: bool, build: Path, overrides: dict | None = None, root: Path = ROOT) -> Outcome:
    """Run one notebook with papermill; raise :class:`ReproduceError` naming the failing cell."""
    import nbformat
    import papermill

    source = notebook_dir(root) / f"{name}.ipynb"
    declared = _declared_parameters(source)
    parameters = {"smoke": smoke, **(overrides or {})}
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ReproduceError(
            f"{name} has no parameter {', '.join(map(repr, unknown))}; its parameters are: {', '.join(declared)}"
        )
    target = build / "notebooks" / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.environ["GDFLOWS_BUILD_DIR"] = str(build)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters=parameters,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(target.parent),
        )
    except papermill.PapermillExecutionError as error:
        seconds = time.perf_counter() - start
        raise ReproduceError(
            f"notebook {name} failed in cell {error.cell_index} (execution count {error.exec_count}): "
            f"{error.ename}: {error.evalue}\n  executed copy with the traceback: {target}"
        ) from None
    seconds = time.perf_counter() - start
    everything = {k: v["default"] for k, v in declared.items()}
    everything.update({k: repr(v) for k, v in parameters.items()})
    record = provenance(everything, seconds=seconds, root=root)
    target.with_suffix(".provenance.json").write_text(json.dumps(record, indent=1))
    notebook = nbformat.read(target, as_version=4)
    notebook.cells.append(_provenance_cell(record))
    nbformat.write(notebook, target)
    return Outcome(name, seconds, "ok")


def write_status(outcomes: list[Outcome], build: Path, smoke: bool) -> Path:
    """The status page: every notebook with its run time, mode and result."""
    lines = [
        "# Run status",
        "",
        f"Every figure notebook as executed for this build ({'smoke' if smoke else 'paper'} settings), "
        "with its wall time on the machine that built the book.",
        "",
        "| notebook | status | run time (s) |",
        "|---|---|---|",
    ]
    page = lambda o: f"`{o.name}`" if o.name.startswith("benchmarks/") else f"{{doc}}`{o.name} <notebooks/{o.name}>`"
    lines += [f"| {page(o)} | {o.status} | {o.seconds:.1f} |" for o in outcomes]
    lines.append(f"\nTotal: {sum(o.seconds for o in outcomes):.1f} s.")
    path = build / "status.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def benchmark_scripts(root: Path = ROOT) -> list[Path]:
    """The benchmark scripts: every ``benchmarks/*.py`` except shared modules (``_*.py``), each taking
    ``--quick`` and ``--build-dir``."""
    return sorted(path for path in (root / "benchmarks").glob("*.py") if not path.name.startswith("_"))


def run_benchmark(script: Path, *, quick: bool, build: Path, root: Path = ROOT) -> Outcome:
    """Run one benchmark script; its tables and figures go into the book's benchmark pages."""
    command = [sys.executable, str(script), "--build-dir", str(build)] + (["--quick"] if quick else [])
    start = time.perf_counter()
    result = subprocess.run(command, cwd=root)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise ReproduceError(f"benchmark {script.name} failed (exit {result.returncode}): {' '.join(command)}")
    return Outcome(f"benchmarks/{script.name}", seconds, "ok")


def reproduce(names: list[str], *, smoke: bool, build: Path, overrides: dict | None = None) -> list[Outcome]:
    """Execute the chosen notebooks in order, reporting progress; stop at the first failure.

    With no names, every notebook runs, then every benchmark script (``--quick`` with ``smoke``),
    and the status page is written.
    """
    chosen = select(names)
    scripts = [] if names else benchmark_scripts()
    total = len(chosen) + len(scripts)
    mode = "smoke" if smoke else "paper"
    outcomes = []
    for index, name in enumerate(chosen, 1):
        print(f"[{index}/{total}] {name} ({mode} settings) ...", flush=True)
        outcome = execute(name, smoke=smoke, build=build, overrides=overrides)
        print(f"[{index}/{total}] {name} done in {outcome.seconds:.1f} s", flush=True)
        outcomes.append(outcome)
    for index, script in enumerate(scripts, len(chosen) + 1):
        print(f"[{index}/{total}] benchmarks/{script.name} ({'quick' if smoke else 'full'}) ...", flush=True)
        outcomes.append(run_benchmark(script, quick=smoke, build=build))
        print(f"[{index}/{total}] benchmarks/{script.name} done in {outcomes[-1].seconds:.1f} s", flush=True)
    if not names:
        write_status(outcomes, build, smoke)
    return outcomes


def build_book(*, strict: bool = True, root: Path = ROOT) -> Path:
    """Render the book from the executed notebooks (no execution); return the HTML folder."""
    executable = shutil.which("jupyter-book") or str(Path(sys.executable).parent / "jupyter-book")
    command = [executable, "build", str(root), "--path-output", str(root)]
    if strict:
        command += ["--warningiserror", "--keep-going"]
    subprocess.run(command, check=True, cwd=root)
    return root / "_build" / "html"
