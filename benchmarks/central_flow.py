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

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import gdflows as gf  # noqa: E402
from gdflows.provenance import provenance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 steps instead of 1,000")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    args = parser.parse_args(argv)
    steps, h = (300 if args.quick else 1000), 0.1
    loss, p0 = problem()
    results = {"steps": steps, "lr": h, "parameters": int(p0.size), "quick": args.quick}

    start = time.perf_counter()
    gd = gf.gd(loss, p0, lr=h, steps=steps + 1)
    results["gd_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    central = gf.central_flow_run(loss, p0, lr=h, steps=steps, substeps=4, k=2, tracked=5, spectrum="iterative")
    results["central_seconds"] = time.perf_counter() - start
    info = central.info["central"]
    final_info = gf.central_diagnostics(loss, central.theta[-1:], lr=h, k=2, tracked=5, spectrum="iterative")
    results["central"] = {
        "final_loss": float(central.loss[-1]),
        "predicted_loss": float(final_info.predicted_loss[0]),
        "sharpness_lr": float(final_info.eigenvalues[0, 0] * h),
        "distance_gd": float(np.linalg.norm(central.theta[-1] - gd.theta[steps])),
        "distance_gd_centre": float(np.linalg.norm(central.theta[-1] - 0.5 * (gd.theta[steps] + gd.theta[steps + 1]))),
        "hvps": central.info["hvps"],
        "third_derivative_products": central.info["third_derivative_products"],
        "gradients": central.info["gradients"],
        "max_sharpness_lr": float(np.max(np.asarray(info.eigenvalues[:, 0])) * h),
    }

    for name, flow in (("rod", gf.rod_flow(loss, lr=h)), ("gradient_flow", gf.gradient_flow(loss))):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = gf.solve(flow, p0, lr=h, steps=steps, rtol=1e-8, atol=1e-10)
        seconds = time.perf_counter() - start
        reference = 0.5 * (gd.theta[steps] + gd.theta[steps + 1]) if name == "rod" else gd.theta[steps]
        results[name] = {
            "seconds": seconds,
            "final_loss": float(run.loss[-1]),
            "sharpness_lr": float(gf.sharpness(loss, jnp.asarray(run.theta[-1])) * h),
            "distance_gd": float(np.linalg.norm(run.theta[-1] - gd.theta[steps])),
            "distance_gd_centre": float(np.linalg.norm(run.theta[-1] - reference)),
            "vector_field_evaluations": run.info["stats"].vector_field_evaluations,
            "distance_central": float(np.linalg.norm(run.theta[-1] - central.theta[-1])),
        }
    results["gd"] = {
        "final_loss": float(gd.loss[steps]),
        "sharpness_lr": float(gf.sharpness(loss, jnp.asarray(gd.theta[steps])) * h),
    }

    out = args.build_dir / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "results": results,
        "published": PUBLISHED,
        "provenance": provenance({"steps": steps, "quick": args.quick}),
    }
    (out / "central_flow.json").write_text(json.dumps(payload, indent=1, default=str))
    c, r, g = results["central"], results["rod"], results["gradient_flow"]
    lines = [
        f"{steps} GD steps at h = {h} "
        f"({'quick mode: fewer steps than the published 1,000' if args.quick else 'as published'}).",
        "",
        "| | time (s) | final loss | sharpness · h | ‖θ − θ_GD‖ | ‖θ − GD centre‖ |",
        "|---|---|---|---|---|---|",
        f"| published central flow (float32, cvxpy) | {PUBLISHED['central_seconds']} | {PUBLISHED['final_loss']} | "
        f"{PUBLISHED['sharpness_lr']:.3f} | {PUBLISHED['distance_central_gd']} | |",
        f"| central flow (ours, Euler ×4, k = 2 of 5 tracked) | {results['central_seconds']:.1f} | "
        f"{c['final_loss']:.4f} | "
        f"{c['sharpness_lr']:.3f} | {c['distance_gd']:.3f} | {c['distance_gd_centre']:.3f} |",
        f"| rod flow (ours, adaptive) | {r['seconds']:.1f} | {r['final_loss']:.4f} | {r['sharpness_lr']:.3f} | "
        f"{r['distance_gd']:.3f} | {r['distance_gd_centre']:.3f} |",
        f"| gradient flow (ours, adaptive) | {g['seconds']:.1f} | {g['final_loss']:.4f} | {g['sharpness_lr']:.3f} | "
        f"{g['distance_gd']:.3f} | |",
        f"| GD (float64) | {results['gd_seconds']:.1f} | {results['gd']['final_loss']:.4f} | "
        f"{results['gd']['sharpness_lr']:.3f} | 0 | |",
        "",
        f"Central flow predicted time-averaged loss E + tr Σ/h: {c['predicted_loss']:.4f}. Costs: central flow "
        f"{c['hvps']} Hessian-vector products, {c['third_derivative_products']} third-derivative products, "
        f"{c['gradients']} gradients; rod flow {r['vector_field_evaluations']} field evaluations (2 gradients each). "
        "Times include compilation. Distance between the rod flow and our central flow at the end: "
        f"{r['distance_central']:.3f}; gradient flow to our central flow: {g['distance_central']:.3f}.",
    ]
    (out / "central_flow.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
