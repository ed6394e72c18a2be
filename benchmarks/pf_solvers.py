r"""Integrating the principal flow: Dopri8, Dopri5 and Tsit5 against the exponential integrators (``"exponential"``)
and diffrax's implicit Kvaerno5.

Usage::

    python benchmarks/pf_solvers.py [--quick] [--build-dir build]

Writes ``<build>/benchmarks/pf_solvers.json`` (every number, with provenance) and
``<build>/benchmarks/pf_solvers.md`` (the table the benchmarks page includes).

For each problem, PF space (complex, real part) and solver, one :func:`gdflows.solve` over the
problem's GD steps on the dense spectrum, at ``rtol`` (``atol = rtol / 100``); per GD step:
vector-field evaluations, Hessian-vector products (a dense evaluation builds the Hessian from
:math:`d` of them), accepted and rejected steps, and the wall time of a second, compiled call
(the first, compilation included, is in the JSON); and the largest error at GD's times
against a reference solve at a tight tolerance (``reference``). Problems:

* the F2 quadratic (:math:`E = \theta_1^2 + 0.01\theta_2^2`, :math:`h = 1.05`, 5 steps), where the
  exponential integrator is exact in one step per GD step;
* the quartic escape onset (``problems.quartic_two_minima``, :math:`h\lambda_s = 3.6` from
  :math:`x = 1.001`, 6 GD steps);
* in quick mode, a tanh MLP on random data (:math:`2 \to 4 \to 1`, 17 parameters,
  :math:`h = 2.2/\lambda_{\max}`, real-part PF), where Dopri8 gets a wall-time budget and the
  reference is the exponential solve at a 100 times tighter tolerance. The full mode's MLP
  (:math:`5 \to 15 \to 15 \to 2`, 362 parameters, 64 points) has no dense rows: its dense
  reference solve did not finish one GD step in 29 minutes here.

Then the Krylov spectrum (``spectrum="krylov"``), where ``solver="exponential"`` is ETD2RK by
Lanczos and the Hessian-vector products are counted by :class:`gdflows.cost.CostTally`:

* the MLP (full: 362 parameters) over 10 GD steps (quick: 2), complex PF, Krylov dimension 16
  (quick: 8), Tsit5 and the exponential solver at rtol 1e-5, each solve (the reference's too)
  bounded to 2,000 solver steps (quick: 500): issue 13's target of 10 GD steps in 10 s;
* F7's network (full: the 1,482-parameter tanh MLP on 200 digits, :math:`h = 0.5`, from GD's
  step 640, where the catapult starts, 4 GD steps, Krylov dimension 16 as in F7; quick: one hidden
  layer of 4, 50 digits, from step 20, 2 GD steps), complex and real-part PF, Dopri8, Tsit5 and
  the exponential solver at ``rtol`` from 1e-3 to 1e-6: a work–precision comparison.

The Krylov rows' reference is Dopri8 at rtol 1e-11 on the same Krylov field.

The implicit rows (``kvaerno5``: diffrax's ESDIRK method, whose stages are solved by a Newton iteration with the
field's Jacobian) are solved by ``diffrax.diffeqsolve`` directly, with the same controller stepping onto GD's
times: :func:`gdflows.solve` does not offer implicit solvers, and these rows say why. Their field evaluations and
HVPs are not counted: diffrax forms the Jacobian through ``jax.linearize``, whose tangent evaluations
:class:`gdflows.cost.CostTally` cannot see, so the rows give steps, time and error only.
"""

from __future__ import annotations

import functools
import itertools
import sys
import time
import warnings
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import gdflows as gf
from gdflows import problems
from gdflows._solve import _describe
from gdflows.cost import CostTally
from gdflows.models import MLP, flatten
from gdflows_book.benchmarks import TimedRun, measured_on, parse_args, seconds, table, write_results
from gdflows_book.setups import diagonal_quadratic, digits_network
from gdflows_book.timing import progress_printer

jax.config.update("jax_enable_x64", True)  # float64: solver errors are measured down to 1e-10

progress = progress_printer("benchmarks/pf_solvers")

