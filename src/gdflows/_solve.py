r"""Integrate any :class:`~gdflows.flows.Flow` with diffrax and read it at GD's times :math:`t_n = nh`.

By default the solver is adaptive and error-controlled (an explicit Runge–Kutta pair with a
PID step-size controller): its local error per step is kept below
``atol + rtol * |state|``, so the flow is resolved to the tolerance asked for, and
the flow-versus-GD error that a notebook reports is the model's, not the solver's.

The fixed-step schemes ``"euler"`` and ``"rk4"`` take ``fixed_steps_per_gd_step`` equal steps
of size :math:`h/k` per GD step instead, with no error control. They are there to study how a
flow behaves under a plain discretisation (for instance one that steps across a discontinuity
of the vector field where an adaptive solver stops); their error has to be judged by halving
the step, not read off a tolerance.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from gdflows._after_step import AfterStep
from gdflows._checks import check_lr, check_number, check_positive_int, check_steps, check_theta0
from gdflows._exponential import integrate_exponential
from gdflows._progress import Monitor, Monitored, monitoring
from gdflows._pytree import flat_problem
from gdflows._results import FlowScan, Solution, SolverStats
from gdflows.errors import CostWarning, DivergenceWarning, PrecisionWarning, WallTimeWarning
from gdflows.flows import Flow


class _RK4(diffrax.AbstractERK):
    """The classical fourth-order Runge–Kutta method, for fixed steps (diffrax has no such class).

    Its error estimate is zero, so it must be run with fixed steps (``diffrax.StepTo``); dense
    output is the third-order Hermite interpolant, as for diffrax's other explicit methods.
    """

    tableau: ClassVar[diffrax.ButcherTableau] = diffrax.ButcherTableau(
        c=np.array([0.5, 0.5, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    )
    interpolation_cls: ClassVar[Callable] = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        del terms
        return 4


# The adaptive solvers offered, with their new vector-field evaluations per attempted step
# (first-same-as-last pairs such as Tsit5 and Dopri5 reuse the last stage of an accepted step).
SOLVERS = {
    "tsit5": (diffrax.Tsit5, 6),
    "dopri5": (diffrax.Dopri5, 6),
    "dopri8": (diffrax.Dopri8, 13),
}
# The fixed-step schemes, with their vector-field evaluations per step (none is first-same-as-last).
FIXED_STEP_SOLVERS = {
    "euler": (diffrax.Euler, 1),
    "rk4": (_RK4, 4),
}


def _evaluations(solver_name: str, attempted: int) -> int:  # adaptive solvers only
    """Vector-field evaluations of a solve: the stages of every attempted step, plus one at ``t0``.

    Exact for a solve without rejected steps; after a rejected step a first-same-as-last pair
    sometimes pays one evaluation more, so then it is a lower bound short by at most the number
    of rejected steps (both checked against a counter inside the compiled solve in the tests).
    """
    return SOLVERS[solver_name][1] * attempted + 1


class _Floored(diffrax.AbstractStepSizeController):
    """A step-size controller with a ``dtmin`` (a :class:`diffrax.PIDController`), counting the accepted steps no
    longer than ``dtmin``.

    With ``force_dtmin`` (diffrax's default) the controller never proposes a step below ``dtmin`` and keeps a step
    at that floor whatever its error estimate; the count says how many steps of a solve were not error-controlled.
    """

    controller: diffrax.AbstractStepSizeController
    dtmin: float

    def wrap(self, direction):
        return _Floored(self.controller.wrap(direction), self.dtmin)

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        tnext, state = self.controller.init(terms, t0, t1, y0, dt0, args, func, error_order)
        return tnext, (state, jnp.zeros((), jnp.int32))

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state):
        state, floor = controller_state
        keep, tprev, tnext, made_jump, state, result = self.controller.adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, state
        )
        at_floor = keep & (t1 - t0 <= self.dtmin * (1 + 1e-6))  # the slack absorbs the round-off of t1 - t0
        return keep, tprev, tnext, made_jump, (state, floor + at_floor.astype(jnp.int32)), result


def _describe(result) -> str:
    """diffrax's message for a failed solve (its text sits between angle brackets in ``str``)."""
    text = str(result)
    return text[text.find("<") + 1 : text.rfind(">")] if "<" in text else text


@eqx.filter_jit
def _integrate(
    vector_field,
    position,
    loss,
    state0,
    *,
    ts: jax.Array,
    rtol: float,
    atol: float,
    solver_name: str,
    max_steps: int,
    saves_per_step: int = 1,
    substeps: int | None = None,
    record_steps: bool = False,
    monitor: jax.Array | None = None,
    after_step=None,
    dtmin: float | None = None,
) -> tuple[FlowScan, _Ending | None]:
    """The jittable core of :func:`solve` and :func:`solve_scan`: a diffrax solve saved at ``ts``.

    It takes the flow's three traced functions, not the :class:`Flow` itself, so that the flow's
    name and learning rate (static Python values) are not part of the compilation cache key.
    Adaptive solvers (``SOLVERS``) are made to step onto every ``saves_per_step``-th save time
    (GD's times), so the values compared with GD are the solver's own, not interpolated between
    steps. A fixed-step scheme (``FIXED_STEP_SOLVERS``, with ``substeps`` given) takes exactly
    ``substeps`` equal steps between consecutive save times, so it steps onto every save time;
    ``rtol``, ``atol`` and ``max_steps`` are then unused. Never raises on failure: entries after
    a failure are non-finite and ``successful`` is False. Safe under ``vmap`` over ``state0``.
    With ``record_steps`` (adaptive solvers), second comes an :class:`_Ending` (the end times of
    all accepted steps and the state the solver reached, with the field there) and ``stop_kind`` of
    the scan tells a stall from a spent budget; else None, and ``stop_kind`` knows only finished
    (0) and non-finite (1). A flow's ``after_step`` (if not
    None) is applied to the state after every step (``AfterStep``). With ``monitor`` (the id of a
    registered :class:`~gdflows._progress.Monitor`) the controller reports to it and may be stopped
    by it (result ``event_occurred``); not under ``vmap``. With ``dtmin`` (adaptive solvers) the step never falls
    below it, a step at that floor is kept whatever its error estimate, and ``floor_steps`` counts those steps.
    """
    term = diffrax.ODETerm(lambda t, y, args: vector_field(t, y))
    if substeps is None:
        solver = SOLVERS[solver_name][0]()
        controller = diffrax.PIDController(rtol=rtol, atol=atol, step_ts=ts[::saves_per_step], dtmin=dtmin)
        if dtmin is not None:
            controller = _Floored(controller, dtmin)
    else:
        solver = FIXED_STEP_SOLVERS[solver_name][0]()
        fractions = jnp.arange(substeps, dtype=ts.dtype) / substeps
        grid = (ts[:-1, None] + (ts[1:] - ts[:-1])[:, None] * fractions).ravel()
        controller = diffrax.StepTo(ts=jnp.concatenate([grid, ts[-1:]]))
        max_steps = grid.shape[0]
    if monitor is not None:
        controller = Monitored(controller, monitor)
    if after_step is not None:
        solver = AfterStep(solver, after_step)
    record_steps = record_steps and substeps is None
    floored = dtmin is not None and substeps is None
    saveat = diffrax.SaveAt(ts=ts, controller_state=floored)
    if record_steps:  # one float per accepted step: its end time
        saveat = diffrax.SaveAt(
            subs=[
                diffrax.SubSaveAt(ts=ts),
                diffrax.SubSaveAt(steps=True, fn=lambda t, y, args: t),
                diffrax.SubSaveAt(t1=True),  # with throw=False: the state where a failed solve stopped
            ],
            controller_state=floored,
        )
    solution = diffrax.diffeqsolve(
        term,
        solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=state0,
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=False,
    )
    ys = solution.ys[0] if record_steps else solution.ys
    positions = jax.vmap(position)(ys)
    losses = jax.vmap(loss)(positions)
    successful = solution.result == diffrax.RESULTS.successful
    finite = jnp.all(jnp.isfinite(losses)) & jnp.all(jnp.isfinite(positions))
    ending, code = None, jnp.where(successful & finite, 0, 1)  # without a record: finished or non-finite
    if record_steps:
        ending = _ending(vector_field, position, solution, ts[1] - ts[0])
        exhausted = solution.stats["num_accepted_steps"] + solution.stats["num_rejected_steps"] >= max_steps
        stalled = ending.last_step < STALL * (ts[1] - ts[0])
        code = jnp.where(
            ~successful & ending.finite,
            jnp.where(ending.blow_up, 2, jnp.where(stalled, 3, jnp.where(exhausted, 4, 1))),
            code,
        )
    scan = FlowScan(
        theta=positions,
        loss=losses,
        state=ys,
        successful=successful,
        accepted_steps=solution.stats["num_accepted_steps"],
        rejected_steps=solution.stats["num_rejected_steps"],
        result=solution.result,
        stop_kind=code,
        floor_steps=_floor_steps(solution.controller_state, monitor is not None) if floored else 0,
    )
    return scan, ending


def _floor_steps(controller_state, monitored: bool) -> jax.Array:
    """The count of :class:`_Floored` in a solve's final controller state (inside :class:`Monitored`'s, if watched)."""
    return (controller_state[0] if monitored else controller_state)[1]


class _Ending(NamedTuple):
    """Where an adaptive solve ended (recorded by ``_integrate(record_steps=True)``), for ``solve``'s report."""

    step_times: jax.Array  # (max_steps,) end times of the accepted steps, inf after the last
    reached: jax.Array  # () the time the solver reached
    last_step: jax.Array  # () its last accepted step (inf if none)
    speed: jax.Array  # () the norm of the vector field at the state it reached
    finite: jax.Array  # () bool: whether that state is finite
    blow_up: jax.Array  # () bool: speed * interval > BLOW_UP_SPEED * (1 + |theta|) there, or speed not finite
    # (then the solve stopped on its way to a finite-time blow-up, whether it stalled or spent its budget first)
    state: Any  # the state it reached


def _ending(vector_field, position, solution, interval) -> _Ending:
    """The :class:`_Ending` of a diffrax solution saved with ``_integrate``'s three sub-saves (traceable)."""
    ends, state = solution.ys[1], jax.tree.map(lambda leaf: leaf[0], solution.ys[2])
    accepted = solution.stats["num_accepted_steps"]
    times = jnp.concatenate([solution.ts[0][:1], ends])
    reached = times[accepted]
    last_step = jnp.where(accepted > 0, reached - times[jnp.maximum(accepted - 1, 0)], jnp.inf)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(state)]))

    def norm_of_field(_):
        velocity = vector_field(reached, state)
        return jnp.sqrt(sum(jnp.sum(jnp.abs(leaf) ** 2) for leaf in jax.tree.leaves(velocity))).astype(reached.dtype)

    # only a failed solve needs it (a finished one is not charged an extra evaluation)
    successful = solution.result == diffrax.RESULTS.successful
    speed = jax.lax.cond(successful, lambda _: jnp.zeros((), reached.dtype), norm_of_field, None)
    size = jnp.linalg.norm(position(state))
    blow_up = ~jnp.isfinite(speed) | (speed * interval > BLOW_UP_SPEED * (1.0 + size))
    return _Ending(ends, reached, last_step, speed, finite, blow_up, state)


