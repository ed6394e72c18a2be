"""What every benchmark script shares: its command line, progress lines and timing of compiled calls.

Not a benchmark itself: ``gdflows.reproduce`` runs every ``benchmarks/*.py`` except those whose
name starts with ``_``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None, *, description: str, quick: str) -> argparse.Namespace:
    """``--quick`` (help text ``quick``: what quick mode shortens) and ``--build-dir`` (default ``build/``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument(
        "--build-dir", type=Path, default=ROOT / "build", help="the build tree (default: build/ in the repository)"
    )
    return parser.parse_args(argv)


def progress_printer(name: str):
    """``message -> None``: print ``[name HH:MM:SS] message`` at once (CI logs stream it)."""

    def progress(message: str) -> None:
        print(f"[{name} {time.strftime('%H:%M:%S')}] {message}", flush=True)

    return progress


def timed(function, repeats: int) -> tuple[object, dict]:
    """``(result, timings)`` of ``function()``: the first call (with compilation) and the median,
    min and max of ``repeats`` further calls, each blocked until the result is ready."""
    tic = time.perf_counter()
    result = jax.block_until_ready(function())
    first = time.perf_counter() - tic
    samples = []
    for _ in range(repeats):
        tic = time.perf_counter()
        result = jax.block_until_ready(function())
        samples.append(time.perf_counter() - tic)
    timings = {"first_call_s": first, "median_s": statistics.median(samples), "min_s": min(samples)}
    return result, timings | {"max_s": max(samples)}


def write_results(build_dir: Path, name: str, results: dict, markdown: str) -> Path:
    """Write ``<build>/benchmarks/<name>.json`` (strict JSON: a NaN or infinity is an error) and
    ``<name>.md``, the page the book includes; return the markdown's path."""
    folder = build_dir / "benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(
        json.dumps(results, indent=1, ensure_ascii=False, allow_nan=False, default=str)
    )
    path = folder / f"{name}.md"
    path.write_text(markdown)
    return path
