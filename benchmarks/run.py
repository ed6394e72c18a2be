r"""Benchmarks shown in the book: what the flows cost, and the F2 solve against the authors' scheme.

Usage::

    python benchmarks/run.py [--quick] [--build-dir build]

Writes ``<build>/benchmarks/results.json`` (every number, with provenance),
``<build>/benchmarks/results.md`` (the tables the book includes) and the figure
``<build>/figures/benchmark_flow_cost.{png,pdf}``.

Three measurements:

1. **F2 against the released scheme.** :math:`E(\theta) = \theta^\top A\theta`,
   :math:`A = \mathrm{diag}(1, 0.01)`, :math:`\theta_0 = (-0.35, -0.2)`, :math:`h = 1.05`, five GD
   steps. The authors' scheme, re-implemented here: 525,000 forward-Euler steps of the
   complex-space principal flow with :math:`dt = 10^{-5}` in complex64, with a full Hessian
   (``jax.hessian(holomorphic=True)``) and an eigendecomposition (``jnp.linalg.eig``) at every
   step, compiled as one XLA loop. Against it, :func:`gdflows.solve` of
   :func:`gdflows.principal_flow` in complex128 with its default tolerances. Both are compared
   with the exact answer :math:`(I - hH)^n\theta_0`.
2. **Cost of one vector-field evaluation** of every flow against the parameter count
   :math:`d`, on a non-quadratic holomorphic loss, and the solver's step counts on one fixed
   problem.
3. **GD steps per second** on the same losses, the reference cost.

Timings are wall-clock medians over repeats of a compiled, warmed-up call (each repeat
averages as many calls as fill ``MIN_REPEAT_SECONDS``); the first call, which includes
tracing and compilation, is reported separately. The machine may be shared, so the
spread (min, max) is stored in the JSON as well.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import gdflows
from gdflows_book.benchmarks import parse_args, write_results
from gdflows_book.figures import FLOW_STYLE, save_figure, use_style
from gdflows_book.provenance import provenance
from gdflows_book.timing import first_call, progress_printer, python_loop
from gdflows_book.timing import warm_time as _warm_time

jax.config.update("jax_enable_x64", True)  # float64: the flows are compared with GD to 1e-8 and tighter

# ----------------------------------------------------------------------------- settings

F2 = {
    "A_diag": [1.0, 0.01],
    "theta0": [-0.35, -0.2],
    "lr": 1.05,
    "steps": 5,
    "euler_dt": 1e-5,
    "euler_steps": 525_000,  # 5.25 / 1e-5, as in the released notebook; never reduced
}

SETTINGS = {
    "full": {
        "dims": [10, 30, 100, 300, 1000],
        "repeats": 7,  # repeats of every fast measurement
        "slow_repeats": 3,  # repeats of a measurement whose single call exceeds SLOW_SECONDS
        "euler_repeats": 3,
        "euler_in_double": True,  # the Euler scheme once more in complex128 (one call, ~3-6 s)
        "gd_steps": 2000,
        "solver_dim": 10,
        "solver_gd_steps": 10,
    },
    "quick": {
        "dims": [10, 30, 100],
        "repeats": 3,
        "slow_repeats": 3,
        "euler_repeats": 1,
        "euler_in_double": False,
        "gd_steps": 500,
        "solver_dim": 10,
        "solver_gd_steps": 10,
    },
}

MIN_REPEAT_SECONDS = 0.05  # each timed repeat runs the call often enough to last this long
SLOW_SECONDS = 0.5
SAMPLES = 64  # data points of the tanh-regression loss
RIDGE = 1e-2
SOLVER_HLAM = 0.5  # h * lambda_max(theta0) for the fixed solver problem: below 1 along the run

FLOW_NAMES = ["NGF", "IGR", "MF3", "PF (real part)", "PF"]
FLOW_LABELS = {
    "NGF": "NGF",
    "IGR": "IGR (order 1)",
    "MF3": "third order (order 2)",
    "PF (real part)": "PF, real part",
    "PF": "PF, complex",
}


progress = progress_printer("benchmarks")


def warm_time(run, *, repeats: int, slow_repeats: int | None = None) -> dict:
    """:func:`gdflows_book.timing.warm_time` with this script's ``MIN_REPEAT_SECONDS`` and ``SLOW_SECONDS``."""
    return _warm_time(
        run, repeats=repeats, slow_repeats=slow_repeats, min_seconds=MIN_REPEAT_SECONDS, slow_seconds=SLOW_SECONDS
    )


