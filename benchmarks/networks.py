r"""The principal flow at scale: Krylov against dense, cost against network size, GD with sharpness tracking.

Usage::

    python benchmarks/networks.py [--quick] [--build-dir build]

Writes ``<build>/benchmarks/networks.json`` (every number, with provenance),
``<build>/benchmarks/networks.md`` (the tables the book includes on its networks benchmark page)
and the figure ``<build>/figures/benchmark_networks.{png,pdf}``.

Three measurements, all on tanh MLPs :math:`64\to w\to w\to10` with the mean-squared error on
1,000 standardised digits, float64:

1. **Krylov error against the Krylov dimension** :math:`m`. At a GD checkpoint (the :math:`w = 16`
   network, 1,482 parameters, after 300 GD steps at :math:`h = 0.4`, where :math:`h\lambda_{\max}`
   is about 1.5: the singularity of :math:`c` at :math:`h\lambda = 1` lies inside the spectrum), the PF vector field
   :math:`c(hH)\nabla E` by ``principal_flow(..., spectrum="krylov", krylov_dim=m)`` against the
   dense one (``eigh``/``eig`` of the full Hessian), relative error, real-part and complex-space PF.
2. **Cost of one PF evaluation against the number of parameters** :math:`d`, from about 100
   to over 100,000: dense (full Hessian from Hessian-vector products, then its
   eigendecomposition; only while :math:`d` is a few thousand) and Krylov (:math:`m = 32`).
3. **GD steps per second**, plain (:func:`gdflows.gd_scan`) and with the top Hessian eigenvalue
   tracked every 10 steps inside the same compiled loop (:func:`gdflows.gd_with_sharpness`,
   20 Lanczos steps).

Timings are medians over repeats of a compiled, warmed-up call; the first call (tracing and
compilation) is stored separately in the JSON, with the minimum and maximum over repeats.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import gdflows as gf
from gdflows._gd import _gd_sharpness_jit, gd_scan
from gdflows_book.benchmarks import parse_args, write_results
from gdflows_book.figures import save_figure, use_style
from gdflows_book.provenance import provenance
from gdflows_book.setups import digits_network
from gdflows_book.timing import progress_printer, timed

jax.config.update("jax_enable_x64", True)  # float64: the flows are compared with GD to 1e-8 and tighter

SETTINGS = {
    "full": {
        "krylov_dims": [4, 8, 16, 32, 64, 128, 256],
        "widths": [2, 8, 32, 128, 290],
        "dense_max_parameters": 4000,
        "gd_steps": 100,
        "repeats": 3,
    },
    "quick": {
        "krylov_dims": [4, 16, 64],
        "widths": [2, 8, 32],
        "dense_max_parameters": 800,
        "gd_steps": 20,
        "repeats": 2,
    },
}
N_TRAIN = 1000
LR = 0.4  # the F6/F7 learning rate: 2/h = 5
CHECKPOINT = 300  # GD steps before the Krylov-error measurement
KRYLOV_COST_DIM = 32
TRACK_EVERY, TRACK_DIM = 10, 20


progress = progress_printer("benchmarks/networks")


def network(width: int):
    """The F6 network with two hidden layers of ``width`` on ``N_TRAIN`` digits, as a flat loss."""
    return digits_network(N_TRAIN, [width, width]).net


def relative(a, b) -> float:
    a = jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(a)])
    b = jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(b)])
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def krylov_error(dims: list[int]) -> dict:
    net = network(16)
    run = gf.gd(net.loss, net.theta0, lr=LR, steps=CHECKPOINT)
    theta = jnp.asarray(run.theta[-1])
    sharp = float(gf.sharpness(net.loss, theta))
    out = {"parameters": net.size, "lr": LR, "checkpoint": CHECKPOINT, "h_lambda_max": LR * sharp, "rows": []}
    references = {}
    for space in ("real", "complex"):
        flow = gf.principal_flow(net.loss, lr=LR, space=space, spectrum="dense")  # the reference
        references[space] = jax.jit(flow.vector_field)(0.0, flow.init(theta))
    for m in dims:
        row = {"m": m}
        for space in ("real", "complex"):
            flow = gf.principal_flow(net.loss, lr=LR, space=space, spectrum="krylov", krylov_dim=m)
            row[space] = relative(jax.jit(flow.vector_field)(0.0, flow.init(theta)), references[space])
        out["rows"].append(row)
        progress(f"Krylov error, m = {m}: real {row['real']:.2e}, complex {row['complex']:.2e}")
    return out


def measure(width: int, dense_max: int, gd_steps: int, repeats: int) -> dict:
    """One network size: a Krylov (and, if small enough, a dense) PF evaluation; GD with and without tracking."""
    net = network(width)
    loss, theta = net.loss, net.theta0
    row = {"width": width, "parameters": net.size}
    krylov = gf.principal_flow(loss, lr=LR, space="real", spectrum="krylov", krylov_dim=KRYLOV_COST_DIM)
    krylov_field = jax.jit(krylov.vector_field)
    row["krylov"] = timed(lambda: krylov_field(0.0, theta), repeats)[1]
    if net.size <= dense_max:
        dense_field = jax.jit(gf.principal_flow(loss, lr=LR, space="real").vector_field)
        row["dense"] = timed(lambda: dense_field(0.0, theta), max(1, repeats - 1))[1]
    plain = jax.jit(gd_scan, static_argnums=(0, 3))
    row["gd"] = timed(lambda: plain(loss, theta, LR, gd_steps).loss, repeats)[1]
    row["gd_tracked"] = timed(
        lambda: _gd_sharpness_jit(loss, theta, LR, gd_steps, TRACK_EVERY, 1, TRACK_DIM, 0)[0], repeats
    )[1]
    row["gd_steps_per_second"] = gd_steps / row["gd"]["median_s"]
    row["gd_tracked_steps_per_second"] = gd_steps / row["gd_tracked"]["median_s"]
    dense_text = f", dense {row['dense']['median_s']:.3g} s" if "dense" in row else ""
    progress(
        f"d = {net.size}: Krylov PF evaluation {row['krylov']['median_s']:.3g} s{dense_text}; GD "
        f"{row['gd_steps_per_second']:.3g} steps/s, tracked {row['gd_tracked_steps_per_second']:.3g} steps/s"
    )
    return row


def markdown(results: dict) -> str:
    k = results["krylov_error"]
    lines = [
        f"## Krylov against dense: relative error of $c(hH)\\nabla E$ ({k['parameters']:,} parameters, "
        f"$h\\lambda_{{\\max}} = {k['h_lambda_max']:.2f}$)",
        "",
        "| Krylov dimension m | real-part PF | complex-space PF |",
        "|---|---|---|",
    ]
    lines += [f"| {row['m']} | {row['real']:.2e} | {row['complex']:.2e} |" for row in k["rows"]]
    lines += [
        "",
        f"## Cost per PF evaluation and GD throughput ({N_TRAIN:,} examples; Krylov with m = {KRYLOV_COST_DIM})",
        "",
        "| parameters | dense PF (s) | Krylov PF (s) | GD steps/s | GD steps/s, sharpness every 10 steps |",
        "|---|---|---|---|---|",
    ]
    for row in results["cost"]:
        dense = f"{row['dense']['median_s']:.3g}" if "dense" in row else "— (not run)"
        lines.append(
            f"| {row['parameters']:,} | {dense} | {row['krylov']['median_s']:.3g} | "
            f"{row['gd_steps_per_second']:.3g} | {row['gd_tracked_steps_per_second']:.3g} |"
        )
    return "\n".join(lines) + "\n"


def figure(results: dict, build_dir):
    use_style()
    fig, (err_ax, cost_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    rows = results["krylov_error"]["rows"]
    ms = [row["m"] for row in rows]
    err_ax.semilogy(ms, [row["real"] for row in rows], "o-", label="real-part PF")
    err_ax.semilogy(ms, [row["complex"] for row in rows], "s--", label="complex-space PF")
    err_ax.set(xscale="log", xlabel="Krylov dimension m", ylabel="relative error vs dense", title="Krylov vs dense")
    err_ax.legend()
    cost_rows = results["cost"]
    d = [row["parameters"] for row in cost_rows]
    cost_ax.loglog(
        d, [row["krylov"]["median_s"] for row in cost_rows], "o-", label=f"Krylov PF (m = {KRYLOV_COST_DIM})"
    )
    dense = [(row["parameters"], row["dense"]["median_s"]) for row in cost_rows if "dense" in row]
    if dense:
        cost_ax.loglog(*zip(*dense, strict=True), "s--", label="dense PF")
    cost_ax.set(xlabel="parameters d", ylabel="seconds per evaluation", title="cost of one PF evaluation")
    cost_ax.legend()
    fig.tight_layout()
    save_figure(fig, "benchmark_networks", build_dir)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(
        argv,
        description="Benchmark the principal flow on networks.",
        quick="fewer sizes, dimensions and repeats (for CI)",
    )
    mode = "quick" if args.quick else "full"
    settings = SETTINGS[mode]
    started = time.perf_counter()
    results = {"mode": mode, "settings": settings}
    results["krylov_error"] = krylov_error(settings["krylov_dims"])
    results["cost"] = [
        measure(width, settings["dense_max_parameters"], settings["gd_steps"], settings["repeats"])
        for width in settings["widths"]
    ]
    results["provenance"] = provenance(
        {"mode": mode, **settings, "n_train": N_TRAIN, "lr": LR, "krylov_cost_dim": KRYLOV_COST_DIM},
        seconds=time.perf_counter() - started,
    )
    path = write_results(args.build_dir, "networks", results, markdown(results))
    figure(results, args.build_dir)
    progress(f"wrote {path} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
