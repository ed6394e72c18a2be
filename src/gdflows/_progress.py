r"""What a running :func:`gdflows.solve` shows, and its wall-time limit.

A solve runs as one compiled loop, so Python sees nothing of it until it returns. To report
from inside it, the step-size controller is wrapped (:class:`Monitored`): every attempted step it
counts accepted and rejected steps, and every ``countdown`` steps it calls back to the host
(``io_callback``) with the time reached. The host (:class:`Monitor`) reads the wall clock, draws
a one-line display and answers two things: whether to stop (the wall-time limit), and how many
steps to wait before the next call, chosen so that calls come about every ``REFRESH`` seconds
whatever a step costs (a host call costs ~0.1–0.4 ms on a CPU, more than a whole step of a toy
flow, so calling every step would double the cost of cheap solves). A stop ends the loop after
the current step with diffrax's ``event_occurred`` result: every save time reached so far holds
exactly the value an unlimited solve computes there, and the later ones are left unfilled.

The wrapper adds no arithmetic to the solution (the wrapped controller decides every step), so
a monitored solve follows the same steps as an unmonitored one.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

AUTO_AFTER = 5.0  # seconds: progress="auto" shows the display once a solve is projected to take longer
REFRESH = 0.25  # seconds between host calls (display updates and wall-clock checks) once the rate is known
_GROWTH = 4  # the gap between host calls grows at most this much per call (from one step)
_MAX_COUNTDOWN = 1 << 30


class Monitor:
    r"""The host side of one monitored solve: clock, step counts, display, stop decision.

    Args:
      name: the flow's name, shown in the display.
      t0, h, steps: the solve covers :math:`[t_0, t_0 + Nh]`; the display shows the GD step
        :math:`(t - t_0)/h` reached.
      progress: ``True`` (display from the first report), ``False`` (never) or ``"auto"``
        (once the solve has stepped for 0.5 s and is projected, from its rate, to step for more
        than ``AUTO_AFTER`` s; compilation excluded).
      max_wall_time: seconds from the monitor's creation after which the solve is stopped; None: never.
      stream: where the display goes (``sys.stderr`` when None, read at each write).
    """

    def __init__(self, name: str, *, t0: float, h: float, steps: int, progress, max_wall_time, stream=None, start=None):
        self.name, self.t0, self.h, self.steps = name, t0, h, steps
        self.progress, self.max_wall_time, self._stream = progress, max_wall_time, stream
        self.start = time.perf_counter() if start is None else start  # the clock max_wall_time counts from
        self.t, self.accepted, self.rejected = t0, 0, 0
        self.stopped = False  # whether the wall-time limit ended the solve
        self.showing = progress is True
        self._last_call, self._last_steps, self._last_draw = None, 0, -math.inf
        self._first = None  # (clock, t) at the first report: the rate excludes compilation

    @property
    def elapsed(self) -> float:
        """Seconds since the monitor was created (compilation included)."""
        return time.perf_counter() - self.start

    def report(self, t: float, accepted: int, rejected: int) -> tuple[bool, int]:
        """One call from inside the solve: returns (stop now, steps until the next call)."""
        now = time.perf_counter()
        self.t, self.accepted, self.rejected = t, accepted, rejected
        if self._first is None:
            self._first = (now, t)
        steps = accepted + rejected
        countdown = 1
        if self._last_call is not None and now > self._last_call:
            rate = (steps - self._last_steps) / (now - self._last_call)  # attempted steps per second
            countdown = int(min(max(1.0, rate * REFRESH), _GROWTH * max(1, steps - self._last_steps)))
        self._last_call, self._last_steps = now, steps
        elapsed = now - self.start
        running = now - self._first[0]  # since the first step: compilation excluded
        if self.progress == "auto" and not self.showing and running >= 0.5:
            self.showing = running + self._remaining(now) > AUTO_AFTER
        if self.max_wall_time is not None and elapsed >= self.max_wall_time:
            self.stopped = True
        if self.showing and (now - self._last_draw >= REFRESH or self.stopped):
            self._draw(now)
        return self.stopped, min(countdown, _MAX_COUNTDOWN)

    def _remaining(self, now: float) -> float:
        """Seconds left, from the rate in simulated time since the first report (inf before any progress)."""
        clock, t = self._first
        if self.t <= t or now <= clock:
            return math.inf
        return (self.t0 + self.steps * self.h - self.t) * (now - clock) / (self.t - t)

    def line(self, now: float | None = None) -> str:
        """The display's text: GD step reached, solver steps, time spent and left."""
        now = time.perf_counter() if now is None else now
        left = self._remaining(now) if not self.stopped and self.t < self.t0 + self.steps * self.h else math.nan
        left = f", ~{left:.0f} s left" if math.isfinite(left) else ""
        return (
            f"{self.name}: GD step {(self.t - self.t0) / self.h:.2f}/{self.steps} | {self.accepted:,} accepted, "
            f"{self.rejected:,} rejected steps | {now - self.start:.1f} s{left}"
        )

    def _draw(self, now: float, end: str = "") -> None:
        stream: TextIO = self._stream or sys.stderr
        stream.write("\r" + self.line(now).ljust(79) + end)
        stream.flush()
        self._last_draw = now

    def close(self, t: float, accepted: int, rejected: int) -> None:
        """The solve returned: final counts; ends the display's line if one was shown."""
        self.t, self.accepted, self.rejected = t, accepted, rejected
        if self.showing:
            self._draw(time.perf_counter(), end="\n")


