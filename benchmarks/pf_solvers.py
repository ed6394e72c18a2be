r"""Integrating the principal flow: Dopri8 and Dopri5 against the exponential integrator (``solver="exponential"``).

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
* a tanh MLP on random data (full: :math:`5 \to 15 \to 15 \to 2`, 362 parameters, 64 points,
  :math:`h = 2.2/\lambda_{\max}`, real-part PF; quick: :math:`2 \to 4 \to 1`, 17 parameters), where
  Dopri8 gets a wall-time budget and the reference is the exponential solve at a 100 times tighter
  tolerance (Dopri8 cannot reach it in reasonable time).
"""

from __future__ import annotations

import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import gdflows as gf
from gdflows import problems
from gdflows.models import MLP, flatten
from gdflows_book.benchmarks import TimedRun, measured_on, parse_args, seconds, table, write_results
from gdflows_book.setups import diagonal_quadratic
from gdflows_book.timing import progress_printer

jax.config.update("jax_enable_x64", True)  # float64: solver errors are measured down to 1e-10

progress = progress_printer("benchmarks/pf_solvers")

SETTINGS = {
    "full": {
        "spaces": ["complex", "real"],
        "solvers": ["dopri8", "dopri5", "exponential"],
        "mlp_sizes": [5, 15, 15, 2],
        "mlp_points": 64,
        "mlp_steps": 1,  # one GD step costs minutes on 2 cores: enough to compare the solvers
        "mlp_solvers": ["dopri8", "exponential"],  # Dopri5 is slower than both on the toys
        "mlp_rtol": 1e-6,
        "mlp_wall_s": 150,
    },
    "quick": {
        "spaces": ["complex"],
        "solvers": ["dopri8", "exponential"],
        "mlp_sizes": [2, 4, 1],
        "mlp_points": 16,
        "mlp_steps": 2,
        "mlp_solvers": ["dopri8", "exponential"],
        "mlp_rtol": 1e-8,
        "mlp_wall_s": 60,
    },
}
TOY_RTOL, REFERENCE_RTOL = 1e-8, 1e-12


def _mlp(sizes, points):
    x = jax.random.normal(jax.random.key(0), (points, sizes[0]), dtype=jnp.float64)
    teacher = jax.random.normal(jax.random.key(1), (sizes[0], sizes[-1]), dtype=jnp.float64)
    net = flatten(MLP(sizes, activation="tanh", rngs=nnx.Rngs(0)), x, jnp.tanh(x @ teacher))
    sharpness = float(jnp.max(jnp.linalg.eigvalsh(gf.spectral.hessian(net.loss, net.theta0))))
    return net.loss, net.theta0, 2.2 / sharpness


def _solve(flow, theta0, steps, solver, rtol, wall=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        sol = gf.solve(flow, theta0, steps=steps, solver=solver, rtol=rtol, atol=rtol / 100, max_wall_time=wall)
        return sol, time.perf_counter() - start


def measure(name, loss, theta0, lr, steps, space, rtol, solvers, *, reference, wall=None, warm=True) -> list[dict]:
    """One row per solver (see the module docstring); ``reference`` is ``(solver, rtol)``."""
    flow = gf.principal_flow(loss, lr=lr, space=space, spectrum="dense")
    d = int(theta0.size)
    ref, _ = _solve(flow, theta0, steps, *reference)
    rows = []
    for solver in solvers:
        sol, first = _solve(flow, theta0, steps, solver, rtol, wall if solver != "exponential" else None)
        warm_s = (
            _solve(flow, theta0, steps, solver, rtol, wall if solver != "exponential" else None)[1] if warm else None
        )
        reached = len(sol.times) - 1  # GD steps covered (fewer if stopped)
        per = max(reached, 1)
        error = float(np.max(np.abs(sol.theta - ref.theta[: len(sol.theta)]))) if reached else None
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
                "evaluations_per_gd_step": sol.stats.vector_field_evaluations / per,
                "hvps_per_gd_step": sol.stats.vector_field_evaluations * d / per,
                "first_call_s": first,
                "warm_s_per_gd_step": None if warm_s is None else warm_s / per,
                "max_error": error,
                "reference": {"solver": reference[0], "rtol": reference[1]},
            }
        )
        progress(f"{name} ({space}) {solver}: {rows[-1]['evaluations_per_gd_step']:.1f} evaluations per GD step")
    return rows


def run_all(settings: dict) -> list[dict]:
    rows = []
    f2 = (diagonal_quadratic([1.0, 0.01]), jnp.array([-0.35, -0.2]), 1.05, 5)
    quartic = (problems.quartic_two_minima().loss, jnp.array([1.001]), 3.6 / 8.0, 6)
    for name, (loss, theta0, lr, steps) in (("F2 quadratic", f2), ("quartic escape onset", quartic)):
        for space in settings["spaces"]:
            reference = ("dopri8", REFERENCE_RTOL)
            rows += measure(name, loss, theta0, lr, steps, space, TOY_RTOL, settings["solvers"], reference=reference)
    loss, theta0, lr = _mlp(settings["mlp_sizes"], settings["mlp_points"])
    rtol = settings["mlp_rtol"]
    name = f"tanh MLP, {theta0.size} parameters"
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
    return rows


def markdown(results: dict) -> str:
    header = [
        "problem",
        "PF",
        "solver",
        "rtol",
        "GD steps",
        "evaluations / GD step",
        "HVPs / GD step",
        "accepted / rejected per GD step",
        "time / GD step",
        "max error",
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
                f"`{r['solver']}`",
                f"{r['rtol']:g}",
                f"{r['gd_steps_reached']} of {r['gd_steps']}",
                f"{r['evaluations_per_gd_step']:.1f}",
                f"{r['hvps_per_gd_step']:,.0f}",
                f"{r['accepted_per_gd_step']:.1f} / {r['rejected_per_gd_step']:.1f}",
                time_cell,
                "—" if r["max_error"] is None else f"{r['max_error']:.1e}",
            ]
        )
    lines = [
        "### Principal-flow solvers: Dopri8, Dopri5 and the exponential integrator",
        "",
        measured_on(results, "one warm call per solve; the MLP's solves are timed once, compilation included"),
        "",
        "Errors: largest |θ − θ_ref| at GD's times; the reference is Dopri8 at rtol 1e-12 for the toys and "
        "the exponential solve at a 100 times tighter rtol for the MLP. HVPs: the dense field builds the Hessian "
        "from one Hessian-vector product per parameter, so HVPs = evaluations × parameters. A solve that stopped "
        "(wall-time budget on the MLP) is counted over the GD steps it reached.",
        "",
        *table(header, body, "lllrrrrrrr"),
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
    rows = run_all(run.settings)
    results = run.record({"toy_rtol": TOY_RTOL, "reference_rtol": REFERENCE_RTOL}, rows=rows)
    page = write_results(args.build_dir, "pf_solvers", results, markdown(results))
    progress(f"wrote {page} and its .json; done in {run.seconds():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
