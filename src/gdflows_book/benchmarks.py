"""What every benchmark script (``benchmarks/*.py``) shares: its command line and its output files.

The runner (:func:`gdflows_book.runner.run_benchmark`) starts each script with ``--build-dir``
(and ``--quick`` in smoke builds), from the repository root, with one OpenBLAS thread.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def parse_args(argv: list[str] | None, *, description: str, quick: str) -> argparse.Namespace:
    """``--quick`` (help text ``quick``: what quick mode shortens) and ``--build-dir`` (default ``build``
    in the current directory)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--build-dir", type=Path, default=Path("build"), help="the build tree (default: ./build)")
    args = parser.parse_args(argv)
    args.build_dir = args.build_dir.resolve()
    return args


def write_results(build_dir: Path, name: str, results: dict, markdown: str) -> Path:
    """Write ``<build>/benchmarks/<name>.json`` (strict JSON: a NaN or infinity is an error) and
    ``<name>.md``, the page the book includes; return the markdown's path."""
    folder = Path(build_dir) / "benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(
        json.dumps(results, indent=1, ensure_ascii=False, allow_nan=False, default=str)
    )
    path = folder / f"{name}.md"
    path.write_text(markdown)
    return path