# What stopped a solve, by the code in FlowScan.stop_kind (Solution.stop_kind holds the name).
STOP_KINDS = (None, "non-finite", "blow-up", "step-collapse", "budget")
# A failed solve whose last accepted step was below this fraction of the save interval stalled
# (at that pace its step budget could never reach the next save time).
STALL = 1e-5
# A failed solve stopped where one save interval at the field's speed would carry the state this
# many times its own size away is on its way to a finite-time blow-up (stalled or out of budget).
BLOW_UP_SPEED = 1e6


def _check_flow(flow) -> None:
    """Raise unless ``flow`` is a :class:`Flow` (a plain loss function is the usual mistake)."""
    if not isinstance(flow, Flow):
        raise TypeError(
            f"flow must be a gdflows Flow, got {flow!r} of type {type(flow).__name__}. Build one from the loss "
            "with a flow factory: gdflows.gradient_flow(loss, lr=h), modified_flow(loss, lr=h, order=1), "
            "principal_flow(loss, lr=h), central_flow(loss, lr=h) or rod_flow(loss, lr=h)."
        )


def _check_solver(solver: str, fixed_steps: int | None, fixed_name: str, flow: Flow | None = None) -> None:
    """Raise unless ``solver`` is known (and fits ``flow``) and ``fixed_steps`` (named ``fixed_name``) is given just
    for fixed-step ones."""
    if solver not in SOLVERS and solver not in FIXED_STEP_SOLVERS and solver != EXPONENTIAL:
        raise ValueError(
            f"solver must be one of {sorted(SOLVERS) + sorted(FIXED_STEP_SOLVERS) + [EXPONENTIAL]}, "
            f"got solver={solver!r}."
        )
    if solver == EXPONENTIAL and flow is not None and flow.exponential is None:
        raise ValueError(
            f"solver='exponential' needs a flow that offers its linear part (flow.exponential), and {flow.name!r} does "
            "not: it is built for the principal flow, principal_flow(loss, lr=h) with branch 'shifted' or "
            "'principal'; for this flow use an adaptive solver such as solver='dopri8'."
        )
    if solver in FIXED_STEP_SOLVERS and fixed_steps is None:
        raise ValueError(
            f"solver={solver!r} takes fixed steps and needs {fixed_name}, the number of equal steps; "
            f"pass e.g. {fixed_name}=200."
        )
    if solver not in FIXED_STEP_SOLVERS and fixed_steps is not None:
        raise ValueError(
            f"{fixed_name} is only for the fixed-step solvers {sorted(FIXED_STEP_SOLVERS)}, got "
            f"{fixed_name}={fixed_steps!r} with the adaptive solver={solver!r}."
        )