# ----------------------------------------------------------------------------- 1. F2


def authors_scheme(A_diag, h: float, dt: float, steps_per_gd_step: int, gd_steps: int, dtype=jnp.complex64):
    r"""The released scheme: forward Euler on the complex PF, complex64, dense Hessian + ``eig`` per step.

    Returns a jitted function ``z0 -> z(nh), n = 1..gd_steps`` (in ``dtype``); the iterate is recorded
    every ``steps_per_gd_step`` Euler steps, which leaves the arithmetic of the Euler loop unchanged.
    ``dtype=jnp.complex128`` gives the same scheme in double precision, to separate the method's
    error from single-precision rounding.
    """
    c64 = dtype
    real = jnp.float32 if dtype == jnp.complex64 else jnp.float64
    A = jnp.diag(jnp.asarray(A_diag, dtype=real)).astype(c64)
    hc = jnp.asarray(h, dtype=real).astype(c64)
    dtc = jnp.asarray(dt, dtype=real).astype(c64)

    def loss(z):
        return z @ (A @ z)

    hessian = jax.hessian(loss, holomorphic=True)
    grad = jax.grad(loss, holomorphic=True)

    def velocity(z):
        # On a quadratic the Hessian does not depend on z, and XLA would hoist its
        # eigendecomposition out of the loop (it did: 5 eig calls instead of 525,000). The
        # barrier makes it depend on the iterate, so every step does the released scheme's work.
        H, z = jax.lax.optimization_barrier((hessian(z), z))
        eigenvalues, vectors = jnp.linalg.eig(H)
        x = hc * eigenvalues
        coefficient = jnp.log(1.0 - x) / x  # principal logarithm, as in the released notebook
        return vectors @ (coefficient * jnp.linalg.solve(vectors, grad(z)))

    def one_gd_step(z, _):
        z = jax.lax.fori_loop(0, steps_per_gd_step, lambda i, w: w + dtc * velocity(w), z)
        return z, z

    @jax.jit
    def run(z0):
        return jax.lax.scan(one_gd_step, z0.astype(c64), None, length=gd_steps)[1]

    return run


