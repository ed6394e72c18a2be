"""What every benchmark script (``benchmarks/*.py``) shares: its command line, its output files,
the machine it ran on and the markdown tables it writes.

The runner (:func:`gdflows_book.runner.run_benchmark`) starts each script with ``--build-dir``
(and ``--quick`` in smoke builds), from the repository root, with one OpenBLAS thread.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


def machine() -> dict:
    """The processor, its logical cores, JAX's backend, the 1-minute load average now and the
    ``OPENBLAS_NUM_THREADS`` setting: what the timings depend on beyond the code."""
    import jax

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "load_average_1min_at_start": load_average(),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def load_average() -> float | None:
    """The 1-minute load average, or ``None`` where the system has none."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def measured_on(results: dict, repeats: str) -> str:
    """The sentence above a benchmark's tables: machine, versions, revision, load and settings.

    ``results`` holds ``provenance``, ``machine`` (:func:`machine`, with
    ``load_average_1min_at_end`` added) and ``mode``; ``repeats`` says how many repeats the
    medians take, e.g. ``"fast calls: 7 repeats; calls over 0.5 s: 3"``.
    """
    prov, host = results["provenance"], results["machine"]
    return (
        f"Measured on {prov['machine']}, {host['cpu']} ({host['logical_cores']} logical cores, JAX "
        f"{prov['packages']['jax']} on {host['jax_backend']}), Python {prov['python']}, gdflows at git revision "
        f"`{prov['git_revision']}`, finished {prov['finished_utc']} UTC; load average "
        f"{host['load_average_1min_at_start']:.2f} at the start and {host['load_average_1min_at_end']:.2f} at "
        f"the end (the machine may have been shared). Settings: `{results['mode']}`; every time below is the median "
        f"over repeats of a compiled, warmed-up call ({repeats}). The whole run took {prov['run_time_s']:.0f} s."
    )


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "l") -> list[str]:
    """The lines of a markdown table: ``header``, the alignment rule, one line per row of cells.

    ``align`` has one letter per column, ``l`` (left) or ``r`` (right), or a single letter for
    all columns. A row with another number of cells than ``header`` is an error.
    """
    align = align * len(header) if len(align) == 1 else align
    if len(align) != len(header) or not set(align) <= {"l", "r"}:
        raise ValueError(f"align={align!r}: give one letter 'l' or 'r', or one per column ({len(header)}).")
    rule = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"table row {list(row)!r} has {len(row)} cells; the header has {len(header)}.")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def seconds(value: float) -> str:
    """A duration for a table: ``1.23 s``, ``45.6 ms`` or ``789 µs`` (three significant digits)."""
    if value >= 1.0:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


@dataclass
class TimedRun:
    """One run of a timing benchmark: its mode (``"quick"`` or ``"full"``), that mode's settings, the
    machine it runs on (:func:`machine`) and the clock started by :meth:`begin`."""

    mode: str
    settings: dict
    host: dict
    start: float

    @classmethod
    def begin(cls, args: argparse.Namespace, settings_by_mode: dict, progress) -> TimedRun:
        """Start the clock for ``args.quick``'s mode and announce it on the ``progress`` line."""
        mode = "quick" if args.quick else "full"
        run = cls(mode, settings_by_mode[mode], machine(), time.perf_counter())
        progress(f"mode {mode}, build dir {args.build_dir}, {run.host['logical_cores']} cores, {run.host['cpu']}")
        return run

    def seconds(self) -> float:
        """Seconds since :meth:`begin`."""
        return time.perf_counter() - self.start

    def record(self, parameters: dict, **measurements) -> dict:
        """The JSON record: ``mode``, ``settings``, ``machine`` (with the load average now added as the
        end's), the ``measurements``, and the provenance of ``mode``, ``settings``,
        :func:`gdflows_book.timing.warm_time`'s defaults and ``parameters``, with the run's seconds."""
        from gdflows_book.provenance import provenance
        from gdflows_book.timing import MIN_REPEAT_SECONDS, SLOW_SECONDS

        self.host["load_average_1min_at_end"] = load_average()
        parameters = {
            "mode": self.mode,
            "settings": self.settings,
            "min_repeat_seconds": MIN_REPEAT_SECONDS,
            "slow_seconds": SLOW_SECONDS,
            **parameters,
        }
        return {
            "mode": self.mode,
            "settings": self.settings,
            "machine": self.host,
            **measurements,
            "provenance": provenance(parameters, seconds=self.seconds()),
        }
