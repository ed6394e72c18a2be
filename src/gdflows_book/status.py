"""The status page of a build: every notebook and benchmark with its mode, result, run time,
git revision, content hashes and whether it came from the cache, read from the records on disk.

``<build>/status.json`` holds the entries; ``<build>/status.md`` is the book's page; the claims ledger
(``<build>/ledger.md``) is written beside it from the same entries. The page also links the
screenshots of the book's pages found in ``<build>/screenshots/`` (written by the browser test,
``tests/test_book.py``), so that a reviewer can look at the whole site in a minute.
"""

from __future__ import annotations

import json
from pathlib import Path

from gdflows_book import cache, ledger
from gdflows_book.layout import available, benchmark_scripts, read_record


def entries(root: Path, build: Path) -> list[dict]:
    """One entry per notebook of ``<root>/notebooks`` and benchmark script, from its record.

    ``current`` says whether the recorded notebook (or script) and library hashes equal those of
    the sources now; a notebook never run has status ``"not run"``.
    """
    library = cache.library_hash(root)
    notebooks = build / "notebooks"
    items = [(n, root / "notebooks" / f"{n}.ipynb", notebooks / f"{n}.provenance.json") for n in available(root)]
    items += [(f"benchmarks/{s.name}", s, build / "benchmarks" / f"{s.stem}.run.json") for s in benchmark_scripts(root)]
    rows = []
    for name, source, record_path in items:
        record = read_record(record_path)
        if record is None:
            rows.append({"name": name, "kind": "benchmark" if name.startswith("benchmarks/") else "notebook"})
            rows[-1] |= {"status": "not run", "mode": None, "current": False}
            continue
        current = record.get("notebook_hash") == cache.file_hash(source) and record.get("library_hash") == library
        keys = ("name", "kind", "status", "mode", "run_time_s", "git_revision", "finished_utc", "cached")
        row = {k: record.get(k) for k in keys} | {"current": current}
        row |= {"notebook_hash": record.get("notebook_hash"), "library_hash": record.get("library_hash")}
        rows.append(row | ({"error": record["error"]} if "error" in record else {}))
    return rows


def _page(row: dict, build: Path) -> str:
    if row["kind"] == "notebook" and (build / "notebooks" / f"{row['name']}.ipynb").exists():
        return f"{{doc}}`{row['name']} <notebooks/{row['name']}>`"
    return f"`{row['name']}`"


SCREENSHOTS = "screenshots"


def _screenshots(build: Path) -> list[str]:
    """The page's section listing ``<build>/screenshots/*.png`` (``<page>-<width>.png``) as download links."""
    shots = sorted((build / SCREENSHOTS).glob("*.png"))
    lines = ["## Screenshots", ""]
    if not shots:
        return lines + [
            f"None in this build yet: the browser test (`pytest tests/test_book.py`) saves one per page and width "
            f"into `{SCREENSHOTS}/` of the build tree, and the next book build links them here."
        ]
    lines.append("Every page of the book as the browser test saw it (file names: page and window width in pixels):")
    lines.append("")
    return lines + [f"- {{download}}`{shot.name} <{SCREENSHOTS}/{shot.name}>`" for shot in shots]


def write(root: Path, build: Path) -> Path:
    """Write ``status.json`` and ``status.md`` into ``build``, and the claims ledger from the same entries
    (:func:`gdflows_book.ledger.write`); return the status page's path."""
    rows = entries(root, build)
    ledger.write(root, build, rows)
    (build / "status.json").write_text(json.dumps(rows, indent=1))
    modes = sorted({row["mode"] for row in rows if row["mode"]})
    lines = [
        "# Run status",
        "",
        "Every figure notebook and benchmark of this build as recorded on disk: the settings it ran with "
        f"(here: {', '.join(modes) or 'none yet'}), its result, its wall time on the machine that ran it, the git "
        "revision, whether the last request reused an earlier run (cache), and whether its notebook or script and "
        "the library are unchanged since (current).",
        "",
        "| notebook | mode | status | run time (s) | git revision | finished (UTC) | cached | current | hashes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        seconds = "" if row.get("run_time_s") is None else f"{row['run_time_s']:.1f}"
        hashes = f"`{row['notebook_hash'][:10]}` / `{row['library_hash'][:10]}`" if row.get("notebook_hash") else ""
        status = row["status"] + (f" ({row['error']})" if row.get("error") else "")
        lines.append(
            f"| {_page(row, build)} | {row['mode'] or ''} | {' '.join(status.replace('|', '/').split())} | {seconds} | "
            f"{'`' + row['git_revision'] + '`' if row.get('git_revision') else ''} | {row.get('finished_utc') or ''} | "
            f"{'yes' if row.get('cached') else 'no'} | {'yes' if row['current'] else '**no**'} | {hashes} |"
        )
    total = sum(row.get("run_time_s") or 0 for row in rows)
    lines.append(f"\nTotal run time of the recorded runs: {total:.1f} s. Hashes: notebook or script / library.")
    lines += ["", *_screenshots(build)]
    path = build / "status.md"
    path.write_text("\n".join(lines) + "\n")
    return path