def _check_dtmin(dtmin, solver: str) -> float | None:
    """``dtmin`` as a positive float (or None); only the adaptive diffrax solvers take a floor on their step."""
    if dtmin is None:
        return None
    dtmin = check_number("dtmin", dtmin, example="dtmin=1e-4 * h (a ten-thousandth of the GD step)")
    if solver not in SOLVERS:
        raise ValueError(
            f"dtmin is a floor on an adaptive solver's step, for solver in {sorted(SOLVERS)}, got dtmin={dtmin!r} "
            f"with solver={solver!r}; drop dtmin or use solver='tsit5' (or 'dopri5', 'dopri8')."
        )
    return dtmin


def solve_scan(
    flow: Flow,
    state0,
    *,
    ts: jax.Array,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    solver: str = "dopri8",
    max_steps: int = 100_000,
    fixed_steps_per_interval: int | None = None,
    diagnose: bool = False,
    dtmin: float | None = None,
) -> FlowScan:
    r"""Integrate ``flow`` from the state ``state0`` and save it at ``ts``: the jit- and vmap-friendly :func:`solve`.

    What :func:`gd_scan` is to :func:`gd`: no checks of the result, no warnings, fixed-length
    arrays, so it can be mapped over a batch of starts (``jax.vmap(lambda s: solve_scan(flow, s,
    ts=ts).theta[-1])(jax.vmap(flow.init)(starts))``). Adaptive solvers step onto every time in
    ``ts``; the fixed-step ones take ``fixed_steps_per_interval`` equal steps between consecutive
    times of ``ts``.

    Args:
      flow: any :class:`~gdflows.flows.Flow`.
      state0: the initial state, ``flow.init(theta0)``, in the flat view: for pytree parameters
        ravel them (``theta0, unravel = gdflows.ravel(params)``), build the flow on the flat loss
        ``lambda th: loss(unravel(th), *args)`` and map results back with ``unravel``.
      ts: increasing save times, shape ``(S,)``, starting at the initial time.
      rtol, atol, solver, max_steps: as for :func:`solve`.
      fixed_steps_per_interval: for ``"euler"`` and ``"rk4"`` only: equal steps between
        consecutive save times.
      diagnose: for the adaptive solvers, tell in ``stop_kind`` a blow-up, a step-size collapse
        and a spent budget apart (as :func:`solve` does, with ``ts[1] - ts[0]`` as the save
        interval); it records every accepted step's time, ``max_steps`` floats per solve.
      dtmin: as for :func:`solve`; ``floor_steps`` of the result counts the steps kept at the floor.

    Returns:
      A :class:`~gdflows.FlowScan`; entries after a failed solve are non-finite and
      ``successful`` is False.
    """
    _check_flow(flow)
    rtol = check_number("rtol", rtol, example="rtol=1e-10")
    atol = check_number("atol", atol, example="atol=1e-12")
    max_steps = check_positive_int("max_steps", max_steps, example="max_steps=100_000")
    _check_solver(solver, fixed_steps_per_interval, "fixed_steps_per_interval", flow)
    if fixed_steps_per_interval is not None:
        fixed_steps_per_interval = check_positive_int("fixed_steps_per_interval", fixed_steps_per_interval)
    dtmin = _check_dtmin(dtmin, solver)
    if solver == EXPONENTIAL:
        return _integrate_exponential_flow(flow, state0, ts=jnp.asarray(ts), rtol=rtol, atol=atol, max_steps=max_steps)[
            0
        ]
    return _integrate_flow(
        flow,
        state0,
        ts=jnp.asarray(ts),
        rtol=rtol,
        atol=atol,
        solver_name=solver,
        max_steps=max_steps,
        substeps=fixed_steps_per_interval,
        record_steps=diagnose,
        dtmin=dtmin,
    )[0]


