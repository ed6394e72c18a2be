r"""What a run costs, counted: loss values, gradients, Hessian-vector products, third-derivative products
and eigensolver calls, as the compiled program performs them.

A flow's cost per GD step is the number of derivative evaluations its solver spends, and that depends
on the solver's accepted and rejected steps, on Lanczos and LOBPCG iterations that stop early and on
branches taken at run time; a formula per flow cannot know it. :class:`CostTally` counts it::

    tally = CostTally()
    counted = tally.wrap(loss)  # the same loss, counting its evaluations
    with tally:  # and, meanwhile, the library's eigensolver calls
        run = gf.solve(gf.principal_flow(counted, lr=h), theta0, steps=10)
    tally.cost / 10  # Cost(gradients=..., hvps=..., ...) per GD step

**How.** When JAX traces the wrapped loss it sees how many automatic-differentiation transformations
(``grad``, ``jvp``, ``linearize``) wrap the arguments: none is a loss value, one a gradient (or a
forward directional derivative, of the same cost), two a Hessian-vector product, three or more a
third-derivative product. A ``vmap`` multiplies the count by its batch size (a dense Hessian is
:math:`d` Hessian-vector products). The wrapped loss plants a :func:`jax.debug.callback` with that
count in the compiled program, so the tally grows each time the program *runs* that evaluation —
inside ``while`` loops, once per iteration; in a ``cond``, only on the branch taken. Eigensolver calls
(a dense Hessian and its eigendecomposition, a Lanczos run, a LOBPCG run) are counted by the library's
:mod:`gdflows.spectral` while the tally is entered (``with tally:``) at trace time.

The callbacks cost a host round trip each (tens of microseconds): count in one run, time another.
Counting reads JAX's tracer types (``JVPTracer``, ``LinearizeTracer``, ``BatchTracer``); the test
suite checks every count against a known cost, so a JAX upgrade that changes them is caught.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

import jax

__all__ = ["Cost", "CostTally", "note"]

_AD_TRACERS = ("JVPTracer", "LinearizeTracer")
_RECORDING: list[CostTally] = []
_LINEARIZING: list[bool] = []  # inside linearized(): a gradient is being linearised, not a Hessian evaluated


class Cost(NamedTuple):
    """Counts of what a run evaluated (or, divided by a number of GD steps, what it spent per step)."""

    values: float  # loss values
    gradients: float  # gradients (and forward directional derivatives)
    hvps: float  # Hessian-vector products, including the d columns of every dense Hessian
    third_derivatives: float  # third-derivative products (nabla^3 E[u, v], or any third-order evaluation)
    dense_hessians: float  # dense Hessians formed (each followed, in the flows, by one d x d eigendecomposition)
    lanczos_runs: float  # Lanczos runs (each m Hessian-vector products, counted in hvps)
    lobpcg_runs: float  # LOBPCG runs (their Hessian-vector products are counted in hvps)

    @property
    def eigensolver_calls(self) -> float:
        """Dense Hessian eigendecompositions, Lanczos runs and LOBPCG runs together."""
        return self.dense_hessians + self.lanczos_runs + self.lobpcg_runs

    def __truediv__(self, steps: float) -> Cost:
        return Cost(*(count / steps for count in self))


_KINDS = {
    0: "values",
    1: "gradients",
    2: "hvps",
    3: "third_derivatives",
    "hvp": "hvps",
    "dense_hessian": "dense_hessians",
    "lanczos": "lanczos_runs",
    "lobpcg": "lobpcg_runs",
}


def _walk(leaf, ad_traces: set, batches: dict) -> None:
    """Record the AD traces and the batch sizes of the vmaps that ``leaf`` is wrapped in."""
    if not isinstance(leaf, jax.core.Tracer):
        return
    name = type(leaf).__name__
    if name in _AD_TRACERS:
        ad_traces.add(id(leaf._trace))
        _walk(leaf.primal, ad_traces, batches)
        _walk(leaf.tangent, ad_traces, batches)
    elif name == "BatchTracer":
        if isinstance(leaf.batch_dim, int):
            batches[id(leaf._trace)] = leaf.val.shape[leaf.batch_dim]
        _walk(leaf.val, ad_traces, batches)


def _levels(values) -> tuple[int, int]:
    """(derivative order, batch multiplicity) of a call whose arguments are ``values`` (any pytree)."""
    ad_traces: set = set()
    batches: dict = {}
    for leaf in jax.tree.leaves(values):
        _walk(leaf, ad_traces, batches)
    return len(ad_traces), functools.reduce(lambda a, b: a * b, batches.values(), 1)


class CostTally:
    """A running count of derivative evaluations and eigensolver calls (see the module's docstring)."""

    def __init__(self) -> None:
        self._counts: Counter = Counter()

    def _add(self, kind: str, times: int) -> None:
        self._counts[kind] += times

    def _plant(self, field: str, times: int) -> None:
        """A callback in the program being traced that adds ``times`` to ``field`` each time it runs."""
        jax.debug.callback(functools.partial(self._add, field, times))

    def record(self, kind, like) -> None:
        """Count one ``kind`` (times the batch size of ``like``) each time the traced program runs this point."""
        self._plant(_KINDS[kind], _levels(like)[1])

    def wrap(self, loss: Callable) -> Callable:
        """``loss`` with every evaluation counted by its derivative order (values, gradients, HVPs, third)."""

        @functools.wraps(loss)
        def counted(*args):
            order, times = _levels(args)
            order -= len(_LINEARIZING)  # the linearisation of a gradient costs a gradient; its uses count as HVPs
            self._plant(_KINDS[min(order, 3)], times)
            return loss(*args)

        return counted

    @property
    def cost(self) -> Cost:
        """Everything counted so far (the callbacks of a finished run have all arrived)."""
        jax.effects_barrier()
        return Cost(*(float(self._counts[field]) for field in Cost._fields))

    def reset(self) -> None:
        """Forget the counts (e.g. those of building a flow, before the run to be measured)."""
        jax.effects_barrier()
        self._counts.clear()

    def __enter__(self) -> CostTally:
        _RECORDING.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _RECORDING.remove(self)


def note(kind: str, like) -> None:
    """Count one ``kind`` (``"hvp"`` of a linearised gradient, ``"dense_hessian"``, ``"lanczos"``, ``"lobpcg"``)
    in the tally entered at trace time, if any; ``like`` is an argument of the call (its vmaps multiply the
    count). A no-op, and nothing in the compiled program, when no tally is entered."""
    if _RECORDING:
        _RECORDING[-1].record(kind, like)


def linearized_hvp(gradient: Callable, theta):
    r"""``jax.linearize(gradient, theta)``: the gradient at ``theta`` and the map :math:`v \mapsto H(\theta)v`,
    counted as one gradient (the linearisation) and one Hessian-vector product per application."""
    _LINEARIZING.append(True)
    try:
        value, linear = jax.linearize(gradient, theta)
    finally:
        _LINEARIZING.pop()

    def apply(v):
        note("hvp", v)
        return linear(v)

    return value, apply