SETTINGS = {
    "full": {
        "spaces": ["complex", "real"],
        "solvers": ["dopri8", "dopri5", "exponential", "kvaerno5"],
        "mlp_sizes": [5, 15, 15, 2],
        "mlp_points": 64,
        "mlp_steps": 1,
        # no dense rows at 362 parameters: the dense reference solve (the exponential solver at rtol 1e-8) had not
        # finished one GD step after 29 minutes on 2 cores (2026-12-01); the Krylov rows below cover this MLP
        "mlp_solvers": [],
        "mlp_rtol": 1e-6,
        "mlp_wall_s": 150,
        # the Krylov route: F7's network from GD step 640 (the catapult), and the 362-parameter MLP over 10 GD steps
        "network": {"n_train": 200, "hidden": [16, 16], "lr": 0.5, "start": 640, "steps": 4, "krylov_dim": 16},
        "network_spaces": ["complex", "real"],
        "network_solvers": ["dopri8", "tsit5", "exponential"],
        "network_rtols": [1e-3, 1e-4, 1e-5, 1e-6],
        # Kvaerno5 on F7's network: one GD step of the real-part PF, timed once (each step forms the field's
        # 1,482 x 1,482 Jacobian through the Lanczos run: 83 s for 3 steps, compilation included, on 2026-12-01)
        "network_implicit": {"spaces": ["real"], "rtols": [1e-3], "steps": 1},
        "krylov_mlp_steps": 10,
        "krylov_mlp_dim": 16,
        "krylov_mlp_rtol": 1e-5,
        "krylov_mlp_max_steps": 2000,  # per solve: the PF's crossing of h lambda = 1 in GD step 1 costs thousands
    },
    "quick": {
        "spaces": ["complex"],
        "solvers": ["dopri8", "exponential", "kvaerno5"],
        "mlp_sizes": [2, 4, 1],
        "mlp_points": 16,
        "mlp_steps": 2,
        "mlp_solvers": ["dopri8", "exponential", "kvaerno5"],
        "mlp_rtol": 1e-8,
        "mlp_wall_s": 60,
        "network": {"n_train": 50, "hidden": [4], "lr": 0.5, "start": 20, "steps": 2, "krylov_dim": 8},
        "network_spaces": ["complex"],
        "network_solvers": ["dopri8", "exponential"],
        "network_rtols": [1e-4],
        "network_implicit": None,  # Kvaerno5: 51 s for one GD step of this network's complex PF at rtol 1e-3
        "krylov_mlp_steps": 2,
        "krylov_mlp_dim": 8,
        "krylov_mlp_rtol": 1e-5,
        "krylov_mlp_max_steps": 500,
    },
}
TOY_RTOL, REFERENCE_RTOL = 1e-8, 1e-12
# solver steps (accepted and rejected) of one implicit solve: on the 17-parameter MLP Kvaerno5 took 100,000 steps
# (224 s) without reaching GD step 1 (2026-12-01), so every implicit solve is bounded
IMPLICIT_MAX_STEPS = 5000
KRYLOV_REFERENCE_RTOL = 1e-11  # Dopri8 on the same Krylov field: the reference of the Krylov rows


def _mlp(sizes, points):
    r"""A tanh MLP on random data: its loss, start, learning rate :math:`h = 2.2/\lambda_{\max}` and the
    eigenvalues of :math:`hH` at the start (one dense Hessian and ``eigvalsh``)."""
    x = jax.random.normal(jax.random.key(0), (points, sizes[0]), dtype=jnp.float64)
    teacher = jax.random.normal(jax.random.key(1), (sizes[0], sizes[-1]), dtype=jnp.float64)
    net = flatten(MLP(sizes, activation="tanh", rngs=nnx.Rngs(0)), x, jnp.tanh(x @ teacher))
    eigenvalues = np.linalg.eigvalsh(np.asarray(gf.spectral.hessian(net.loss, net.theta0)))
    lr = 2.2 / float(eigenvalues.max())
    return net.loss, net.theta0, lr, lr * eigenvalues


def spectrum_near_one(x: np.ndarray) -> dict:
    r"""Where the eigenvalues :math:`x = h\lambda` of :math:`hH` lie relative to 1, the PF's singularity."""
    return {
        "parameters": int(x.size),
        "above_one": int(np.sum(x > 1)),
        "within_0_1_of_one": int(np.sum(np.abs(x - 1) < 0.1)),
        "nearest_to_one": float(np.min(np.abs(x - 1))),
    }


# diffrax's implicit solvers, for comparison (``solve`` does not offer them; see the module docstring)
IMPLICIT = {"kvaerno5": diffrax.Kvaerno5}


class _Steps(NamedTuple):
    accepted_steps: int
    rejected_steps: int


class _ImplicitRun(NamedTuple):
    """What :func:`measure` reads of an implicit solve (the fields it shares with :class:`gdflows.Solution`)."""

    times: np.ndarray  # GD's times the solve reached
    theta: np.ndarray  # the flow's position there
    stats: _Steps  # its solver steps (its field evaluations are not counted: see the module docstring)
    stop_reason: str | None  # None if it reached the last GD step


