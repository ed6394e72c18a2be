r"""Central flow and rod flow on the example of the released central-flow code (central_flows_jax).

Usage::

    python benchmarks/central_flow.py [--quick] [--build-dir build]

The problem: an MLP Linear(8, 16) - swish - Linear(16, 16) - swish - Linear(16, 1) (433 parameters)
built with flax.nnx from ``nnx.Rngs(0)``, data drawn first (``x = rngs.normal((128, 8))``,
``y = rngs.normal((128,))``), loss ``mean((f(x) - y)^2)``, GD with ``lr = 0.1`` for 1,000 steps
(``--quick``: 300 steps, before the sharpness reaches 2/h, so only the cost is comparable).
Writes ``<build>/benchmarks/central_flow.{md,json}``.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.flatten_util import ravel_pytree

import gdflows as gf
from gdflows_book.benchmarks import parse_args, write_results
from gdflows_book.provenance import provenance
from gdflows_book.timing import timed

jax.config.update("jax_enable_x64", True)  # float64: the flows are compared with GD to 1e-8 and tighter

PUBLISHED = {"central_seconds": 64.6, "gd_tracking_seconds": 11.1, "final_loss": 0.0627, "sharpness_lr": 2.000}
PUBLISHED |= {"distance_central_gd": 0.077, "distance_gradient_flow_gd": 1.99}


def problem():
    rngs = nnx.Rngs(0)
    x = rngs.normal((128, 8))
    y = rngs.normal((128,))
    model = nnx.Sequential(
        nnx.Linear(8, 16, rngs=rngs), nnx.swish, nnx.Linear(16, 16, rngs=rngs), nnx.swish, nnx.Linear(16, 1, rngs=rngs)
    )
    p0, unravel = ravel_pytree(model)
    x, y = x.astype(jnp.float64), y.astype(jnp.float64)

    def loss(p):
        return jnp.mean((unravel(p)(x)[:, 0] - y) ** 2)

    return loss, p0.astype(jnp.float64)


def seconds(timings: dict) -> dict:
    """The first call (with compilation) and a second, warm call, in the keys the report reads."""
    return {"first_seconds": timings["first_call_s"], "seconds": timings["median_s"]}


def main(argv=None):
    args = parse_args(argv, description=__doc__.splitlines()[0], quick="300 steps instead of 1,000")
    steps, h = (300 if args.quick else 1000), 0.1
    loss, p0 = problem()
    results = {"steps": steps, "lr": h, "parameters": int(p0.size), "quick": args.quick}

    gd, timings = timed(lambda: gf.gd(loss, p0, lr=h, steps=steps + 1), 1)
    centre = 0.5 * (gd.theta[steps] + gd.theta[steps + 1])
    results["gd"] = {
        **seconds(timings),
        "final_loss": float(gd.loss[steps]),
        "sharpness_lr": float(gf.sharpness(loss, jnp.asarray(gd.theta[steps])) * h),
        "gradients": steps,
    }

    central, timings = timed(
        lambda: gf.central_flow_run(loss, p0, lr=h, steps=steps, substeps=4, k=2, tracked=5, spectrum="iterative"), 1
    )
    final_info = gf.central_diagnostics(loss, central.theta[-1:], lr=h, k=2, tracked=5, spectrum="iterative")
    results["central"] = {
        **seconds(timings),
        "final_loss": float(central.loss[-1]),
        "predicted_loss": float(final_info.predicted_loss[0]),
        "sharpness_lr": float(final_info.eigenvalues[0, 0] * h),
        "distance_gd": float(np.linalg.norm(central.theta[-1] - gd.theta[steps])),
        "distance_gd_centre": float(np.linalg.norm(central.theta[-1] - centre)),
        "hvps": central.hvps,
        "third_derivative_products": central.third_derivative_products,
        "gradients": central.gradients,
        "max_sharpness_lr": float(np.max(np.asarray(central.diagnostics.eigenvalues[:, 0])) * h),
    }

    for name, flow, per_evaluation in (
        ("rod", gf.rod_flow(loss, lr=h), 2),
        ("gradient_flow", gf.gradient_flow(loss, lr=h), 1),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run, timings = timed(lambda flow=flow: gf.solve(flow, p0, steps=steps, rtol=1e-8, atol=1e-10), 1)
        evaluations = run.stats.vector_field_evaluations
        results[name] = {
            **seconds(timings),
            "final_loss": float(run.loss[-1]),
            "sharpness_lr": float(gf.sharpness(loss, jnp.asarray(run.theta[-1])) * h),
            "distance_gd": float(np.linalg.norm(run.theta[-1] - gd.theta[steps])),
            "distance_gd_centre": float(np.linalg.norm(run.theta[-1] - centre)),
            "vector_field_evaluations": evaluations,
            "gradients": per_evaluation * evaluations,
            "distance_central": float(np.linalg.norm(run.theta[-1] - central.theta[-1])),
        }

    payload = {
        "results": results,
        "published": PUBLISHED,
        "provenance": provenance({"steps": steps, "quick": args.quick}),
    }
    text = report(results, steps, h, args.quick)
    write_results(args.build_dir, "central_flow", payload, text)
    print(text)


def report(results, steps, h, quick):
    """The benchmark's markdown: the comparison with the published numbers, then the cost per GD step."""
    c, r, g, d = results["central"], results["rod"], results["gradient_flow"], results["gd"]
    rows = (
        ("central flow (ours, Euler ×4, k = 2 of 5 tracked)", c),
        ("rod flow (ours, adaptive)", r),
        ("gradient flow (ours, adaptive)", g),
        ("GD (float64)", d),
    )
    lines = [
        f"{steps} GD steps at h = {h} ({'quick mode: fewer than the published 1,000' if quick else 'as published'}).",
        "",
        "| | time (s), first call / warm | final loss | sharpness · h | ‖θ − θ_GD‖ | ‖θ − GD centre‖ |",
        "|---|---|---|---|---|---|",
        f"| published central flow (float32, cvxpy) | {PUBLISHED['central_seconds']} | {PUBLISHED['final_loss']} | "
        f"{PUBLISHED['sharpness_lr']:.3f} | {PUBLISHED['distance_central_gd']} | |",
    ]
    for name, x in rows:
        gap = x.get("distance_gd", 0.0)
        to_centre = f"{x['distance_gd_centre']:.3f}" if "distance_gd_centre" in x else ""
        lines.append(
            f"| {name} | {x['first_seconds']:.1f} / {x['seconds']:.2f} | {x['final_loss']:.4f} | "
            f"{x['sharpness_lr']:.3f} | {gap:.3f} | {to_centre} |"
        )
    lines += [
        "",
        f"Central flow predicted time-averaged loss E + tr Σ/h: {c['predicted_loss']:.4f}. Distance between the rod "
        f"flow and our central flow at the end: {r['distance_central']:.3f}; gradient flow to our central flow: "
        f"{g['distance_central']:.3f}.",
        "",
        "**Cost per GD step** (warm wall time, compilation excluded):",
        "",
        "| | gradients | Hessian-vector products | third-derivative products | wall time (ms) | × GD |",
        "|---|---|---|---|---|---|",
    ]
    for name, x in rows:
        hvps, third = x.get("hvps", 0), x.get("third_derivative_products", 0)
        lines.append(
            f"| {name} | {x['gradients'] / steps:.1f} | {hvps / steps:.1f} | {third / steps:.1f} | "
            f"{1e3 * x['seconds'] / steps:.3f} | {x['seconds'] / d['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
