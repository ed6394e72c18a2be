"""Build the book from a build tree, refusing a book that mixes runs.

The book's sources are the prose and configuration of the repository (``_config.yml``,
``_toc.yml``, ``book/``) and one build tree. They are assembled in ``<root>/_build/source``, with
the build tree copied to ``build/`` there (the path ``_toc.yml`` and the prose refer to), and
Jupyter Book renders that into ``<root>/_build/html`` without executing anything.

Before that, every notebook and benchmark of the build must have run successfully, all in the same
mode (paper or smoke), from the current notebook (or script) and library sources. Otherwise the
build is refused, or, with ``allow_mixed``, every affected page carries a warning.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from gdflows_book import status

SOURCES = ("_config.yml", "_toc.yml", "book")
WARNING_TAG = "mixed-build-warning"


class BookError(RuntimeError):
    """The build cannot be rendered as it is."""


def problems(rows: list[dict]) -> dict[str, str]:
    """``{name: why}`` for every entry that does not belong in a consistent book."""
    done = [row for row in rows if row["status"] == "ok"]
    modes = {row["mode"] for row in done}
    common = max(modes, key=lambda m: sum(row["mode"] == m for row in done)) if modes else None
    found = {}
    for row in rows:
        if row["status"] != "ok":
            found[row["name"]] = f"its run {row['status']}"
        elif not row["current"]:
            found[row["name"]] = "its notebook (or script) or the library changed since it ran"
        elif row["mode"] != common:
            found[row["name"]] = f"it ran with {row['mode']} settings, the rest of the book with {common}"
    return found


def _warn_notebook(path: Path, why: str) -> None:
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    text = f":::{{warning}}\nThis page does not match the rest of the book: {why}.\n:::"
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(text, metadata={"tags": [WARNING_TAG]}))
    nbformat.write(notebook, path)


def _stage(root: Path, build: Path, found: dict[str, str]) -> Path:
    """Assemble the book's sources in ``<root>/_build/source`` (copies keep their times, so Sphinx
    re-reads only what changed) and mark the affected pages."""
    stage = root / "_build" / "source"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in SOURCES:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, stage / name)
        else:
            shutil.copy2(source, stage / name)
    shutil.copytree(build, stage / "build", ignore=shutil.ignore_patterns("_build", "*.pdf"))
    for name, why in found.items():
        if name.startswith("benchmarks/"):
            page = stage / "build" / "benchmarks" / f"{Path(name).stem}.md"
            if page.exists():
                warning = f":::{{warning}}\nThese numbers do not match the rest of the book: {why}.\n:::\n\n"
                page.write_text(warning + page.read_text())
        else:
            _warn_notebook(stage / "build" / "notebooks" / f"{name}.ipynb", why)
    return stage


def build_book(*, root: Path, build: Path, strict: bool = True, allow_mixed: bool = False) -> Path:
    """Render the book from ``build`` (no execution); return the HTML folder."""
    build = Path(build).resolve()
    if not (build / "notebooks").is_dir():
        command = f"python -m gdflows_book reproduce --build-dir {build}"
        raise BookError(f"{build} holds no executed notebooks: run `{command}`")
    status.write(root, build)
    rows = status.entries(root, build)
    found = problems(rows)
    missing = [row["name"] for row in rows if row["status"] == "not run" and row["kind"] == "notebook"]
    if missing:
        command = f"python -m gdflows_book reproduce {' '.join(missing)} --build-dir {build}"
        raise BookError(f"not run in {build}: {', '.join(missing)}; run `{command}`")
    if found and not allow_mixed:
        listing = "\n".join(f"  {name}: {why}" for name, why in found.items())
        raise BookError(
            f"the build {build} mixes runs:\n{listing}\nre-run them (`python -m gdflows_book reproduce "
            "[--smoke] NAME ...` with the same settings), or pass --allow-mixed to mark those pages"
        )
    stage = _stage(root, build, found)
    executable = shutil.which("jupyter-book") or str(Path(sys.executable).parent / "jupyter-book")
    command = [executable, "build", str(stage), "--path-output", str(root)]
    if strict:
        command += ["--warningiserror", "--keep-going"]
    result = subprocess.run(command, cwd=root)
    if result.returncode != 0:
        raise BookError(f"jupyter-book failed (exit {result.returncode}): {' '.join(command)}")
    return root / "_build" / "html"