def _integrate_flow(flow: Flow, state0, **settings):
    """:func:`_integrate` on ``flow``'s traced functions (never the flow itself: its name and ``lr`` would key the
    compilation cache)."""
    return _integrate(flow.vector_field, flow.position, flow.loss, state0, after_step=flow.after_step, **settings)


# solver="exponential": adaptive ETDRK4 with the principal flow's linear part frozen per step (gdflows._exponential)
EXPONENTIAL = "exponential"


def _integrate_exponential_flow(flow: Flow, state0, **settings):
    """:func:`integrate_exponential` on ``flow``'s traced functions: ``(FlowScan, field evaluations)``."""
    size = jax.tree.leaves(state0)[0].shape[-1]  # the parameters' number: the method may depend on it
    return integrate_exponential(flow.exponential(size), flow.position, flow.loss, state0, **settings)


def _flat_flow(flow: Flow, theta0) -> tuple[Flow, jax.Array, object]:
    """``(flow on the flat loss, flat theta0, unravel)``; a 1-D ``theta0`` passes through (unravel None)."""
    loss, theta0, unravel = flat_problem(flow.loss, theta0)
    if unravel is None:
        return flow, theta0, None
    if flow.factory is None:
        raise TypeError(
            f"solve got a pytree theta0, but the flow {flow.name!r} was not built by a gdflows flow factory, so it "
            "cannot be rebuilt on the ravelled loss; pass a flat 1-D theta0 (gdflows.ravel(params)[0]) or build "
            "the flow with a factory such as gdflows.principal_flow(loss, lr=h)."
        )
    return flow.factory(loss), theta0, unravel


# progress="auto" watches solves on at least this many parameters. The watching costs ~10 us per
# solver step on a CPU (the host callback inside the loop keeps XLA from compiling the loop body as
# one kernel): ~90% on a 2-parameter toy, whose steps cost about as much, a few per cent from a
# 2-D principal flow up; such toys finish in seconds anyway.
AUTO_PARAMETERS = 100

# Above this many parameters, solve(central_flow(...)) warns and points to central_flow_run.
CENTRAL_SOLVE_PARAMETERS = 300


def _steer_central(flow: Flow, theta0: jax.Array) -> None:
    """A :class:`~gdflows.CostWarning` for the central flow on a network: :func:`central_flow_run` is the cheap path."""
    if flow.name == "central flow" and theta0.size > CENTRAL_SOLVE_PARAMETERS:
        warnings.warn(
            f"solve(central_flow(...)) on {theta0.size:,} parameters: each of the adaptive solver's vector-field "
            "evaluations (13 per Dopri8 step) tracks the top eigenpairs and solves an SDCP, so this can run for "
            "minutes per GD step. For networks use gdflows.central_flow_run(loss, theta0, lr=..., steps=..., "
            "substeps=...), forward Euler substeps at one evaluation each; pass progress=True or max_wall_time= "
            "to watch or bound this solve.",
            CostWarning,
            stacklevel=3,
        )


