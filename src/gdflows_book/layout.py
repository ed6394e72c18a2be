"""Where things are: the repository's notebooks and benchmark scripts, and what a run leaves in the build.

Shared by the runner, which writes the build, and the status page, which reads it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path


def available(root: Path) -> list[str]:
    """Names (file stems) of the notebooks, in book order."""
    return sorted((path.stem for path in (root / "notebooks").glob("*.ipynb")), key=_book_order)


def _book_order(name: str) -> tuple:
    """F2 before F10: the figure number as a number, then the rest of the name."""
    number = re.match(r"[A-Za-z]*(\d+)", name)
    return (int(number.group(1)) if number else 10**9, name)


def figure_tag(name: str) -> str:
    """``F5b_where_gd_ends`` → ``F5b``: the prefix of the notebook's figures and checks."""
    return name.split("_")[0]


def notebook_outputs(name: str, build: Path) -> list[Path]:
    """What a notebook writes: its executed copy, its record, its checks and its figures."""
    tag = figure_tag(name)
    folder = build / "notebooks"
    figures = sorted((build / "figures").glob(f"{tag}_*.png")) + sorted((build / "figures").glob(f"{tag}_*.pdf"))
    return [folder / f"{name}.ipynb", folder / f"{name}.provenance.json", build / "checks" / f"{tag}.json", *figures]


def read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def benchmark_scripts(root: Path) -> list[Path]:
    """The benchmark scripts: every ``benchmarks/*.py`` except those whose name starts with ``_``."""
    return sorted(path for path in (root / "benchmarks").glob("*.py") if not path.name.startswith("_"))