@functools.cache
def _term(vector_field) -> diffrax.ODETerm:
    """One diffrax term per field, so that a second solve of the same flow reuses the compiled one."""
    return diffrax.ODETerm(lambda t, y, args: vector_field(t, y))


def _solve(flow, theta0, steps, solver, rtol, wall=None, max_steps=100_000):
    if solver in IMPLICIT:
        start = time.perf_counter()
        run = _implicit(flow, theta0, steps, solver, rtol, max_steps)
        return run, time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        limits = dict(max_wall_time=wall, max_steps=max_steps)
        sol = gf.solve(flow, theta0, steps=steps, solver=solver, rtol=rtol, atol=rtol / 100, **limits)
        return sol, time.perf_counter() - start


def _implicit(flow, theta0, steps, solver, rtol, max_steps) -> _ImplicitRun:
    """The flow by diffrax's implicit ``solver`` (its default Newton iteration on the stages, with the field's
    Jacobian), stepping onto and saved at GD's times as :func:`gdflows.solve` does, ``atol = rtol / 100``."""
    ts = flow.lr * jnp.arange(steps + 1.0)
    controller = diffrax.PIDController(rtol=rtol, atol=rtol / 100, step_ts=ts)
    sol = diffrax.diffeqsolve(
        _term(flow.vector_field),
        IMPLICIT[solver](),
        ts[0],
        ts[-1],
        None,
        flow.init(theta0),
        stepsize_controller=controller,
        saveat=diffrax.SaveAt(ts=ts),
        max_steps=max_steps,
        throw=False,
    )
    theta = np.asarray(jax.vmap(flow.position)(sol.ys))
    finite = np.all(np.isfinite(theta), axis=1)  # a failed solve leaves inf at the save times it did not reach
    reached = len(ts) if finite.all() else int(np.argmin(finite))
    failed = sol.result != diffrax.RESULTS.successful
    return _ImplicitRun(
        np.asarray(ts[:reached]),
        theta[:reached],
        _Steps(int(sol.stats["num_accepted_steps"]), int(sol.stats["num_rejected_steps"])),
        _describe(sol.result) if failed else None,
    )


def _flow(loss, lr, space, krylov_dim):
    """The PF on the dense spectrum (``krylov_dim`` None) or on the Krylov one."""
    if krylov_dim is None:
        return gf.principal_flow(loss, lr=lr, space=space, spectrum="dense")
    return gf.principal_flow(loss, lr=lr, space=space, spectrum="krylov", krylov_dim=krylov_dim)


def _counted_hvps(loss, theta0, lr, steps, space, krylov_dim, solver, rtol, max_steps) -> int:
    """Hessian-vector products of one solve, counted by :class:`gdflows.cost.CostTally`."""
    tally = CostTally()
    with tally:
        _solve(_flow(tally.wrap(loss), lr, space, krylov_dim), theta0, steps, solver, rtol, max_steps=max_steps)
    return tally.cost.hvps


