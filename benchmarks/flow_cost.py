r"""What the flows cost: one vector-field evaluation of every flow against :math:`d`, the solver's
steps on one problem, and GD steps per second, the reference cost.

Usage::

    python benchmarks/flow_cost.py [--quick] [--build-dir build]

Writes ``<build>/benchmarks/flow_cost.json`` (every number, with provenance),
``<build>/benchmarks/flow_cost.md`` (the tables the book includes) and the figure
``<build>/figures/benchmark_flow_cost.{png,pdf}``.

The loss is :func:`tanh_regression`, non-quadratic and holomorphic, with :math:`h` set so that
:math:`h\lambda_{\max}(\theta_0) = 0.5`; the flows are :func:`gdflows_book.setups.flow_lineup`.
Timings are wall-clock medians over repeats of a compiled, warmed-up call
(:func:`gdflows_book.timing.warm_time`); the first call, which includes tracing and compilation,
is reported separately; the spread (min, max) is in the JSON.
"""

from __future__ import annotations

import math
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import gdflows
from gdflows_book.benchmarks import TimedRun, measured_on, parse_args, seconds, table, write_results
from gdflows_book.figures import FLOW_STYLE, save_figure, use_style
from gdflows_book.setups import FLOW_NAMES, flow_lineup
from gdflows_book.timing import SLOW_SECONDS, first_call, progress_printer, python_loop, warm_time

jax.config.update("jax_enable_x64", True)  # float64: the flows are compared with GD to 1e-8 and tighter

SETTINGS = {
    "full": {
        "dims": [10, 30, 100, 300, 1000],
        "repeats": 7,  # repeats of every fast measurement
        "slow_repeats": 3,  # repeats of a measurement whose single call exceeds SLOW_SECONDS
        "gd_steps": 2000,
        "solver_dim": 10,
        "solver_gd_steps": 10,
    },
    "quick": {
        "dims": [10, 30, 100],
        "repeats": 3,
        "slow_repeats": 3,
        "gd_steps": 500,
        "solver_dim": 10,
        "solver_gd_steps": 10,
    },
}

SAMPLES = 64  # data points of the tanh-regression loss
RIDGE = 1e-2
SOLVER_HLAM = 0.5  # h * lambda_max(theta0): below 1 along the solver problem's run

FLOW_LABELS = {
    "NGF": "NGF",
    "IGR": "IGR (order 1)",
    "MF3": "third order (order 2)",
    "PF (real part)": "PF, real part",
    "PF": "PF, complex",
}

progress = progress_printer("benchmarks/flow_cost")


def tanh_regression(d: int, seed: int = 0):
    r"""A holomorphic, non-quadratic loss of ``d`` parameters, and a starting point.

    :math:`E(\theta) = \frac1{2n}\sum_k(\tanh(x_k\cdot\theta) - y_k)^2 + \frac\mu2\|\theta\|^2`, a single tanh
    neuron with MSE on ``SAMPLES`` random inputs :math:`x_k \sim N(0, I/d)` and teacher labels, plus a ridge
    :math:`\mu = 10^{-2}`. Gradient and Hessian-vector product cost :math:`O(nd)`.
    """
    kx, kw, kt = jax.random.split(jax.random.key(seed), 3)
    X = jax.random.normal(kx, (SAMPLES, d), dtype=jnp.float64) / math.sqrt(d)
    y = jnp.tanh(2.0 * X @ jax.random.normal(kw, (d,), dtype=jnp.float64))
    theta0 = jax.random.normal(kt, (d,), dtype=jnp.float64)

    def loss(theta):
        residual = jnp.tanh(X.astype(theta.dtype) @ theta) - y.astype(theta.dtype)
        return 0.5 * jnp.mean(residual * residual) + 0.5 * RIDGE * (theta @ theta)

    return loss, theta0


def evaluation_loop(flow):
    """A jitted ``(state, count) -> state`` that evaluates the flow's vector field ``count`` times.

    The evaluations run inside one compiled loop, as they do inside the solver, so Python's
    dispatch overhead (tens of microseconds per call) is not counted. Each evaluation feeds
    the next through an Euler step of size ``1e-12``, so none can be hoisted or skipped.
    """

    @jax.jit
    def loop(state, count):
        def body(_, s):
            ds = flow.vector_field(0.0, s)
            return jax.tree.map(lambda a, b: a + 1e-12 * b, s, ds)

        return jax.lax.fori_loop(0, count, body, state)

    return loop