def bench_f2(cfg: dict) -> dict:
    A_diag, h, steps = F2["A_diag"], F2["lr"], F2["steps"]
    theta0_np = np.asarray(F2["theta0"])
    hessian_np = 2.0 * np.diag(A_diag)
    exact = np.stack([np.linalg.matrix_power(np.eye(2) - h * hessian_np, n) @ theta0_np for n in range(steps + 1)])

    # --- the authors' scheme
    per_step = round(h / F2["euler_dt"])
    assert per_step * steps == F2["euler_steps"]
    euler = authors_scheme(A_diag, h, F2["euler_dt"], per_step, steps)
    z0 = jnp.asarray(theta0_np, dtype=jnp.complex64)
    progress(f"F2: authors' scheme, first call ({F2['euler_steps']:,} Euler steps, complex64) ...")
    euler_first, z = first_call(lambda: euler(z0))
    progress(f"F2: authors' scheme, first call {euler_first:.2f} s; warm repeats ...")
    euler_warm = warm_time(
        python_loop(lambda: euler(z0)), repeats=cfg["euler_repeats"], slow_repeats=cfg["euler_repeats"]
    )
    z = np.asarray(z)
    euler_errors = np.abs(np.real(z) - exact[1:]).max(axis=1)
    progress(f"F2: authors' scheme warm median {euler_warm['median_s']:.2f} s, error {euler_errors[-1]:.2e}")
    double = None
    if cfg["euler_in_double"]:
        progress("F2: the same Euler scheme in complex128, once (separates method and rounding error) ...")
        euler64 = authors_scheme(A_diag, h, F2["euler_dt"], per_step, steps, dtype=jnp.complex128)
        seconds, z64 = first_call(lambda: euler64(jnp.asarray(theta0_np, dtype=jnp.complex128)))
        error64 = np.abs(np.real(np.asarray(z64[-1])) - exact[-1])
        double = {
            "first_call_s": seconds,
            "error_final": float(error64.max()),
            "error_final_per_axis": error64.tolist(),
        }
        progress(f"F2: Euler in complex128: error {error64.max():.2e} ({seconds:.1f} s with compilation)")

    # --- ours: the default call (eighth-order Dopri8), and the same with the fifth-order Tsit5
    A64 = jnp.diag(jnp.asarray(A_diag, dtype=jnp.float64))

    def loss(theta):
        return theta @ (A64.astype(theta.dtype) @ theta)

    theta0 = jnp.asarray(theta0_np, dtype=jnp.float64)
    ours = _ours_f2(loss, theta0, h, steps, exact, cfg, {})
    tsit5 = _ours_f2(loss, theta0, h, steps, exact, cfg, {"solver": "tsit5"})
    # the loosest tolerances that still meet the error target (1000x below the Euler scheme's 7e-4)
    loose = _ours_f2(loss, theta0, h, steps, exact, cfg, {"rtol": 1e-8, "atol": 1e-10})

    def ratios(record):
        speedup = euler_warm["median_s"] / record["warm"]["median_s"]
        # an exact zero error would make the ratio infinite; JSON has no infinity, so store None then
        error = record["error_final"]
        error_ratio = float(euler_errors[-1] / error) if error > 0 else None
        return {
            "speedup_warm": speedup,
            "speedup_warm_core": euler_warm["median_s"] / record["warm_compiled_core"]["median_s"],
            "speedup_first_call": euler_first / record["first_call_s"],
            "error_ratio": error_ratio,
            "target_met": bool(speedup >= 1000 and (error_ratio is None or error_ratio >= 1000)),
        }

    return {
        "exact_final": exact[-1].tolist(),
        "authors_scheme": {
            "description": "forward Euler, dt=1e-5, complex64, jax.hessian(holomorphic=True) + jnp.linalg.eig "
            "every step, principal log; one jitted lax.scan/fori_loop",
            "euler_steps": F2["euler_steps"],
            "vector_field_evaluations": F2["euler_steps"],
            "first_call_s": euler_first,
            "warm": euler_warm,
            "final": np.real(z[-1]).tolist(),
            "final_imag": np.imag(z[-1]).tolist(),
            "error_final": float(euler_errors[-1]),
            "error_final_per_axis": np.abs(np.real(z[-1]) - exact[-1]).tolist(),
            "error_all_iterates": float(euler_errors.max()),
            "same_scheme_complex128": double,
        },
        "gdflows": ours,
        "gdflows_tsit5": tsit5,
        "gdflows_rtol_1e-8": loose,
        **ratios(ours),
        "tsit5": ratios(tsit5),
        "rtol_1e-8": ratios(loose),
        "target": "at least 1000x faster at at least 1000x smaller error",
    }