def measure(
    name,
    loss,
    theta0,
    lr,
    steps,
    space,
    rtols,
    solvers,
    *,
    reference,
    wall=None,
    warm=True,
    krylov_dim=None,
    max_steps=100_000,
) -> list[dict]:
    """One row per solver and tolerance in ``rtols`` (one or a list; see the module docstring).

    ``reference`` is ``(solver, rtol)``; ``krylov_dim`` None for the dense spectrum (HVPs = evaluations x
    parameters), else the Krylov dimension (HVPs counted); ``max_steps`` bounds every solve, the reference's too."""
    flow = _flow(loss, lr, space, krylov_dim)
    d = int(theta0.size)
    ref, _ = _solve(flow, theta0, steps, *reference, max_steps=max_steps)
    gd = gf.gd(loss, theta0, lr=lr, steps=steps).theta
    # the reference's largest distance to GD; None where it reached no GD step (a 0 would read as "PF = GD")
    pf_to_gd = float(np.max(np.linalg.norm(ref.theta - gd[: len(ref.theta)], axis=1))) if len(ref.theta) > 1 else None
    rows = []
    for solver, rtol in itertools.product(solvers, rtols if isinstance(rtols, list) else [rtols]):
        implicit = solver in IMPLICIT
        bound = min(max_steps, IMPLICIT_MAX_STEPS) if implicit else max_steps
        limits = dict(wall=wall if solver != "exponential" else None, max_steps=bound)
        sol, first = _solve(flow, theta0, steps, solver, rtol, **limits)
        warm_s = _solve(flow, theta0, steps, solver, rtol, **limits)[1] if warm else None
        reached = len(sol.times) - 1  # GD steps covered (fewer if stopped)
        per = max(reached, 1)
        common = min(len(sol.theta), len(ref.theta))  # GD times both solves reached
        error = float(np.max(np.abs(sol.theta[:common] - ref.theta[:common]))) if common > 1 else None
        rows.append(
            {
                "problem": name,
                "space": space,
                "solver": solver,
                "rtol": rtol,
                "parameters": d,
                "gd_steps": steps,
                "gd_steps_reached": reached,
                "stop_reason": sol.stop_reason,
                "accepted_per_gd_step": sol.stats.accepted_steps / per,
                "rejected_per_gd_step": sol.stats.rejected_steps / per,
                "evaluations_per_gd_step": None if implicit else sol.stats.vector_field_evaluations / per,
                "spectrum": "dense" if krylov_dim is None else f"Krylov m = {krylov_dim}",
                "hvps_per_gd_step": None
                if implicit
                else (
                    sol.stats.vector_field_evaluations * d
                    if krylov_dim is None
                    else _counted_hvps(loss, theta0, lr, steps, space, krylov_dim, solver, rtol, max_steps)
                )
                / per,
                "first_call_s": first,
                "warm_s_per_gd_step": None if warm_s is None else warm_s / per,
                "max_error": error,
                "reference": {
                    "solver": reference[0],
                    "rtol": reference[1],
                    "pf_to_gd": pf_to_gd,
                    "gd_steps_reached": len(ref.times) - 1,
                    "stop_reason": ref.stop_reason,
                },
            }
        )
        progress(f"{name} ({space}) {solver}, rtol {rtol:g}: {reached} GD steps in {first:.1f} s")
    return rows


def run_all(settings: dict) -> tuple[list[dict], dict]:
    """The rows, and the spectrum of the MLP's :math:`hH` at its start (:func:`spectrum_near_one`)."""
    rows = []
    f2 = (diagonal_quadratic([1.0, 0.01]), jnp.array([-0.35, -0.2]), 1.05, 5)
    quartic = (problems.quartic_two_minima().loss, jnp.array([1.001]), 3.6 / 8.0, 6)
    for name, (loss, theta0, lr, steps) in (("F2 quadratic", f2), ("quartic escape onset", quartic)):
        for space in settings["spaces"]:
            reference = ("dopri8", REFERENCE_RTOL)
            rows += measure(name, loss, theta0, lr, steps, space, TOY_RTOL, settings["solvers"], reference=reference)
    loss, theta0, lr, x = _mlp(settings["mlp_sizes"], settings["mlp_points"])
    mlp_spectrum = spectrum_near_one(x)
    rtol = settings["mlp_rtol"]
    name = f"tanh MLP, {theta0.size} parameters"
    if settings["mlp_solvers"]:  # the dense rows (quick mode only)
        rows += measure(
            name,
            loss,
            theta0,
            lr,
            settings["mlp_steps"],
            "real",
            rtol,
            settings["mlp_solvers"],
            reference=("exponential", rtol / 100),
            wall=settings["mlp_wall_s"],
            warm=False,
        )
    krylov_reference = ("dopri8", KRYLOV_REFERENCE_RTOL)
    rows += measure(
        name,
        loss,
        theta0,
        lr,
        settings["krylov_mlp_steps"],
        "complex",
        settings["krylov_mlp_rtol"],
        ["tsit5", "exponential"],
        reference=krylov_reference,
        krylov_dim=settings["krylov_mlp_dim"],
        max_steps=settings["krylov_mlp_max_steps"],
        warm=False,
    )
    network = settings["network"]
    _, net = digits_network(network["n_train"], network["hidden"])
    start = jnp.asarray(gf.gd(net.loss, net.theta0, lr=network["lr"], steps=network["start"]).theta[-1])
    name = f"F7 network, {net.size} parameters, from GD step {network['start']}"
    options = dict(reference=krylov_reference, krylov_dim=network["krylov_dim"])
    for space in settings["network_spaces"]:
        solvers = settings["network_solvers"]
        rows += measure(
            name, net.loss, start, network["lr"], network["steps"], space, settings["network_rtols"], solvers, **options
        )
    implicit = settings["network_implicit"]
    for space in implicit["spaces"] if implicit else []:
        rows += measure(
            name,
            net.loss,
            start,
            network["lr"],
            implicit["steps"],
            space,
            implicit["rtols"],
            list(IMPLICIT),
            warm=False,
            **options,
        )
    return rows, mlp_spectrum


