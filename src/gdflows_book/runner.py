"""Execute the book's notebooks and benchmarks into a build tree, with provenance and a cache.

For each notebook of ``<root>/notebooks`` the runner computes the parameters (paper defaults <
smoke values < the user's values, :mod:`gdflows_book.parameters`), skips the run when its cache
key (:mod:`gdflows_book.cache`) matches the record of the previous run and that run's outputs are
on disk, and otherwise deletes the previous outputs, executes the notebook with papermill into
``<build>/notebooks/``, reads back the values the kernel used, and writes the record
``<name>.provenance.json`` and a provenance cell. A failed run leaves the executed copy with its
traceback and a record saying ``failed``; none of that notebook's figures or checks survive.
Benchmark scripts run the same way (record ``<build>/benchmarks/<script>.run.json``).
After every call the status page ``<build>/status.md`` (and ``status.json``) is rewritten from
the records on disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from gdflows_book import cache, status
from gdflows_book import parameters as params
from gdflows_book.layout import available, benchmark_scripts, notebook_outputs, read_record
from gdflows_book.provenance import provenance

READBACK_TAG = "gdflows-book-readback"
READBACK_MARK = "GDFLOWS_BOOK_PARAMETERS="
BUILD_DIR_PARAMETER = "build_dir"


class ReproduceError(RuntimeError):
    """A notebook or benchmark failed, or the request names something that does not exist."""


@dataclass
class Outcome:
    name: str
    seconds: float
    status: str  # "ok", "cached" or "failed"


def repository(root: Path) -> Path:
    """``root`` resolved, after checking that it holds ``notebooks/``."""
    root = Path(root).resolve()
    if not (root / "notebooks").is_dir():
        raise ReproduceError(f"{root} has no notebooks/ folder: run from the repository root or pass --root PATH")
    return root


def select(names: list[str], root: Path) -> list[str]:
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


def _cached(record: dict | None, key: str, build: Path) -> bool:
    return bool(
        record
        and record.get("status") == "ok"
        and record.get("cache_key") == key
        and all((build / path).exists() for path in record.get("outputs", []))
    )


def _remove(paths) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


def _prepare(notebook, names: list[str]):
    """The notebook as executed: the smoke cell shown as text, and after the parameters cell (so
    after papermill's injected one) a cell that prints the parameters' values in the kernel."""
    import nbformat

    readback = (
        "import json as _json\n"
        f"print({READBACK_MARK!r} + _json.dumps({{_n: globals()[_n] for _n in {names!r}}}, default=repr))"
    )
    cells = []
    for cell in notebook.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if params.SMOKE_TAG in tags:
            text = (
                "Smoke settings (applied by `python -m gdflows_book reproduce --smoke` to the parameters "
                f"not given with `-p`):\n\n```python\n{cell.source.strip()}\n```"
            )
            cell = nbformat.v4.new_markdown_cell(text, metadata={"tags": [params.SMOKE_TAG]})
        cells.append(cell)
        if params.PARAMETERS_TAG in tags:
            cells.append(nbformat.v4.new_code_cell(readback, metadata={"tags": [READBACK_TAG, "remove-cell"]}))
    notebook.cells = cells
    return notebook


def _read_back(notebook) -> dict:
    """The parameters printed by the read-back cell, which is then removed from the notebook."""
    cell = params.tagged_cell(notebook, READBACK_TAG)
    notebook.cells.remove(cell)
    for output in cell.outputs:
        for line in output.get("text", "").splitlines():
            if line.startswith(READBACK_MARK):
                return json.loads(line[len(READBACK_MARK) :])
    raise ReproduceError("the kernel did not print its parameters (the read-back cell has no output)")


def _settle_streams(notebook) -> None:
    r"""Each cell's consecutive stream outputs (stdout, stderr) merged, and every line shown as a terminal
    leaves it: the text after its last ``\r``. A live progress line (``gdflows.solve``'s display redraws
    itself with ``\r``) then reads on the page as its final state, not as one line per redraw."""
    for cell in notebook.cells:
        merged = []
        for output in cell.get("outputs", []):
            previous = merged[-1] if merged else None
            if (
                output.get("output_type") == "stream"
                and previous is not None
                and (previous.get("output_type") == "stream" and previous.get("name") == output.get("name"))
            ):
                previous["text"] += output["text"]
            else:
                merged.append(output)
        for output in merged:
            if output.get("output_type") == "stream" and "\r" in output["text"]:
                output["text"] = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in output["text"].split("\n"))
        if "outputs" in cell:
            cell["outputs"] = merged


def _provenance_cell(record: dict):
    import nbformat

    parameters = ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in record["parameters"].items() if k != "build_dir")
    packages = ", ".join(f"{k} {v}" for k, v in record["packages"].items())
    text = (
        "## Provenance\n\n"
        f"Executed by `python -m gdflows_book reproduce` ({record['mode']} settings) in {record['run_time_s']} s "
        f"on {record['finished_utc']} UTC, git revision `{record['git_revision']}`, "
        f"Python {record['python']} on {record['machine']}.\n\n"
        f"Parameters as the kernel used them: {parameters}.\n\nPackages: {packages}."
    )
    return nbformat.v4.new_markdown_cell(text, metadata={"tags": ["provenance"]})


def execute(
    name: str, *, root: Path, build: Path, smoke: bool = False, overrides: dict | None = None, force: bool = False
) -> Outcome:
    """Run one notebook (or reuse its cached run); raise :class:`ReproduceError` naming the failing cell."""
    import nbformat
    import papermill

    source = root / "notebooks" / f"{name}.ipynb"
    notebook = nbformat.read(source, as_version=4)
    user = dict(overrides or {})
    try:
        defaults = params.declared(notebook)
        smoke_values = params.smoke(notebook, defaults)
        if BUILD_DIR_PARAMETER in user:
            raise params.ParameterError(f"{BUILD_DIR_PARAMETER} is set by the runner: pass --build-dir instead")
        params.check(defaults, user, name)
    except params.ParameterError as error:
        raise ReproduceError(f"{name}: {error}" if not str(error).startswith(name) else str(error)) from None
    parameters, mode = params.resolve(defaults, smoke_values, user, use_smoke=smoke)
    if BUILD_DIR_PARAMETER in defaults:
        parameters[BUILD_DIR_PARAMETER] = str(build)
    notebook_hash = cache.file_hash(source)
    library_hash = cache.library_hash(root)
    key = cache.key(notebook_hash, parameters, library_hash)
    folder = build / "notebooks"
    target = folder / f"{name}.ipynb"
    record_path = folder / f"{name}.provenance.json"
    previous = read_record(record_path)
    if not force and _cached(previous, key, build):
        previous["cached"] = True
        record_path.write_text(json.dumps(previous, indent=1))
        return Outcome(name, previous["run_time_s"], "cached")

    _remove([build / p for p in (previous or {}).get("outputs", [])] + notebook_outputs(name, build))
    folder.mkdir(parents=True, exist_ok=True)
    common = {
        "kind": "notebook",
        "name": name,
        "mode": mode,
        "smoke": smoke,
        "requested": parameters,
        "cache_key": key,
        "notebook_hash": notebook_hash,
        "library_hash": library_hash,
        "cached": False,
    }
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            _prepare(notebook, list(defaults)),
            str(target),
            parameters=parameters,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(folder),
        )
    except papermill.PapermillExecutionError as error:
        seconds = time.perf_counter() - start
        _remove(notebook_outputs(name, build)[2:])  # figures and checks of a failed run are not results
        message = f"{error.ename}: {error.evalue}"
        record = provenance(parameters, seconds=seconds, root=root) | common | {"status": "failed", "error": message}
        record["outputs"] = [str(target.relative_to(build))]
        record_path.write_text(json.dumps(record, indent=1))
        raise ReproduceError(
            f"notebook {name} failed in cell {error.cell_index} (execution count {error.exec_count}): "
            f"{message}\n  executed copy with the traceback: {target}"
        ) from None
    seconds = time.perf_counter() - start
    executed = nbformat.read(target, as_version=4)
    used = _read_back(executed)
    _settle_streams(executed)
    record = provenance(used, seconds=seconds, root=root) | common | {"status": "ok"}
    executed.cells.append(_provenance_cell(record))
    nbformat.write(executed, target)
    record["outputs"] = [str(p.relative_to(build)) for p in notebook_outputs(name, build) if p != record_path]
    record["outputs"] = [p for p in record["outputs"] if (build / p).exists()]
    record_path.write_text(json.dumps(record, indent=1))
    return Outcome(name, seconds, "ok")


def _snapshot(build: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for folder in ("benchmarks", "figures") for p in (build / folder).glob("*")}


def run_benchmark(script: Path, *, root: Path, build: Path, quick: bool, force: bool = False) -> Outcome:
    """Run one benchmark script (or reuse its cached run) in a subprocess with one OpenBLAS thread.

    LAPACK (jax's ``eigh``/``eig``/``solve`` on CPU) comes from OpenBLAS, whose worker threads spin
    while they wait: on a shared two-core machine one eigendecomposition took 1x to 80x its usual
    time. One LAPACK thread keeps timings reproducible (XLA's own threads are left alone). The pin
    lives here, in the environment of the process the runner starts, and nowhere else; run a
    script by hand as ``OPENBLAS_NUM_THREADS=1 python benchmarks/NAME.py`` for the same conditions.
    """
    name = f"benchmarks/{script.name}"
    record_path = build / "benchmarks" / f"{script.stem}.run.json"
    library_hash = cache.library_hash(root)
    script_hash = cache.file_hash(script)
    key = cache.key(script_hash, cache.tree_hash(list((root / "benchmarks").glob("*.py")), root), library_hash, quick)
    previous = read_record(record_path)
    if not force and _cached(previous, key, build):
        previous["cached"] = True
        record_path.write_text(json.dumps(previous, indent=1))
        return Outcome(name, previous["run_time_s"], "cached")
    _remove([build / p for p in (previous or {}).get("outputs", [])] + [record_path])
    (build / "benchmarks").mkdir(parents=True, exist_ok=True)
    before = _snapshot(build)
    command = [sys.executable, str(script), "--build-dir", str(build)] + (["--quick"] if quick else [])
    start = time.perf_counter()
    result = subprocess.run(command, cwd=root, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    seconds = time.perf_counter() - start
    written = sorted(p for p, mtime in _snapshot(build).items() if before.get(p) != mtime and p != record_path)
    mode = "smoke" if quick else "paper"
    record = provenance({"quick": quick}, seconds=seconds, root=root) | {
        "kind": "benchmark",
        "name": name,
        "mode": mode,
        "cache_key": key,
        "notebook_hash": script_hash,
        "library_hash": library_hash,
        "cached": False,
        "status": "ok" if result.returncode == 0 else "failed",
    }
    if result.returncode != 0:
        _remove(written)
        record["outputs"] = []
        record_path.write_text(json.dumps(record | {"error": f"exit {result.returncode}"}, indent=1))
        raise ReproduceError(f"benchmark {script.name} failed (exit {result.returncode}): {' '.join(command)}")
    record["outputs"] = [str(p.relative_to(build)) for p in written]
    record_path.write_text(json.dumps(record, indent=1))
    return Outcome(name, seconds, "ok")


def reproduce(
    names: list[str],
    *,
    root: Path,
    build: Path,
    smoke: bool = False,
    overrides: dict | None = None,
    force: bool = False,
    jobs: int = 1,
) -> list[Outcome]:
    """Execute the chosen notebooks (with no names: every notebook, then every benchmark, ``--quick``
    with ``smoke``), reporting progress; stop at the first failure. The status page is rewritten in
    every case.

    ``jobs`` notebooks run at once, each in its own process and kernel, the longest (by the previous
    run's time) first; the outcomes come back in book order. Each notebook's numbers do not depend on
    ``jobs``, but its wall times do: keep ``jobs=1`` where timings are results (the paper run, whose
    notebooks and status page report them). Benchmark scripts always run one at a time, for the same
    reason.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ReproduceError(f"jobs must be a positive integer (notebooks run at once), got {jobs!r}")
    root = repository(root)
    build = Path(build).resolve()
    chosen = select(names, root)
    scripts = [] if names else benchmark_scripts(root)
    total = len(chosen) + len(scripts)
    mode = "smoke" if smoke else "paper"
    run = partial(execute, smoke=smoke, build=build, overrides=overrides, root=root, force=force)
    outcomes = []
    try:
        if jobs == 1 or len(chosen) < 2:
            for index, name in enumerate(chosen, 1):
                print(f"[{index}/{total}] {name} ({mode} settings) ...", flush=True)
                outcomes.append(run(name))
                print(f"[{index}/{total}] {name} {_said(outcomes[-1])}", flush=True)
        else:
            outcomes = _run_in_parallel(run, chosen, jobs=jobs, total=total, mode=mode, build=build)
        for index, script in enumerate(scripts, len(chosen) + 1):
            print(f"[{index}/{total}] benchmarks/{script.name} ({'quick' if smoke else 'full'}) ...", flush=True)
            outcomes.append(run_benchmark(script, quick=smoke, build=build, root=root, force=force))
            print(f"[{index}/{total}] benchmarks/{script.name} {_said(outcomes[-1])}", flush=True)
    finally:
        if build.exists():
            status.write(root, build)
    return outcomes


def _run_in_parallel(run, chosen: list[str], *, jobs: int, total: int, mode: str, build: Path) -> list[Outcome]:
    """``run`` on every name in ``jobs`` worker processes, longest first; on a failure, cancel what has
    not started, let the running ones finish (their records stay consistent) and raise the first error."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    def previous_time(name: str) -> float:
        record = read_record(build / "notebooks" / f"{name}.provenance.json")
        return (record or {}).get("run_time_s", float("inf"))

    order = sorted(chosen, key=previous_time, reverse=True)
    done: dict[str, Outcome] = {}
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {}
        for name in order:
            print(f"[{chosen.index(name) + 1}/{total}] {name} ({mode} settings) queued ...", flush=True)
            futures[pool.submit(run, name)] = name
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in finished:
                name = futures[future]
                if future.exception() is not None:
                    for other in pending:
                        other.cancel()
                    raise future.exception()
                done[name] = future.result()
                print(f"[{chosen.index(name) + 1}/{total}] {name} {_said(done[name])}", flush=True)
    return [done[name] for name in chosen]


def _said(outcome: Outcome) -> str:
    if outcome.status == "cached":
        return f"cached (inputs unchanged; the run took {outcome.seconds:.1f} s)"
    return f"done in {outcome.seconds:.1f} s"