def _check_lr_matches(flow: Flow, lr) -> float:
    """The flow's learning rate; an explicit ``lr`` must agree with it."""
    h = check_lr(flow.lr)
    if lr is not None and check_lr(lr) != h:
        raise ValueError(
            f"lr={lr!r} disagrees with the learning rate the flow was built with, flow.lr={flow.lr!r} "
            f"({flow.name}); solve reads flow.lr, so drop lr=, or build the flow with lr={lr!r}."
        )
    return h


def solve(
    flow: Flow,
    theta0,
    *,
    steps: int,
    lr: float | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    solver: str = "dopri8",
    max_steps: int = 100_000,
    saves_per_step: int = 1,
    fixed_steps_per_gd_step: int | None = None,
    progress: bool | str = "auto",
    max_wall_time: float | None = None,
    dtmin: float | None = None,
) -> Solution:
    r"""Integrate ``flow`` from ``theta0`` and return it at :math:`t_n = nh`, :math:`n = 0, \dots, N`.

    Args:
      flow: any :class:`~gdflows.flows.Flow`; its ``lr`` is the learning rate :math:`h` of the GD
        compared with, which sets the save times.
      theta0: initial parameters :math:`\theta(0)`, a 1-D float array or any pytree of float
        arrays (float64 for the tight tolerances; float32 draws a
        :class:`~gdflows.PrecisionWarning`). A pytree is ravelled and the flow rebuilt on the flat
        loss by its ``factory``; the result's ``params`` has the pytree's structure.
      steps: number of GD steps :math:`N` to cover, :math:`t \in [0, Nh]`.
      lr: optional, only as a check: if given it must equal ``flow.lr`` (else ValueError).
      rtol, atol: the local error tolerances of the adaptive step-size controller (unused, and
        recorded as None, by the fixed-step schemes).
      solver: adaptive: ``"dopri8"`` (default: an 8th-order pair, the cheapest at the tight
        tolerances used to compare flows with GD), ``"tsit5"`` or ``"dopri5"`` (cheaper at loose
        tolerances); fixed-step: ``"euler"`` (explicit Euler, order 1) or ``"rk4"`` (classical
        Runge–Kutta, order 4), which need ``fixed_steps_per_gd_step``; ``"exponential"`` (the principal
        flow, branch ``"shifted"`` or ``"principal"``): an adaptive exponential Runge–Kutta method
        with the linear part :math:`\log(I - hH)/h` frozen at each step's start
        (``gdflows._exponential``), exact on quadratics in one step per GD step: ETDRK4 (embedded
        third order, four dense evaluations per attempted step) on the dense spectrum, ETD2RK by
        Lanczos (three Lanczos runs, ``3 krylov_dim`` Hessian-vector products, per attempted step)
        on the Krylov one; no ``progress`` display or ``max_wall_time`` limit.
      max_steps: bound on the adaptive solver's steps; a flow that needs more (blow-up,
        stiffness) is stopped and reported. A fixed-step scheme always takes
        ``steps * fixed_steps_per_gd_step`` steps.
      saves_per_step: save ``k`` equally spaced points per GD step (``k > 1`` for smooth
        plots); the GD times are then ``times[::k]``.
      fixed_steps_per_gd_step: for ``"euler"`` and ``"rk4"`` only, the number ``m`` of equal
        steps :math:`dt = h/m` per GD step; a multiple of ``saves_per_step``, so that every save
        time is a step time. There is no error control: check convergence by changing ``m``.
      progress: a one-line display (on ``sys.stderr``) of the GD step reached, the solver's
        accepted and rejected steps, the time spent and an estimate of the time left. ``"auto"``
        (default) shows it once the solve has stepped for half a second and is projected, from its
        rate so far, to step for more than ``AUTO_AFTER`` = 5 s, on problems of at least
        ``AUTO_PARAMETERS`` = 100 parameters (smaller ones are not watched: see Cost);
        ``True`` always; ``False`` never.
      max_wall_time: seconds (from the call, compilation included) after which the solve stops
        cleanly: the result holds every save time reached, exactly as an unlimited solve has
        them, ``stop_kind`` is ``"wall-time"`` and a :class:`~gdflows.WallTimeWarning` says how
        far it got. None (default): no limit.
      dtmin: for the adaptive diffrax solvers, a floor on the step (in time, e.g. ``1e-4 * h``): the step never
        falls below it, and a step at the floor is kept whatever its error estimate (diffrax's ``dtmin`` with
        ``force_dtmin``), so the solve crosses a jump of the vector field instead of stalling at it. The
        principal flow's field jumps where an eigenvalue of :math:`hH` crosses 1 on the real axis (the sign of
        :math:`\pm i\pi` in :math:`\log(1 - h\lambda)` changes there, or is chosen by the path); an error-controlled
        step can cross such a jump only by shrinking to about tolerance / jump, and near the branch point it
        may creep until its budget is spent. ``stats.floor_steps`` counts the steps kept at the floor, which are
        not error-controlled: check a result's dependence on ``dtmin`` by changing it. None (default): no floor.

    Cost: a solve is (vector-field evaluations) x (the flow's cost per evaluation, in each flow's
    docstring); ``stats`` reports the evaluations. The display and the limit call back to Python
    about every 0.25 s (not every step), but having the callback in the loop costs ~10 us per
    solver step on a CPU: ~90% of a 2-parameter toy's solve, a few per cent of a PF's; unwatched
    solves (``progress=False`` and no ``max_wall_time``, or ``"auto"`` below 100 parameters)
    pay nothing. For the central flow on a network (more than a few hundred parameters) use
    :func:`~gdflows.central_flow_run`, whose Euler substeps cost one evaluation each instead of 13
    per Dopri8 step.

    Returns:
      A :class:`~gdflows.Solution`: times, positions, losses and full flow states at the save
      times, the :class:`~gdflows.SolverStats`, the solver and its tolerances (or fixed step). If
      the flow blows up, leaves the region where the loss is finite or exhausts ``max_steps``,
      the arrays stop at the last finite entry, ``stopped_at`` is the time of the first lost one,
      ``stop_reason`` says why and a :class:`~gdflows.DivergenceWarning` says so. A save time that
      an adaptive solver reached only after its step size had collapsed for good (below
      ``STEP_COLLAPSE`` = 1e-9 of the save interval, up to the step where it stalled: a blow-up)
      counts as lost too, even when the solver landed on it. A loss or gradient that is not
      finite at ``theta0`` stops the solve before its first step. A solve stopped by
      ``max_wall_time`` is cut the same way, with a :class:`~gdflows.WallTimeWarning` instead.

    Raises:
      TypeError: ``flow`` is not a :class:`~gdflows.flows.Flow` (e.g. a plain loss function).
      TypeError, ValueError: a bool, string or out-of-range number for ``steps``, ``lr``,
        ``rtol``, ``atol``, ``max_steps``, ``saves_per_step``, ``fixed_steps_per_gd_step``,
        ``progress``, ``max_wall_time`` or ``dtmin``, or a non-finite ``theta0``; each message names the
        argument and a valid value.

    Example:
      >>> import jax, jax.numpy as jnp, gdflows as gf
      >>> jax.config.update("jax_enable_x64", True)
      >>> loss = lambda th: 0.5 * jnp.sum(jnp.array([3.0, 1.0]) * th**2)
      >>> sol = gf.solve(gf.principal_flow(loss, lr=0.5), jnp.array([1.0, 1.0]), steps=2)
      >>> [round(float(v), 9) for v in sol.theta[:, 0]]  # GD's iterates (1 - 0.5 * 3)^n
      [1.0, -0.5, 0.25]
    """
    _check_flow(flow)
    h = _check_lr_matches(flow, lr)
    steps = check_steps(steps)
    if not (isinstance(progress, bool) or (isinstance(progress, str) and progress == "auto")):
        raise ValueError(f"progress must be 'auto', True or False, got progress={progress!r}.")
    if max_wall_time is not None:
        max_wall_time = check_number("max_wall_time", max_wall_time, example="max_wall_time=600 (seconds)")
    start = time.perf_counter()  # the wall-time limit counts from here: compilation included
    flow, theta0, unravel = _flat_flow(flow, theta0)
    theta0 = check_theta0(theta0, entry="solve")
    monitor = None
    if progress is True or max_wall_time is not None or (progress == "auto" and theta0.size >= AUTO_PARAMETERS):
        monitor = Monitor(
            flow.name, t0=0.0, h=h, steps=steps, progress=progress, max_wall_time=max_wall_time, start=start
        )
    _steer_central(flow, theta0)
    rtol = check_number("rtol", rtol, example="rtol=1e-10")
    atol = check_number("atol", atol, example="atol=1e-12")
    max_steps = check_positive_int("max_steps", max_steps, example="max_steps=100_000")
    _check_solver(solver, fixed_steps_per_gd_step, "fixed_steps_per_gd_step", flow)
    saves_per_step = check_positive_int("saves_per_step", saves_per_step)
    dtmin = _check_dtmin(dtmin, solver)
    fixed = solver in FIXED_STEP_SOLVERS
    substeps = None
    if fixed:
        fixed_steps_per_gd_step = check_positive_int("fixed_steps_per_gd_step", fixed_steps_per_gd_step)
        if fixed_steps_per_gd_step % saves_per_step:
            raise ValueError(
                f"fixed_steps_per_gd_step must be a multiple of saves_per_step so that every save time is a "
                f"step time, got fixed_steps_per_gd_step={fixed_steps_per_gd_step} and saves_per_step={saves_per_step}."
            )
        substeps = fixed_steps_per_gd_step // saves_per_step
    ts = (h / saves_per_step) * jnp.arange(steps * saves_per_step + 1, dtype=theta0.dtype)
    with warnings.catch_warnings():  # solve has warned already: once per call
        warnings.simplefilter("ignore", PrecisionWarning)
        state0 = flow.init(theta0)
    settings = dict(
        solver=solver,
        rtol=None if fixed else rtol,
        atol=None if fixed else atol,
        dt=h / fixed_steps_per_gd_step if fixed else None,
        unravel=unravel,
        dtmin=dtmin,
    )
    t = np.asarray(ts)
    loss0, grad0 = jax.value_and_grad(flow.loss)(theta0)
    loss0 = np.asarray(loss0)[None]
    state = jax.tree.map(lambda leaf: jnp.asarray(leaf)[None], state0)
    if not np.isfinite(loss0[0]) or not np.all(np.isfinite(grad0)):  # stop at once, before any solver step
        what = (
            f"the loss is {loss0[0]} at theta0"
            if not np.isfinite(loss0[0])
            else "the loss's gradient at theta0 is not finite"
        )
        reason = f"{what}: the flow cannot start (check the loss function and theta0)"
        kept = 0 if not np.isfinite(loss0[0]) else 1
        if kept < len(t):
            return _stopped(
                flow,
                h,
                Solution(t, np.asarray(theta0)[None], loss0, state, SolverStats(0, 0, 0), **settings),
                kept,
                reason,
            )
    if steps == 0:
        return Solution(t, np.asarray(theta0)[None], loss0, state, SolverStats(0, 0, 0), **settings)

    if solver == EXPONENTIAL:
        out, evaluations = _integrate_exponential_flow(flow, state0, ts=ts, rtol=rtol, atol=atol, max_steps=max_steps)
        ending, monitor = None, None  # no progress display or wall-time limit: those hook into diffrax's controller
        positions, losses = np.asarray(out.theta), np.asarray(out.loss)
    else:
        with monitoring(monitor) if monitor is not None else contextlib.nullcontext() as key:
            out, ending = _integrate_flow(
                flow,
                state0,
                ts=ts,
                rtol=rtol,
                atol=atol,
                solver_name=solver,
                max_steps=max_steps,
                saves_per_step=saves_per_step,
                substeps=substeps,
                record_steps=True,
                monitor=key,
                dtmin=dtmin,
            )
            positions, losses = np.asarray(out.theta), np.asarray(out.loss)  # waits for the solve
    accepted, rejected = int(out.accepted_steps), int(out.rejected_steps)
    if fixed:
        stats = SolverStats(accepted, 0, FIXED_STEP_SOLVERS[solver][1] * accepted)
    elif solver == EXPONENTIAL:
        stats = SolverStats(accepted, rejected, int(evaluations))
    else:
        stats = SolverStats(accepted, rejected, _evaluations(solver, accepted + rejected), int(out.floor_steps))
    finite = np.isfinite(losses) & np.all(np.isfinite(positions), axis=1)
    stopped = monitor is not None and monitor.stopped and out.result == diffrax.RESULTS.event_occurred
    if monitor is not None:
        monitor.close(float(t[np.argmin(finite) - 1]) if not finite.all() else float(t[-1]), accepted, rejected)
    kind = STOP_KINDS[int(out.stop_kind)]
    if (kind is None or stopped) and finite.all():  # a wall-time stop on the last step loses nothing
        return Solution(t, positions, losses, out.state, stats, **settings)
    if stopped:
        first_bad = int(np.argmin(finite))
        reason = (
            f"the wall-time limit max_wall_time={max_wall_time:g} s was reached after {monitor.elapsed:.3g} s, "
            f"at GD step {t[first_bad - 1] / h:.4g} of {steps} ({accepted} accepted and {rejected} rejected solver "
            "steps); raise max_wall_time (or leave it at None) to integrate further"
        )
        full = Solution(t, positions, losses, out.state, stats, **settings)
        return _stopped(flow, h, full, first_bad, reason, kind="wall-time", category=WallTimeWarning)
    first_bad = int(np.argmin(finite)) if not finite.all() else len(t) - 1
    reason = "the state became non-finite" if bool(out.successful) else _describe(out.result)
    if ending is not None and kind in ("blow-up", "step-collapse", "budget"):
        interval = h / saves_per_step
        reached = float(ending.reached)
        where = f"t = {reached:.10g} (GD step {reached / h:.4g} of {steps})"
        floor = (
            f"a floor on the step, e.g. dtmin={1e-4 * h:.3g}, carries the solve across a jump, and stats.floor_steps "
            "counts the steps kept at it"
        )
        if kind == "budget":
            creep = _creep(np.asarray(ending.step_times), float(t[0]), interval)
            if creep is not None:
                median, first, last = creep
                size = (
                    f"creeping on steps of median length {median:.2g} of the save interval, the short ones between "
                    f"GD steps {first / h:.6g} and {last / h:.6g} (as at a jump of the vector field); {floor}; or"
                )
            else:
                size = "on steps of ordinary size;"
            reason = (
                f"the solver spent its budget of max_steps={max_steps} steps ({accepted} accepted, {rejected} "
                f"rejected) by {where} {size} raise max_steps (e.g. max_steps={4 * max_steps})"
            )
        elif kind == "blow-up":
            reason = (
                f"a blow-up: the solver stopped at {where}, where the vector field has norm {float(ending.speed):.3g}, "
                f"enough to carry the state over {BLOW_UP_SPEED:g} times its size away within one save interval; its "
                f"last step was {float(ending.last_step) / interval:.3g} of the save interval"
            )
        else:
            reason = (
                f"the solver stalled at {where}, its last step {float(ending.last_step) / interval:.3g} of the save "
                f"interval (the vector field there has norm {float(ending.speed):.3g}, not a blow-up"
                f"{_nearest_one(flow, ending.state)}); if the field jumps there, {floor}"
            )
        collapse = _collapse_time(np.asarray(ending.step_times), float(t[0]), interval)
        if collapse is not None:
            start, _ = collapse
            first_bad = min(first_bad, int(np.searchsorted(t, start, side="left")))
            reason += (
                f"; its step size collapsed below {STEP_COLLAPSE:g} of the save interval from t = {start:.10g} on, "
                f"so save times from t = {start:.10g} on are not resolved, even one the solver landed on"
            )
    return _stopped(flow, h, Solution(t, positions, losses, out.state, stats, **settings), first_bad, reason, kind)