def _error_cell(row: dict) -> str:
    """The max error, with the GD step it is measured to where the reference stopped before the solve did."""
    if row["max_error"] is None:
        return "—"
    upto = min(row["gd_steps_reached"], row["reference"]["gd_steps_reached"])
    return f"{row['max_error']:.1e}" + (f" (to step {upto})" if upto < row["gd_steps_reached"] else "")


def markdown(results: dict) -> str:
    near = results["mlp_spectrum"]
    header = [
        "problem",
        "PF",
        "spectrum",
        "solver",
        "rtol",
        "GD steps",
        "evaluations / GD step",
        "HVPs / GD step",
        "accepted / rejected per GD step",
        "time / GD step",
        "max error",
        "PF to GD",
    ]
    body = []
    for r in results["rows"]:
        time_cell = (
            seconds(r["warm_s_per_gd_step"])
            if r["warm_s_per_gd_step"] is not None
            else (f"{seconds(r['first_call_s'] / max(r['gd_steps_reached'], 1))} (first call)")
        )
        body.append(
            [
                r["problem"],
                r["space"],
                r["spectrum"],
                f"`{r['solver']}`",
                f"{r['rtol']:g}",
                f"{r['gd_steps_reached']} of {r['gd_steps']}",
                "—" if r["evaluations_per_gd_step"] is None else f"{r['evaluations_per_gd_step']:.1f}",
                "—" if r["hvps_per_gd_step"] is None else f"{r['hvps_per_gd_step']:,.0f}",
                f"{r['accepted_per_gd_step']:.1f} / {r['rejected_per_gd_step']:.1f}",
                time_cell,
                _error_cell(r),
                "—" if r["reference"]["pf_to_gd"] is None else f"{r['reference']['pf_to_gd']:.1e}",
            ]
        )
    lines = [
        "### Principal-flow solvers: Dopri8, Dopri5, Tsit5, the exponential integrators and Kvaerno5",
        "",
        measured_on(
            results,
            "one warm call per solve; the MLP's solves and Kvaerno5's network row are timed once, compilation included",
        ),
        "",
        "Errors: largest |θ − θ_ref| at GD's times, against a reference solve of the same field: Dopri8 at "
        f"rtol {REFERENCE_RTOL:g} for the toys, the exponential solve at a 100 times tighter rtol for the dense MLP, "
        f"Dopri8 at rtol {KRYLOV_REFERENCE_RTOL:g} for the Krylov rows. *PF to GD*: the largest distance "
        "‖θ_ref(nh) − θ_n‖ between that reference and GD, the effect the PF models, for scale. HVPs: the dense "
        "field builds the Hessian from one Hessian-vector product per parameter, so HVPs = evaluations × "
        "parameters; on the Krylov spectrum they are counted (`gdflows.cost.CostTally`), and an exponential "
        "evaluation is one Lanczos run (the field at a point, or a function of the frozen linear part applied to a "
        "vector). A solve that stopped (wall-time budget on the MLP) is counted over the GD steps it reached; where "
        "the reference stopped first, the error is measured up to its last GD step. `kvaerno5` (diffrax's implicit "
        "ESDIRK method, solved by `diffrax.diffeqsolve` directly) has no evaluation or HVP count (—): diffrax forms "
        "the field's Jacobian through `jax.linearize`, whose tangent evaluations the tally cannot see; each of its "
        f"solves is bounded to {IMPLICIT_MAX_STEPS:,} solver steps.",
        "",
        *table(header, body, "llllrrrrrrrr"),
        "",
        f"The {near['parameters']}-parameter MLP at its start: {near['above_one']} eigenvalues of $hH$ above 1, "
        f"{near['within_0_1_of_one']} within 0.1 of 1, the nearest at "
        f"$|1 - h\\lambda| = {near['nearest_to_one']:.3f}$. The PF's coefficient "
        "$c(h\\lambda) = \\log(1 - h\\lambda)/(h\\lambda)$ is singular at $h\\lambda = 1$, and its derivative grows "
        "like $1/|1 - h\\lambda|$ near it.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(
        argv,
        description=__doc__.splitlines()[0],
        quick="complex PF only, no Dopri5, a 17-parameter MLP instead of 362 parameters",
    )
    run = TimedRun.begin(args, SETTINGS, progress)
    rows, mlp_spectrum = run_all(run.settings)
    results = run.record({"toy_rtol": TOY_RTOL, "reference_rtol": REFERENCE_RTOL}, rows=rows, mlp_spectrum=mlp_spectrum)
    page = write_results(args.build_dir, "pf_solvers", results, markdown(results))
    progress(f"wrote {page} and its .json; done in {run.seconds():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