def _ours_f2(loss, theta0, h: float, steps: int, exact: np.ndarray, cfg: dict, options: dict) -> dict:
    """Time and check ``gdflows.solve(principal_flow(loss, lr=h), theta0, ..., **options)`` on F2."""
    flow_box = {}

    def build_and_solve():
        flow_box["flow"] = gdflows.principal_flow(loss, lr=h)
        return gdflows.solve(flow_box["flow"], theta0, steps=steps, **options).theta

    label = "gdflows.solve(principal_flow" + "".join(f", {k}={v!r}" for k, v in options.items()) + ")"
    progress(f"F2: {label}, first call ...")
    first_s, _ = first_call(build_and_solve)
    flow = flow_box["flow"]
    run = gdflows.solve(flow, theta0, steps=steps, **options)
    warm = warm_time(
        python_loop(lambda: gdflows.solve(flow, theta0, steps=steps, **options).theta), repeats=cfg["repeats"]
    )
    # the compiled core alone (no argument checks, holomorphy test or NumPy conversion)
    ts = h * jnp.arange(steps + 1, dtype=jnp.float64)
    state0 = flow.init(theta0)
    rtol, atol, solver = run.rtol, run.atol, run.solver
    core = lambda: gdflows.solve_scan(flow, state0, ts=ts, rtol=rtol, atol=atol, solver=solver).theta  # noqa: E731
    core_warm = warm_time(python_loop(core), repeats=cfg["repeats"])
    errors = np.abs(run.theta - exact).max(axis=1)[1:]
    stats = run.stats
    progress(
        f"F2: {label} warm median {warm['median_s'] * 1e3:.2f} ms "
        f"(compiled core {core_warm['median_s'] * 1e3:.2f} ms), error {errors[-1]:.2e}"
    )
    return {
        "description": f"{label} on theta0, lr={h}, steps={steps}; complex128, {solver}, rtol={rtol:g}, atol={atol:g}",
        "solver": solver,
        "rtol": rtol,
        "atol": atol,
        "accepted_steps": stats.accepted_steps,
        "rejected_steps": stats.rejected_steps,
        "vector_field_evaluations": stats.vector_field_evaluations,
        "first_call_s": first_s,
        "warm": warm,
        "warm_compiled_core": core_warm,
        "final": run.theta[-1].tolist(),
        "error_final": float(errors[-1]),
        "error_final_per_axis": np.abs(run.theta[-1] - exact[-1]).tolist(),
        "error_all_iterates": float(errors.max()),
    }


# ----------------------------------------------------------------------------- 2./3. flows and GD


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


def make_flows(loss, h: float) -> dict:
    return {
        "NGF": gdflows.gradient_flow(loss, lr=h),
        "IGR": gdflows.modified_flow(loss, lr=h, order=1),
        "MF3": gdflows.modified_flow(loss, lr=h, order=2),
        "PF (real part)": gdflows.principal_flow(loss, lr=h, space="real"),
        "PF": gdflows.principal_flow(loss, lr=h, space="complex"),
    }


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
        for name, flow in make_flows(loss, h).items():
            loop = evaluation_loop(flow)
            state = flow.init(theta0)
            compile_s, _ = first_call(lambda loop=loop, state=state: loop(state, jnp.asarray(1, dtype=jnp.int32)))
            timing = warm_time(
                lambda number, loop=loop, state=state: _timed(loop, state, number),
                repeats=cfg["repeats"],
                slow_repeats=cfg["slow_repeats"],
            )
            row["flows"][name] = {"first_call_s": compile_s, **timing}
            progress(f"flow cost: d={d:5d} {name:15s} {_seconds(timing['median_s']):>10s} per evaluation")
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
    for name, flow in make_flows(loss, h).items():
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
        out["flows"][name] = {
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
            f"solver: {name:15s} {stats.accepted_steps} accepted, {stats.rejected_steps} rejected, "
            f"{_seconds(timing['median_s'])} per solve"
        )
    return out


# ----------------------------------------------------------------------------- output


def _seconds(value: float) -> str:
    if value >= 1.0:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def _ratio(value: float | None) -> str:
    return "∞ (gdflows exact to the last bit)" if value is None else f"{value:.2e}"


