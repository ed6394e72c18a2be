r"""What the drift-adjusted learning rate (DAL) costs per step, against plain GD.

Usage::

    python benchmarks/dal.py [--quick] [--build-dir build]

Writes ``<build>/benchmarks/dal.json`` (every number, with provenance) and
``<build>/benchmarks/dal.md`` (the table the book includes on its DAL benchmark page).

One full-batch training step on the digits MLP of F6 and F8 (tanh, mean-squared error, 1,000
training examples), for several hidden widths, three ways:

* **GD**: one gradient, ``optax.sgd``;
* **DAL, exact** :math:`Hg`: one gradient and one Hessian-vector product (``jvp`` of the
  gradient), ``gdflows.optim.dal(hvp="exact")``;
* **DAL, finite difference**: two gradients, ``gdflows.optim.dal(hvp="finite_difference")``.

Each is compiled as one ``lax.scan`` over ``STEPS`` steps; a timed repeat is one call of that
loop, the time per step its wall time over ``STEPS``. The tables give the median over repeats
(the JSON also the minimum and maximum) and the first call (tracing, compilation and one run)
separately. Float64, as everywhere in gdflows.
"""

from __future__ import annotations

import os
import time

import jax
import optax

from gdflows.optim import dal
from gdflows_book.benchmarks import parse_args, write_results
from gdflows_book.provenance import provenance
from gdflows_book.setups import digits_network
from gdflows_book.timing import progress_printer, timed

jax.config.update("jax_enable_x64", True)  # float64: the flows are compared with GD to 1e-8 and tighter

SETTINGS = {
    "full": {"widths": [16, 64, 128], "steps": 200, "repeats": 7},
    "quick": {"widths": [16, 64], "steps": 50, "repeats": 3},
}
N_TRAIN = 1000
METHODS = {
    "GD": lambda: optax.with_extra_args_support(optax.sgd(0.1)),
    "DAL, exact Hg": lambda: dal(p=1.0, hvp="exact"),
    "DAL, finite difference": lambda: dal(p=1.0, hvp="finite_difference"),
}


progress = progress_printer("benchmarks/dal")


def training_loop(loss, tx, steps: int):
    """``theta0 -> theta_steps``: ``steps`` optimiser steps as one compiled loop."""

    def step(carry, _):
        theta, state = carry
        updates, state = tx.update(jax.grad(loss)(theta), state, theta, value_fn=loss)
        return (optax.apply_updates(theta, updates), state), None

    return jax.jit(lambda theta0: jax.lax.scan(step, (theta0, tx.init(theta0)), None, length=steps)[0][0])


def markdown(results: dict) -> str:
    settings = results["settings"]
    load_before, load_after = results["load_average"]
    lines = [
        f"Full-batch steps on the digits MLP 64→w→w→10 (tanh, MSE, {N_TRAIN} examples), float64, "
        f"{settings['steps']} steps per timed loop, median of {settings['repeats']} repeats "
        f"({results['mode']} mode). Machine: {results['provenance']['machine']}, {os.cpu_count()} cores, "
        f"load average {load_before:.2f} at the start and {load_after:.2f} at the end.",
        "",
        "| width w | parameters | GD (ms/step) | DAL, exact Hg (ms/step) | × GD | "
        "DAL, finite difference (ms/step) | × GD | first call GD / exact / FD (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        t = {name: row["methods"][name] for name in METHODS}
        ms = {name: 1e3 * t[name]["median_s"] / settings["steps"] for name in METHODS}
        first = " / ".join(f"{t[name]['first_call_s']:.2f}" for name in METHODS)
        lines.append(
            f"| {row['width']} | {row['parameters']:,} | {ms['GD']:.3g} | {ms['DAL, exact Hg']:.3g} | "
            f"{row['overhead']['DAL, exact Hg']:.2f} | {ms['DAL, finite difference']:.3g} | "
            f"{row['overhead']['DAL, finite difference']:.2f} | {first} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(
        argv, description="Time DAL's steps against GD's.", quick="fewer widths, steps and repeats (for CI)"
    )
    mode = "quick" if args.quick else "full"
    settings = SETTINGS[mode]
    started = time.perf_counter()
    load_before = os.getloadavg()[0]

    rows = []
    for width in settings["widths"]:
        net = digits_network(N_TRAIN, [width, width]).net
        row = {"width": width, "parameters": net.size, "methods": {}}
        for name, factory in METHODS.items():
            loop = training_loop(net.loss, factory(), settings["steps"])
            row["methods"][name] = timed(lambda loop=loop, net=net: loop(net.theta0), settings["repeats"])[1]
            per_step = 1e3 * row["methods"][name]["median_s"] / settings["steps"]
            progress(f"w = {width} ({net.size} parameters), {name}: {per_step:.3g} ms/step")
        gd = row["methods"]["GD"]["median_s"]
        row["overhead"] = {name: row["methods"][name]["median_s"] / gd for name in METHODS if name != "GD"}
        rows.append(row)

    results = {
        "mode": mode,
        "settings": settings,
        "rows": rows,
        "load_average": [load_before, os.getloadavg()[0]],
    }
    results["provenance"] = provenance(
        {"mode": mode, **settings, "n_train": N_TRAIN, "methods": list(METHODS)},
        seconds=time.perf_counter() - started,
    )
    path = write_results(args.build_dir, "dal", results, markdown(results))
    progress(f"wrote {path} and dal.json in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