_MONITORS: dict[int, Monitor] = {}
_IDS = itertools.count(1)
_LOCK = threading.Lock()


@contextlib.contextmanager
def monitoring(monitor: Monitor) -> Iterator[jax.Array]:
    """Register ``monitor`` for the solve run inside the block; yields its id for :class:`Monitored`."""
    with _LOCK:
        key = next(_IDS)
        _MONITORS[key] = monitor
    try:
        yield jnp.asarray(key, dtype=jnp.int32)
    finally:
        with _LOCK:
            del _MONITORS[key]


def _report(key, t, accepted, rejected):
    monitor = _MONITORS.get(int(key))
    if monitor is None:  # not ours any more (e.g. the block was left): never stop, never call again
        return np.bool_(False), np.int32(_MAX_COUNTDOWN)
    stop, countdown = monitor.report(float(t), int(accepted), int(rejected))
    return np.bool_(stop), np.int32(countdown)


class Monitored(diffrax.AbstractStepSizeController):
    """A step-size controller that lets ``controller`` decide every step and reports to a :class:`Monitor`.

    State: the wrapped controller's state, accepted and rejected steps so far, and the steps left
    until the next host call. When the host says stop, the step's result becomes
    ``RESULTS.event_occurred``, which ends diffrax's loop after this step (kept or not, as the
    wrapped controller decided).
    """

    controller: diffrax.AbstractStepSizeController
    key: jax.Array  # () int32: the monitor's id in the registry

    def wrap(self, direction):
        return Monitored(self.controller.wrap(direction), self.key)

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        tnext, state = self.controller.init(terms, t0, t1, y0, dt0, args, func, error_order)
        zero = jnp.zeros((), jnp.int32)
        return tnext, (state, zero, zero, jnp.ones((), jnp.int32))

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state):
        state, accepted, rejected, countdown = controller_state
        keep, tprev, tnext, made_jump, state, result = self.controller.adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, state
        )
        accepted = accepted + jnp.where(keep, 1, 0).astype(jnp.int32)
        rejected = rejected + jnp.where(keep, 0, 1).astype(jnp.int32)
        countdown = countdown - 1

        def call():
            shapes = (jax.ShapeDtypeStruct((), jnp.bool_), jax.ShapeDtypeStruct((), jnp.int32))
            return io_callback(_report, shapes, self.key, tprev, accepted, rejected, ordered=False)

        stop, countdown = jax.lax.cond(countdown <= 0, call, lambda: (jnp.bool_(False), countdown))
        result = diffrax.RESULTS.where(stop, diffrax.RESULTS.event_occurred, result)
        return keep, tprev, tnext, made_jump, (state, accepted, rejected, countdown), result