def _nearest_one(flow: Flow, state) -> str:
    """For a flow with a ``stall_spectrum`` (that gives one here): its eigenvalues of hH nearest 1 and nearest the
    cut {1 + is: s > 0}."""
    if flow.stall_spectrum is None:
        return ""
    x = flow.stall_spectrum(state)
    if x is None:
        return ""
    x = np.asarray(x)
    to_cut = np.where(x.imag >= 0, np.abs(x.real - 1.0), np.abs(x - 1.0))  # the half-line {1 + is: s >= 0}
    text = ""
    for name, distance in (("1", np.abs(x - 1.0)), ("the cut 1 + is (s > 0)", to_cut)):
        nearest = complex(x[np.argmin(distance)])
        text += f"; the eigenvalue of hH nearest {name} is {nearest.real:.6g}{nearest.imag:+.6g}i"
    return text


def _accepted_steps(step_times: np.ndarray, t0: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end times of a solve's accepted steps, from their end times (``inf`` after the last)."""
    ends = step_times[np.isfinite(step_times)]
    return np.concatenate([[t0], ends[:-1]]), ends


# A solve that spent its budget on accepted steps of median length below this fraction of the save interval
# was creeping (as at a jump of the vector field), not stepping at an ordinary size.
CREEP = 1e-4


def _creep(step_times: np.ndarray, t0: float, interval: float) -> tuple[float, float, float] | None:
    """``(median, first, last)`` if the median length of a solve's accepted steps (``step_times``: their end times,
    ``inf`` after the last) is below ``CREEP * interval``: that median in save intervals, and the first and last end
    times of the steps that short; else None."""
    starts, ends = _accepted_steps(step_times, t0)
    if ends.size == 0:
        return None
    lengths = ends - starts
    median = float(np.median(lengths)) / interval
    if median >= CREEP:
        return None
    short = ends[lengths < CREEP * interval]
    return median, float(short[0]), float(short[-1])


# A failed adaptive solve whose accepted steps fell below this fraction of the save interval
# for good before it stopped is taken to have run into a singularity (see _collapse_time).
STEP_COLLAPSE = 1e-9


def _collapse_time(step_times: np.ndarray, t0: float, interval: float) -> tuple[float, float] | None:
    r"""Where a failed adaptive solve's step size collapsed for good: ``(start, stall)`` or None.

    The criterion: the accepted steps :math:`\Delta t_j` (``step_times``: end times of accepted
    steps, ``inf`` after the last) are scanned back from the last one; if it is shorter than
    ``STEP_COLLAPSE * interval``, the final run of such steps starts at ``start`` and the solver
    stalled at ``stall``, the end of the last accepted step. Approaching a blow-up at
    :math:`t^*` the controller's steps shrink like :math:`c\,(t^* - t)`, so the run marks
    the last :math:`\sim 10^{-9}` intervals before the singularity; a save time inside it (even
    one stepped onto exactly, as when :math:`t^*` is a save time) holds an unresolved value. A
    solve that fails for another reason (a step budget spent on steps of ordinary size) has no
    such run: None.
    """
    starts, ends = _accepted_steps(step_times, t0)
    if ends.size == 0:
        return None
    tiny = (ends - starts) < STEP_COLLAPSE * interval
    if not tiny[-1]:
        return None
    ordinary = np.flatnonzero(~tiny)
    first = int(ordinary[-1]) + 1 if ordinary.size else 0
    return float(starts[first]), float(ends[-1])


def _stopped(
    flow: Flow,
    h: float,
    full: Solution,
    first_bad: int,
    reason: str,
    kind: str = "non-finite",
    *,
    category: type[Warning] = DivergenceWarning,
) -> Solution:
    """``full`` cut before the save index ``first_bad``, with where, why (``reason``, ``kind``) it stopped; warns."""
    t = full.times
    cause = (
        " (a flow that blows up, or leaves the region where the loss is finite, ends this way)"
        if category is DivergenceWarning
        else ""
    )
    warnings.warn(
        f"{flow.name} stopped before t = {t[first_bad]:.6g} (GD step {t[first_bad] / h:.4g}): {reason}{cause}; "
        + (f"the trajectory up to t = {t[first_bad - 1]:.6g} is returned." if first_bad else "nothing is returned."),
        category,
        stacklevel=3,
    )
    cut = lambda leaf: leaf[:first_bad]  # noqa: E731
    return full._replace(
        times=cut(t),
        theta=cut(full.theta),
        loss=cut(full.loss),
        state=jax.tree.map(cut, full.state),
        stopped_at=float(t[first_bad]),
        stop_reason=reason,
        stop_kind=kind,
    )