def _machine() -> dict:
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
        "load_average_1min_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def markdown(results: dict) -> str:
    prov, machine, cfg = results["provenance"], results["machine"], results["settings"]
    f2 = results["f2"]
    ea, us, alt, loose = f2["authors_scheme"], f2["gdflows"], f2["tsit5"], f2["rtol_1e-8"]
    ours = [us, f2["gdflows_tsit5"], f2["gdflows_rtol_1e-8"]]
    double = ea["same_scheme_complex128"]
    double_cell = (
        "not run (`--quick`)"
        if double is None
        else f"{double['error_final']:.2e} (θ₁ {double['error_final_per_axis'][0]:.1e}, "
        f"θ₂ {double['error_final_per_axis'][1]:.1e})"
    )
    lines = [
        f"Measured on {prov['machine']}, {machine['cpu']} ({machine['logical_cores']} logical cores, JAX "
        f"{prov['packages']['jax']} on {machine['jax_backend']}), Python {prov['python']}, gdflows at git revision "
        f"`{prov['git_revision']}`, finished {prov['finished_utc']} UTC; load average "
        f"{machine['load_average_1min_at_start']:.2f} at the start and {machine['load_average_1min_at_end']:.2f} at "
        f"the end (the machine may have been shared). Settings: `{results['mode']}`; every time below is the median "
        f"over repeats of a compiled, warmed-up call (fast calls: {cfg['repeats']} repeats; calls over "
        f"{SLOW_SECONDS:g} s: {cfg['slow_repeats']}; the Euler reference: {cfg['euler_repeats']}). "
        f"The whole run took {prov['run_time_s']:.0f} s.",
        "",
        "### F2: the principal flow against the released scheme",
        "",
        '| | authors\' scheme (re-implemented) | gdflows, default call (Dopri8) | gdflows, `solver="tsit5"` '
        "| gdflows, `rtol=1e-8, atol=1e-10` |",
        "|---|---|---|---|---|",
        f"| method | forward Euler, {ea['euler_steps']:,} steps of $dt = 10^{{-5}}$, complex64 | "
        + " | ".join(f"adaptive {r['solver']}, rtol {r['rtol']:g}, atol {r['atol']:g}, complex128" for r in ours)
        + " |",
        f"| vector-field evaluations | {ea['vector_field_evaluations']:,} | "
        + " | ".join(
            f"{r['vector_field_evaluations']:,} ({r['accepted_steps']} accepted, {r['rejected_steps']} rejected steps)"
            for r in ours
        )
        + " |",
        f"| wall time, warm (median of {ea['warm']['repeats']} / {us['warm']['repeats']} repeats) | "
        f"{_seconds(ea['warm']['median_s'])} | "
        + " | ".join(
            f"{_seconds(r['warm']['median_s'])} (compiled core: {_seconds(r['warm_compiled_core']['median_s'])})"
            for r in ours
        )
        + " |",
        f"| wall time, first call (with compilation) | {_seconds(ea['first_call_s'])} | "
        + " | ".join(_seconds(r["first_call_s"]) for r in ours)
        + " |",
        f"| max error at $t = 5h$ | {ea['error_final']:.2e} | "
        + " | ".join(f"{r['error_final']:.2e}" for r in ours)
        + " |",
        f"| max error over $t = h, \\dots, 5h$ | {ea['error_all_iterates']:.2e} | "
        + " | ".join(f"{r['error_all_iterates']:.2e}" for r in ours)
        + " |",
        f"| error at $t = 5h$ along $\\theta_1$ (sharp) / $\\theta_2$ (flat) | "
        f"{ea['error_final_per_axis'][0]:.1e} / {ea['error_final_per_axis'][1]:.1e} | "
        + " | ".join(f"{r['error_final_per_axis'][0]:.1e} / {r['error_final_per_axis'][1]:.1e}" for r in ours)
        + " |",
        f"| the same Euler scheme in complex128: max error at $t = 5h$ | {double_cell} | | | |",
        "",
        f"Default call: speed-up (warm, end to end) **{f2['speedup_warm']:,.0f}×** "
        f"({f2['speedup_warm_core']:,.0f}× for the compiled core; {f2['speedup_first_call']:.1f}× for first calls), "
        f"error ratio at $t = 5h$ **{_ratio(f2['error_ratio'])}**. "
        f"With `tsit5`: **{alt['speedup_warm']:,.0f}×** ({alt['speedup_warm_core']:,.0f}× for the compiled core), "
        f"error ratio **{_ratio(alt['error_ratio'])}**. "
        f"Target ({f2['target']}): **{'met' if f2['target_met'] else 'not met'}** by the default call, "
        f"**{'met' if alt['target_met'] else 'not met'}** with `tsit5`. "
        f"At `rtol=1e-8, atol=1e-10` (error still far below the target's bound): "
        f"**{loose['speedup_warm']:,.0f}×**, error ratio **{_ratio(loose['error_ratio'])}**, target "
        f"**{'met' if loose['target_met'] else 'not met'}**.",
        "",
        "### Time per vector-field evaluation",
        "",
        "| $d$ | " + " | ".join(FLOW_LABELS[n] for n in FLOW_NAMES) + " | GD step |",
        "|---:|" + "---:|" * (len(FLOW_NAMES) + 1),
    ]
    cost = results["flow_cost"]
    for row in cost["rows"]:
        cells = [_seconds(row["flows"][n]["median_s"]) for n in FLOW_NAMES]
        cells.append(_seconds(1.0 / row["gd"]["steps_per_second"]))
        lines.append(f"| {row['d']} | " + " | ".join(cells) + " |")
    if cost["exponents"]:
        a, b = cost["rows"][-2]["d"], cost["rows"][-1]["d"]
        cells = [f"{cost['exponents'][n]:.2f}" for n in [*FLOW_NAMES, "GD"]]
        lines.append(f"| slope {a}→{b} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "### GD steps per second",
        "",
        "| $d$ | steps per call | steps per second | first call (with compilation) |",
        "|---:|---:|---:|---:|",
    ]
    for row in cost["rows"]:
        g = row["gd"]
        lines.append(f"| {row['d']} | {g['steps']} | {g['steps_per_second']:,.0f} | {_seconds(g['first_call_s'])} |")
    sol = results["solver_steps"]
    lines += [
        "",
        f"### Solver steps on one problem ($d = {sol['d']}$, {sol['gd_steps']} GD steps, "
        f"$h\\lambda_{{\\max}}(\\theta_0) = {SOLVER_HLAM:g}$)",
        "",
        "| flow | accepted | rejected | vector-field evaluations | solve, warm | first call | "
        "max $\\lVert\\theta(t_n) - \\theta_n\\rVert_\\infty$ |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in FLOW_NAMES:
        f = sol["flows"][name]
        lines.append(
            f"| {FLOW_LABELS[name]} | {f['accepted_steps']} | {f['rejected_steps']} | {f['vector_field_evaluations']} "
            f"| {_seconds(f['median_s'])} | {_seconds(f['first_call_s'])} | {f['max_distance_to_gd']:.2e} |"
        )
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
    args = parse_args(
        argv,
        description="Run the benchmarks shown in the book.",
        quick="fewer sizes and repeats (for CI); the Euler reference still runs all 525,000 steps",
    )
    build = args.build_dir.resolve()
    mode = "quick" if args.quick else "full"
    cfg = SETTINGS[mode]
    start = time.perf_counter()
    machine = _machine()
    progress(f"mode {mode}, build dir {build}, {machine['logical_cores']} cores, {machine['cpu']}")

    f2 = bench_f2(cfg)
    cost = bench_flow_cost(cfg)
    solver = bench_solver_steps(cfg)

    machine["load_average_1min_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    parameters = {
        "mode": mode,
        "settings": cfg,
        "f2": F2,
        "min_repeat_seconds": MIN_REPEAT_SECONDS,
        "slow_seconds": SLOW_SECONDS,
        "samples": SAMPLES,
        "ridge": RIDGE,
        "solver_h_lambda_max": SOLVER_HLAM,
    }
    results = {
        "mode": mode,
        "settings": cfg,
        "machine": machine,
        "f2": f2,
        "flow_cost": cost,
        "solver_steps": solver,
        "provenance": provenance(
            parameters,
            seconds=time.perf_counter() - start,
        ),
    }

    page = write_results(build, "results", results, markdown(results))
    fig = figure(results)
    paths = save_figure(fig, "benchmark_flow_cost", build)
    plt.close(fig)
    progress(f"wrote {page}, results.json, {', '.join(str(p) for p in paths)}")
    progress(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