def _timed(loop, state, number: int) -> float:
    count = jnp.asarray(number, dtype=jnp.int32)
    start = time.perf_counter()
    jax.block_until_ready(loop(state, count))
    return time.perf_counter() - start


def bench_flow_cost(cfg: dict) -> dict:
    """Time of one jitted vector-field evaluation of each flow, and of one GD step, against d."""
    rows = []
    for d in cfg["dims"]:
        loss, theta0 = tanh_regression(d)
        h = SOLVER_HLAM / float(gdflows.sharpness(loss, theta0))
        row = {"d": d, "lr": h, "flows": {}}
        for flow in flow_lineup(loss, h):
            loop = evaluation_loop(flow)
            state = flow.init(theta0)
            compile_s, _ = first_call(lambda loop=loop, state=state: loop(state, jnp.asarray(1, dtype=jnp.int32)))
            timing = warm_time(
                lambda number, loop=loop, state=state: _timed(loop, state, number),
                repeats=cfg["repeats"],
                slow_repeats=cfg["slow_repeats"],
            )
            row["flows"][flow.name] = {"first_call_s": compile_s, **timing}
            progress(f"flow cost: d={d:5d} {flow.name:15s} {seconds(timing['median_s']):>10s} per evaluation")
        gd_steps = cfg["gd_steps"]

        def run_gd(loss=loss, theta0=theta0, h=h, steps=gd_steps):
            return gdflows.gd(loss, theta0, lr=h, steps=steps).theta

        gd_first, _ = first_call(run_gd)
        gd_timing = warm_time(python_loop(run_gd), repeats=cfg["repeats"], slow_repeats=cfg["slow_repeats"])
        row["gd"] = {
            "steps": gd_steps,
            "first_call_s": gd_first,
            **gd_timing,
            "steps_per_second": gd_steps / gd_timing["median_s"],
        }
        progress(f"GD: d={d:5d} {row['gd']['steps_per_second']:,.0f} steps/s ({gd_steps} steps per call)")
        rows.append(row)
    # empirical exponent of the cost between the two largest sizes
    exponents = {}
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        span = math.log(b["d"] / a["d"])
        for name in FLOW_NAMES:
            exponents[name] = math.log(b["flows"][name]["median_s"] / a["flows"][name]["median_s"]) / span
        exponents["GD"] = math.log(a["gd"]["steps_per_second"] / b["gd"]["steps_per_second"]) / span
    return {"loss": tanh_regression.__doc__.split("\n\n")[1].strip(), "rows": rows, "exponents": exponents}


def bench_solver_steps(cfg: dict) -> dict:
    """Solve every flow on one fixed problem; step counts, time and distance to GD."""
    d, steps = cfg["solver_dim"], cfg["solver_gd_steps"]
    loss, theta0 = tanh_regression(d)
    lam = float(gdflows.sharpness(loss, theta0))
    h = SOLVER_HLAM / lam
    gd = gdflows.gd(loss, theta0, lr=h, steps=steps)
    out = {"d": d, "gd_steps": steps, "lr": h, "lambda_max_theta0": lam, "flows": {}}
    for flow in flow_lineup(loss, h):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first_s, _ = first_call(lambda flow=flow: gdflows.solve(flow, theta0, steps=steps).theta)
            run = gdflows.solve(flow, theta0, steps=steps)
        timing = warm_time(
            python_loop(lambda flow=flow: gdflows.solve(flow, theta0, steps=steps).theta),
            repeats=cfg["repeats"],
            slow_repeats=cfg["slow_repeats"],
        )
        n = len(run.theta)
        stats = run.stats
        out["flows"][flow.name] = {
            "accepted_steps": stats.accepted_steps,
            "rejected_steps": stats.rejected_steps,
            "vector_field_evaluations": stats.vector_field_evaluations,
            "first_call_s": first_s,
            **timing,
            "reached_gd_step": n - 1,
            "max_distance_to_gd": float(np.abs(run.theta - gd.theta[:n]).max()),
            "warnings": sorted({str(w.message) for w in caught}),
        }
        progress(
            f"solver: {flow.name:15s} {stats.accepted_steps} accepted, {stats.rejected_steps} rejected, "
            f"{seconds(timing['median_s'])} per solve"
        )
    return out


