"""The one timer of the benchmarks: wall time of compiled JAX calls, and progress lines.

Every timing blocks until the result is ready (``jax.block_until_ready``) and reports the
first call, which includes tracing and compilation, apart from the warm calls.
"""

from __future__ import annotations

import statistics
import time

#: :func:`warm_time`'s defaults: a timed repeat lasts at least this long ...
MIN_REPEAT_SECONDS = 0.05
#: ... and work slower than this per unit is repeated ``slow_repeats`` times only.
SLOW_SECONDS = 0.5


def progress_printer(name: str):
    """``message -> None``: print ``[name HH:MM:SS] message`` at once (CI logs stream it)."""

    def progress(message: str) -> None:
        print(f"[{name} {time.strftime('%H:%M:%S')}] {message}", flush=True)

    return progress


def first_call(function) -> tuple[float, object]:
    """``(seconds, result)`` of the first call ``function()`` (tracing, compilation and one run)."""
    import jax

    start = time.perf_counter()
    result = jax.block_until_ready(function())
    return time.perf_counter() - start, result


def python_loop(function):
    """``number -> seconds`` for ``number`` blocking calls of ``function()`` from Python."""
    import jax

    def run(number: int) -> float:
        start = time.perf_counter()
        for _ in range(number):
            jax.block_until_ready(function())
        return time.perf_counter() - start

    return run


def timed(function, repeats: int) -> tuple[object, dict]:
    """``(result, timings)`` of ``function()``: the first call (``first_call_s``) and the median,
    min and max of ``repeats`` further calls, one call per repeat."""
    first, result = first_call(function)
    samples = []
    for _ in range(repeats):
        seconds, result = first_call(function)
        samples.append(seconds)
    timings = {"first_call_s": first, "median_s": statistics.median(samples), "min_s": min(samples)}
    return result, timings | {"max_s": max(samples)}


def warm_time(
    run,
    *,
    repeats: int,
    slow_repeats: int | None = None,
    min_seconds: float = MIN_REPEAT_SECONDS,
    slow_seconds: float = SLOW_SECONDS,
) -> dict:
    """Median wall time of one unit of work over ``repeats`` repeats of a warmed-up ``run``, for
    work too short to time one call at a time.

    ``run(number)`` does ``number`` units of work and returns the seconds it took. A repeat runs
    ``number`` units, chosen so that it lasts at least ``min_seconds``, and records the mean;
    work slower than ``slow_seconds`` per unit is repeated only ``slow_repeats`` times.
    """
    number = 1
    elapsed = run(number)
    while elapsed < min_seconds:
        number = max(number + 1, min(int(number * 1.5 * min_seconds / max(elapsed, 1e-7)), 10**7))
        elapsed = run(number)
    if elapsed / number > slow_seconds and slow_repeats is not None:
        repeats = min(repeats, slow_repeats)
    samples = [elapsed / number] + [run(number) / number for _ in range(repeats - 1)]
    return {
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "repeats": len(samples),
        "units_per_repeat": number,
    }
