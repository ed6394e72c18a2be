r"""F15, one benchmark of every flow: each flow on each problem where it applies, its distance to the
algorithm it models at fixed horizons, and what it cost, counted by :class:`gdflows.cost.CostTally`.

A :class:`Case` is a loss, a start, a learning rate and the flows that apply to it with the horizon each
is run to. :func:`measure` runs one flow on one case twice: once with the loss counted (the trajectory,
the distances and the counts come from this run) and once uncounted for the wall time (warm, the second
of two calls, unless the first took longer than ``slow_s``: then the counted run's time, compilation
included, flagged). Distances are measured in the notion each flow is built for (:data:`DISTANCE`):

* ``"iterates"``: :math:`\|\theta(t_n) - \theta_n\|`, for the flows that model GD's iterates (the PF,
  its real part, NGF, IGR, the third-order flow);
* ``"centre"``: :math:`\|\theta(t_n) - \tfrac12(\theta_n + \theta_{n+1})\|`, for the flows that model the
  centre of GD's oscillation (central, rod), started from GD's first centre;
* ``"projection"``: :math:`\|\Phi(\theta_{n_0+n}) - X(\tau_n)\|`, for the limiting flows of normalized GD
  and GD on :math:`\sqrt E` (F12, F13), started from :math:`\Phi(\theta_{n_0})` after an approach of
  :math:`n_0` steps.

Each distance is divided by how far the modelled quantity moved,
:math:`\|\theta_n - \theta_0\|` (or the centre's, or the projection's), so that problems of different
scales share one figure.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import gdflows as gf
import gdflows.problems as gp
from gdflows.cost import CostTally
from gdflows.flows import normalized_gd_flow, project_to_manifold, sqrt_loss_flow
from gdflows_book.setups import FLOW_NAMES, diagonal_quadratic, digits_network, flow_lineup

#: What each flow's distance is measured to (see the module docstring).
DISTANCE = {
    "PF": "iterates",
    "PF (real part)": "iterates",
    "NGF": "iterates",
    "IGR": "iterates",
    "MF3": "iterates",
    "central flow": "centre",
    "rod flow": "centre",
    "normalized GD flow": "projection",
    "√loss flow": "projection",
}
#: The problems, by the keys :func:`cases` takes ("network" is the F6 network at every learning rate given).
PROBLEMS = ("quadratic", "quartic", "gaussian", "saddle", "network", "valley", "factorisation")
#: The flows of GD on a loss, in the table's order.
GD_FLOWS = ("PF", "PF (real part)", "NGF", "IGR", "MF3", "central flow", "rod flow")
#: Above this many parameters the central flow runs by :func:`gdflows.central_flow_run` (forward Euler
#: substeps, LOBPCG), the published scheme for networks, instead of :func:`gdflows.solve`.
CENTRAL_BY_SUBSTEPS = 300
#: The limiting flows with the algorithm they model (F12, F13).
LIMITING = {
    "normalized GD flow": ("normalized GD", gf.normalized_gd, normalized_gd_flow),
    "√loss flow": ("GD on √E", gf.sqrt_loss_gd, sqrt_loss_flow),
}


class Case(NamedTuple):
    """A problem with the flows that apply to it."""

    key: str  # short name, e.g. "quadratic"
    label: str  # what the table and the figure call it
    loss: Callable[[jax.Array], jax.Array]
    theta0: jax.Array  # the start
    lr: float  # h (or eta)
    horizons: dict[str, int]  # flow name -> GD steps it is run to
    solve: dict  # gdflows.solve options of every flow but the PFs
    pf: dict  # the PFs' principal_flow options ("spectrum", "krylov_dim") and solve options ("pf_rtol", ...)
    approach: int = 0  # steps of the algorithm before the limiting flows start (their cases only)
    codim: int | None = None  # the codimension of the manifold of minimisers (their cases only), for Phi


class Entry(NamedTuple):
    """One flow on one case: distances at the horizons, how far it got, what it cost per GD step."""

    case: str
    flow: str
    distance_to: str  # "iterates", "centre" or "projection"
    horizons: list[int]
    relative: list[float | None]  # at each horizon, distance / how far the modelled quantity moved (None: not reached)
    reached: int  # GD steps covered
    stopped: str | None  # why it stopped early (the solver's stop kind, or the exception), None if not
    cost: dict  # Cost per GD step, as a dict, with "eigensolver_calls"
    solver_steps: dict | None  # accepted / rejected solver steps per GD step (None: fixed substeps)
    seconds_per_step: float  # wall time per GD step
    timing: str  # "warm" or "first call, counted" (compilation and counting callbacks included)


def cases(
    problems: Sequence[str],
    *,
    horizons: Sequence[int],
    network: dict,
    network_lrs: Sequence[float],
    network_steps: int,
    network_max_steps: int,
    pf_network_steps: int,
    pf_krylov_dim: int,
    pf_max_steps: int,
    manifold_eta: float,
    approach: float,
    limiting_steps: int,
) -> list[Case]:
    """The benchmark's problems named in ``problems`` (of :data:`PROBLEMS`): the book's toy problems at their
    figures' settings, the F6 network at each of ``network_lrs``, and the manifold problems of F12/F13 for
    the limiting flows."""
    unknown = sorted(set(problems) - set(PROBLEMS))
    if unknown:
        raise ValueError(f"problems={list(problems)!r}: unknown {unknown}; choose from {list(PROBLEMS)}.")
    top = max(horizons)
    toys = {flow: top for flow in GD_FLOWS}
    toy_solve = dict(rtol=1e-10, atol=1e-12, max_steps=20_000)
    toy_pf = dict(spectrum="dense")
    curvatures, h_quadratic = [1.0, 0.01], 0.9  # F1's; the Hessian is 2 diag(curvatures)
    out = [
        Case(
            "quadratic",
            f"quadratic (F1), hλ = {2 * max(curvatures) * h_quadratic:g}",
            diagonal_quadratic(curvatures),
            jnp.array([-0.35, -0.2]),
            h_quadratic,
            toys,
            toy_solve,
            toy_pf,
        ),
    ]
    quartic, h_lambda_s = gp.quartic_two_minima(), 3.6  # F4's main run
    lambda_s = float(quartic.critical_points()["sharp"].eigenvalues[0])
    out.append(
        Case(
            "quartic",
            f"quartic escape (F4), hλ_s = {h_lambda_s:g}",
            quartic.loss,
            jnp.array([1.001]),
            h_lambda_s / lambda_s,
            toys,
            toy_solve,
            toy_pf,
        )
    )
    gaussian = gp.two_minima_1d()
    sharp = gaussian.critical_points()["narrow"].point
    out.append(
        Case(
            "gaussian",
            "Gaussian landscape (F4), h = 0.5",
            gaussian.loss,
            jnp.asarray(sharp) + 1e-4,
            0.5,
            toys,
            toy_solve,
            toy_pf,
        )
    )
    saddle = gp.saddle_2d()
    out.append(
        Case("saddle", "saddle (F5), h = 0.4", saddle.loss, jnp.array([1.0, 1e-12]), 0.4, toys, toy_solve, toy_pf)
    )
    net = digits_network(network["n_train"], network["hidden"]).net if "network" in problems else None
    for lr in network_lrs if net is not None else ():
        flows = {flow: min(network_steps, top) for flow in GD_FLOWS}
        flows["PF"] = flows["PF (real part)"] = pf_network_steps
        pf = dict(spectrum="krylov", krylov_dim=pf_krylov_dim, pf_rtol=1e-5, pf_atol=1e-8, pf_max_steps=pf_max_steps)
        out.append(
            Case(
                f"network h={lr:g}",
                f"F6 network ({net.size:,} parameters), h = {lr:g}",
                net.loss,
                net.theta0,
                lr,
                flows,
                dict(rtol=1e-6, atol=1e-9, solver="tsit5", max_steps=network_max_steps),
                pf,
            )
        )
    for key, build, flow in (
        ("valley", gp.valley_2d, "normalized GD flow"),
        ("factorisation", gp.scalar_factorisation, "√loss flow"),
    ):
        p = build()
        out.append(
            Case(
                key,
                f"{p.name} ({LIMITING[flow][0]}), η = {manifold_eta:g}",
                p.loss,
                jnp.asarray(p.start),
                manifold_eta,
                {flow: limiting_steps},
                dict(rtol=1e-10, atol=1e-12, max_steps=20_000),
                {},
                approach=math.ceil(approach / manifold_eta),
                codim=p.codim,
            )
        )
    return [case for case in out if case.key.split(" ")[0] in problems]


def _flow(name: str, loss, case: Case) -> gf.Flow:
    if name in FLOW_NAMES:  # the PFs, NGF, IGR, MF3: the book's line-up, with the case's PF options
        pf = {k: v for k, v in case.pf.items() if not k.startswith("pf_")}
        return flow_lineup(loss, case.lr, [name], **pf)[0]
    factories = {
        "central flow": gf.central_flow,
        "rod flow": gf.rod_flow,
        "normalized GD flow": normalized_gd_flow,
        "√loss flow": sqrt_loss_flow,
    }
    return factories[name](loss, lr=case.lr)


def _options(name: str, case: Case) -> dict:
    if name.startswith("PF"):
        own = {key[3:]: value for key, value in case.pf.items() if key.startswith("pf_")}
        return {**case.solve, **own}
    return case.solve


class _Start(NamedTuple):
    theta0: jax.Array  # where the flow starts
    targets: np.ndarray  # (steps + 1, d): what the flow is compared with at t_n
    origin: np.ndarray  # the target at n = 0, for the relative distance


def _reference(case: Case, name: str, steps: int) -> _Start:
    """What flow ``name`` starts from and is compared with (see :data:`DISTANCE`)."""
    kind = DISTANCE[name]
    if kind == "projection":
        _, run_algorithm, _ = LIMITING[name]
        run = run_algorithm(case.loss, case.theta0, lr=case.lr, steps=case.approach + steps)
        iterates = run.theta[case.approach :]
        projected = np.stack(
            [np.asarray(project_to_manifold(case.loss, jnp.asarray(t), codim=case.codim).theta) for t in iterates]
        )
        return _Start(jnp.asarray(projected[0]), projected, projected[0])
    run = gf.gd(case.loss, case.theta0, lr=case.lr, steps=steps + 1)
    theta = np.asarray(run.theta)
    if len(theta) < steps + 2:  # GD diverged: compare with what there is
        theta = np.concatenate([theta, np.full((steps + 2 - len(theta), theta.shape[1]), np.nan)])
    if kind == "centre":
        centre = 0.5 * (theta[:-1] + theta[1:])
        return _Start(jnp.asarray(centre[0]), centre, centre[0])
    return _Start(case.theta0, theta[: steps + 1], theta[0])


def _run(name: str, loss, case: Case, start: _Start, steps: int):
    """(positions at t_0..t_reached, stop kind, solver stats or None) of one run of the flow."""
    if name == "central flow" and start.theta0.size > CENTRAL_BY_SUBSTEPS:
        run = gf.central_flow_run(
            loss, start.theta0, lr=case.lr, steps=steps, eigen=gf.EigenOptions(spectrum="iterative", tol=1e-6)
        )
        theta = np.asarray(run.theta)
        finite = np.all(np.isfinite(theta), axis=1)
        reached = int(np.argmin(finite)) if not finite.all() else len(theta)
        return theta[:reached], None if finite.all() else "non-finite", None
    run = gf.solve(_flow(name, loss, case), start.theta0, steps=steps, progress=False, **_options(name, case))
    return np.asarray(run.theta), run.stop_kind, run.stats


def measure(case: Case, name: str, *, slow_s: float = 20.0) -> Entry:
    """Run flow ``name`` on ``case`` to its horizon: distances, counted cost per GD step and wall time."""
    steps = case.horizons[name]
    horizons = [n for n in (10, 100, 1000) if n <= steps] or [steps]
    start = _reference(case, name, steps)
    tally = CostTally()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a stop is recorded in the entry (its kind) and shown in the table
        tic = time.perf_counter()
        try:
            with tally:
                theta, stop, stats = _run(name, tally.wrap(case.loss), case, start, steps)
            error = None
        except Exception as exc:  # a flow that cannot run here is a result, recorded with its reason
            theta, stop, stats, error = np.asarray(start.theta0)[None], f"error: {exc}".split("\n")[0], None, exc
        counted_s = time.perf_counter() - tic
    reached = len(theta) - 1
    cost = tally.cost / max(reached, 1)
    seconds, timing = counted_s / max(reached, 1), "first call, counted"
    if error is None and counted_s < slow_s:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _run(name, case.loss, case, start, steps)  # compile
            tic = time.perf_counter()
            _run(name, case.loss, case, start, steps)
            seconds, timing = (time.perf_counter() - tic) / max(reached, 1), "warm"
    relative = []
    for n in horizons:
        moved = float(np.linalg.norm(start.targets[n] - start.origin))
        reachable = n <= reached and moved > 0
        relative.append(float(np.linalg.norm(theta[n] - start.targets[n])) / moved if reachable else None)
    return Entry(
        case.key,
        name,
        DISTANCE[name],
        horizons,
        relative,
        reached,
        stop,
        {**cost._asdict(), "eigensolver_calls": cost.eigensolver_calls},
        None
        if stats is None
        else {"accepted": stats.accepted_steps / max(reached, 1), "rejected": stats.rejected_steps / max(reached, 1)},
        seconds,
        timing,
    )


def reference_cost(case: Case) -> dict[str, Any]:
    """GD's (or the modelled algorithm's) own cost per step on ``case``: counted gradients and warm wall time."""
    steps = max(case.horizons.values())
    run_algorithm = LIMITING[next(iter(case.horizons))][1] if case.approach else gf.gd
    tally = CostTally()
    with tally:
        run_algorithm(tally.wrap(case.loss), case.theta0, lr=case.lr, steps=steps)
    cost = tally.cost / steps
    run_algorithm(case.loss, case.theta0, lr=case.lr, steps=steps)
    tic = time.perf_counter()
    jax.block_until_ready(run_algorithm(case.loss, case.theta0, lr=case.lr, steps=steps).theta)
    return {"gradients": cost.gradients, "seconds_per_step": (time.perf_counter() - tic) / steps}


def _number(value: float | None, stop: str | None = None) -> str:
    if value is None:
        return "stopped" if stop else "—"
    return "0" if value == 0 else f"{value:.1e}"


def _count(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def table(entries: Sequence[Entry], cases_: Sequence[Case], references: dict[str, dict]) -> str:
    """The benchmark as one Markdown table: a row per flow and problem, the algorithm's own row first."""
    columns = (10, 100, 1000)
    rows = [
        "| problem | model | distance to | rel. distance at step 10 | 100 | 1,000 | GD steps reached | gradients "
        "| HVPs | third-derivative products | eigensolver calls | solver steps (accepted / rejected) "
        "| ms per GD step | × GD |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases_:
        ref = references[case.key]
        algorithm = LIMITING[next(iter(case.horizons))][0] if case.approach else "GD"
        rows.append(
            f"| **{case.label}** | {algorithm} | | | | | {max(case.horizons.values()):,} | {_count(ref['gradients'])} "
            f"| 0 | 0 | 0 | | {1e3 * ref['seconds_per_step']:.3f} | 1 |"
        )
        for e in (e for e in entries if e.case == case.key):
            at = dict(zip(e.horizons, e.relative, strict=True))
            cells = [
                _number(at[n], e.stopped)
                if n in at
                else ("—" if n > case.horizons[e.flow] else _number(None, e.stopped))
                for n in columns
            ]
            stop = f" ({e.stopped.split(':')[0]})" if e.stopped else ""
            steps = (
                f"{e.solver_steps['accepted']:.3g} / {e.solver_steps['rejected']:.3g}" if e.solver_steps else "substeps"
            )
            flag = "" if e.timing == "warm" else " †"
            rows.append(
                f"| | {e.flow} | {e.distance_to} | {' | '.join(cells)} | {e.reached:,}{stop} "
                f"| {_count(e.cost['gradients'])} | {_count(e.cost['hvps'])} | {_count(e.cost['third_derivatives'])} "
                f"| {_count(e.cost['eigensolver_calls'])} | {steps} | {1e3 * e.seconds_per_step:.3g}{flag} "
                f"| {e.seconds_per_step / ref['seconds_per_step']:,.0f} |"
            )
    return "\n".join(rows)


#: One colour per model in the accuracy-against-cost figure (the book's line styles share colours).
COLOURS = {
    "PF": "tab:red",
    "PF (real part)": "tab:orange",
    "NGF": "tab:blue",
    "IGR": "tab:green",
    "MF3": "tab:purple",
    "central flow": "tab:olive",
    "rod flow": "tab:brown",
    "normalized GD flow": "tab:cyan",
    "√loss flow": "tab:pink",
}
MARKERS = {
    "quadratic": "o",
    "quartic": "v",
    "gaussian": "^",
    "saddle": "s",
    "network": "D",
    "valley": "P",
    "factorisation": "X",
}
PROBLEM_NAMES = {
    "quadratic": "quadratic (F1)",
    "quartic": "quartic (F4)",
    "gaussian": "Gaussian landscape (F4)",
    "saddle": "saddle (F5)",
    "network": "F6 network (both h)",
    "valley": "valley (F12)",
    "factorisation": "factorisation (F13)",
}
CEILING = 10.0  # relative distances above this are drawn at it (the table has the value)
STOPPED_AT = 100.0  # where the figure puts a model that stopped before the horizon


def plot(entries: Sequence[Entry], references: dict[str, dict], horizons=(10, 100)):
    """Accuracy against cost: one panel per horizon, one point per flow and problem."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import NullFormatter

    from gdflows_book.figures import figure_size

    fig, axes = plt.subplots(1, len(horizons), figsize=figure_size(len(horizons), 1, aspect=0.85), sharey=True)
    for ax, n in zip(np.atleast_1d(axes), horizons, strict=True):
        for e in entries:
            if max(e.horizons) < n:
                continue  # not run this far
            at = dict(zip(e.horizons, e.relative, strict=True))
            value = at.get(n)
            x = e.seconds_per_step / references[e.case]["seconds_per_step"]
            marker = MARKERS[e.case.split(" ")[0]]
            if value is None:
                ax.scatter(x, STOPPED_AT, marker=marker, facecolors="none", edgecolors=COLOURS[e.flow], s=36)
            else:
                y = min(max(value, 1e-16), CEILING)
                ax.scatter(x, y, marker=marker, color=COLOURS[e.flow], s=36, alpha=0.85)
        ax.axhline(1.0, color="0.6", linewidth=0.8, linestyle=":")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels collide on a short range
        ax.set(
            xscale="log",
            yscale="log",
            ylim=(3e-17, 3 * STOPPED_AT),
            xlabel="wall time per GD step (× GD's)",
            title=f"at GD step {n:,}",
        )
    np.atleast_1d(axes)[0].set_ylabel("distance / how far GD moved")
    flows = sorted({e.flow for e in entries}, key=list(COLOURS).index)
    problems = list(dict.fromkeys(e.case.split(" ")[0] for e in entries))
    handles = [Patch(color=COLOURS[f], label=f) for f in flows]
    handles += [
        Line2D(
            [],
            [],
            color="0.3",
            marker=MARKERS[p],
            linestyle="none",
            label=PROBLEM_NAMES[p],
        )
        for p in problems
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    return fig