def markdown(results: dict) -> str:
    cfg, cost, sol = results["settings"], results["flow_cost"], results["solver_steps"]
    evaluation_rows = [
        [
            str(row["d"]),
            *(seconds(row["flows"][name]["median_s"]) for name in FLOW_NAMES),
            seconds(1.0 / row["gd"]["steps_per_second"]),
        ]
        for row in cost["rows"]
    ]
    if cost["exponents"]:
        a, b = cost["rows"][-2]["d"], cost["rows"][-1]["d"]
        evaluation_rows.append([f"slope {a}→{b}", *(f"{cost['exponents'][n]:.2f}" for n in [*FLOW_NAMES, "GD"])])
    gd_rows = [
        [str(row["d"]), str(g["steps"]), f"{g['steps_per_second']:,.0f}", seconds(g["first_call_s"])]
        for row in cost["rows"]
        for g in [row["gd"]]
    ]
    solver_rows = [
        [
            FLOW_LABELS[name],
            str(f["accepted_steps"]),
            str(f["rejected_steps"]),
            str(f["vector_field_evaluations"]),
            seconds(f["median_s"]),
            seconds(f["first_call_s"]),
            f"{f['max_distance_to_gd']:.2e}",
        ]
        for name in FLOW_NAMES
        for f in [sol["flows"][name]]
    ]
    repeats = f"fast calls: {cfg['repeats']} repeats; calls over {SLOW_SECONDS:g} s: {cfg['slow_repeats']}"
    lines = [
        measured_on(results, repeats),
        "",
        "### Time per vector-field evaluation",
        "",
        *table(["$d$", *(FLOW_LABELS[n] for n in FLOW_NAMES), "GD step"], evaluation_rows, "r"),
        "",
        "### GD steps per second",
        "",
        *table(["$d$", "steps per call", "steps per second", "first call (with compilation)"], gd_rows, "r"),
        "",
        f"### Solver steps on one problem ($d = {sol['d']}$, {sol['gd_steps']} GD steps, "
        f"$h\\lambda_{{\\max}}(\\theta_0) = {SOLVER_HLAM:g}$)",
        "",
        *table(
            [
                "flow",
                "accepted",
                "rejected",
                "vector-field evaluations",
                "solve, warm",
                "first call",
                "max $\\lVert\\theta(t_n) - \\theta_n\\rVert_\\infty$",
            ],
            solver_rows,
            "lrrrrrr",
        ),
    ]
    return "\n".join(lines) + "\n"


def figure(results: dict):
    use_style()
    rows = results["flow_cost"]["rows"]
    dims = np.array([r["d"] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for name in FLOW_NAMES:
        style = {k: v for k, v in FLOW_STYLE.get(name, {}).items() if k in ("color", "linestyle", "linewidth")}
        times = [r["flows"][name]["median_s"] for r in rows]
        ax.loglog(dims, times, marker="o", markersize=4, label=FLOW_LABELS[name], **style)
    gd_step = [1.0 / r["gd"]["steps_per_second"] for r in rows]
    ax.loglog(dims, gd_step, marker="s", markersize=4, color="black", linewidth=1.0, label="one GD step (gdflows.gd)")
    pf = rows[-1]["flows"]["PF"]["median_s"]
    ngf = rows[-1]["flows"]["NGF"]["median_s"]
    ax.loglog(dims, pf * (dims / dims[-1]) ** 3, color="grey", linestyle=":", linewidth=1.0, label=r"$\propto d^3$")
    ax.loglog(dims, ngf * dims / dims[-1], color="grey", linestyle="--", linewidth=0.8, label=r"$\propto d$")
    ax.set_xlabel("number of parameters $d$")
    ax.set_ylabel("wall time per evaluation (s), median")
    ax.set_title("Cost of one vector-field evaluation (tanh regression, float64)", fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    return fig


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, description=__doc__.splitlines()[0], quick="fewer sizes and repeats (for CI)")
    run = TimedRun.begin(args, SETTINGS, progress)
    cost = bench_flow_cost(run.settings)
    solver = bench_solver_steps(run.settings)
    parameters = {"samples": SAMPLES, "ridge": RIDGE, "solver_h_lambda_max": SOLVER_HLAM}
    results = run.record(parameters, flow_cost=cost, solver_steps=solver)
    page = write_results(args.build_dir, "flow_cost", results, markdown(results))
    fig = figure(results)
    paths = save_figure(fig, "benchmark_flow_cost", args.build_dir)
    plt.close(fig)
    progress(f"wrote {page}, its .json, {', '.join(str(p) for p in paths)}")
    progress(f"done in {run.seconds():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
