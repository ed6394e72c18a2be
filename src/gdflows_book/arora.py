r"""The drift study of F12 and F13: normalized GD and GD on :math:`\sqrt{E - E_*}` against their limiting flows.

For one algorithm, each problem of :mod:`gdflows.problems` with a manifold of minimisers and each step
:math:`\eta`, :func:`drift_run` runs the algorithm for an approach phase of :math:`n_0 = \lceil
\text{approach}/\eta\rceil` steps (rounded up to the measuring stride) and then :math:`\tau/\eta^2`
more; it projects the iterates at evenly spaced steps onto :math:`\Gamma` with :math:`\Phi`
(:func:`gdflows.flows.project_to_manifold`) and integrates the limiting flow from
:math:`\Phi(\theta_{n_0})`. The flow does not depend on :math:`\eta` once read in :math:`\tau`, so it
is built with the step :math:`\sqrt{\Delta\tau}` (:math:`\Delta\tau` the spacing of the measured
points): its save times are then :math:`\tau = \Delta\tau\,k` (see :mod:`gdflows.flows.manifold`).
F12 and F13 call :func:`drift_study`, :func:`plot_drift` and :func:`check_drift` with their algorithm.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import gdflows as gf
import gdflows.problems as gp
from gdflows.flows import normalized_gd_flow, project_to_manifold, sqrt_loss_flow


class Algorithm(NamedTuple):
    """A GD variant with its limiting flow and its edge-of-stability threshold."""

    label: str  # for titles
    run: Callable  # gdflows.normalized_gd or gdflows.sqrt_loss_gd
    flow: Callable  # its limiting flow's factory
    threshold: Callable  # (eta, E - E_*, ||grad E||) -> the sharpness at which the step is marginally stable
    threshold_label: str  # the threshold in TeX


ALGORITHMS = {
    "normalized": Algorithm(
        "normalized GD", gf.normalized_gd, normalized_gd_flow, lambda eta, gap, g: 2 * g / eta, r"$2\|\nabla E\|/\eta$"
    ),
    "sqrt": Algorithm(
        "GD on √E", gf.sqrt_loss_gd, sqrt_loss_flow, lambda eta, gap, g: 4 * np.sqrt(gap) / eta, r"$4\sqrt{E}/\eta$"
    ),
}

PROBLEMS = {"valley": gp.valley_2d, "factorisation": gp.scalar_factorisation, "network": gp.diagonal_network}


@functools.cache
def problem(name: str) -> gp.ManifoldProblem:
    r"""The problem ``name`` (a key of :data:`PROBLEMS`), built once: the same loss function on every call, so that
    the compiled runs, projections and flows are reused across steps :math:`\eta`."""
    return PROBLEMS[name]()


class DriftRun(NamedTuple):
    """One algorithm at one :math:`\\eta` on one problem, measured at evenly spaced steps after the approach."""

    problem: str  # key of PROBLEMS
    eta: float  # the step
    approach_steps: int  # n_0
    loss: np.ndarray  # (N+1,) E - E_* at every step
    steps: np.ndarray  # (K,) the measured steps n_0, n_0 + s, ..., N
    tau: np.ndarray  # (K,) eta^2 (n - n_0)
    sharpness: np.ndarray  # (K,) lambda_1 at the iterates theta_n
    threshold: np.ndarray  # (K,) the EoS threshold, averaged over theta_n and theta_{n+1} (the 2-cycle)
    projected: np.ndarray  # (K, d) Phi(theta_n)
    projected_sharpness: np.ndarray  # (K,) lambda_1 there
    flow: np.ndarray  # (K, d) the limiting flow X(tau) from Phi(theta_{n_0})
    flow_sharpness: np.ndarray  # (K,) lambda_1 along the flow
    flow_residual: float  # max E(X) - E_* along the flow: how far off Gamma it strayed
    distance: np.ndarray  # (K,) ||Phi(theta_n) - X(tau)||
    drift: float  # ||X(tau_end) - X(0)||, how far the flow moved
    error: float  # max distance / drift
    seconds: float  # wall time of this run


def drift_run(name: str, algorithm: str, eta: float, *, tau: float, approach: float, points: int) -> DriftRun:
    """Run ``algorithm`` (a key of :data:`ALGORITHMS`) at step ``eta`` on the problem ``name`` (a key of
    :data:`PROBLEMS`)."""
    import time

    started = time.perf_counter()
    spec, algo = problem(name), ALGORITHMS[algorithm]
    stride = 2 * max(1, round(tau / eta**2 / (points - 1) / 2))  # even: the same phase of the 2-cycle
    n0 = stride * math.ceil(approach / eta / stride)
    total = n0 + stride * (points - 1)
    run = algo.run(spec.loss, jnp.asarray(spec.start), lr=eta, steps=total, sharpness_every=stride)
    first = n0 // stride
    thetas = run.theta[first:]
    steps = run.tracked_steps[first:]
    grad = jax.vmap(jax.grad(spec.loss))
    following = np.stack([algo.run(spec.loss, jnp.asarray(t), lr=eta, steps=1).theta[1] for t in thetas])
    thresholds = [
        algo.threshold(eta, np.asarray(jax.vmap(spec.loss)(x)) - spec.loss_min, np.linalg.norm(grad(x), axis=1))
        for x in (jnp.asarray(thetas), jnp.asarray(following))
    ]
    projected = np.stack(
        [np.asarray(project_to_manifold(spec.loss, jnp.asarray(t), codim=spec.codim).theta) for t in thetas]
    )
    dtau = eta**2 * stride
    flow = algo.flow(spec.loss, lr=math.sqrt(dtau), codim=spec.codim)
    sol = gf.solve(
        flow, jnp.asarray(projected[0]), steps=points - 1, rtol=1e-8, atol=1e-10, solver="tsit5", max_steps=5000
    )
    if sol.diverged:  # e.g. where lambda_1 meets lambda_2 and stops being differentiable
        top = np.linalg.eigvalsh(np.asarray(gf.hessian(spec.loss, jnp.asarray(sol.theta[-1]))))[-2:]
        raise RuntimeError(
            f"{algo.label} on {name} at eta={eta}: the limiting flow stopped at tau = "
            f"{sol.times[-1] * math.sqrt(dtau):.3g} of {tau} ({sol.stop_reason}); the top two eigenvalues there "
            f"are {top}. Shorten tau."
        )
    distance = np.linalg.norm(projected - sol.theta, axis=1)
    drift = float(np.linalg.norm(sol.theta[-1] - sol.theta[0]))
    lam = jax.vmap(spec.sharpness)
    return DriftRun(
        name,
        eta,
        n0,
        run.loss - spec.loss_min,
        steps,
        eta**2 * (steps - n0),
        run.eigenvalues[first:, 0],
        0.5 * (thresholds[0] + thresholds[1]),
        projected,
        np.asarray(lam(jnp.asarray(projected))),
        np.asarray(sol.theta),
        np.asarray(lam(jnp.asarray(sol.theta))),
        float(np.max(sol.loss) - spec.loss_min),
        distance,
        drift,
        float(distance.max() / drift),
        time.perf_counter() - started,
    )


def drift_study(
    algorithm: str, problems: Sequence[str], etas: Sequence[float], *, tau: float, approach: float, points: int
) -> dict:
    """:func:`drift_run` for every problem and step: ``{(problem, eta): DriftRun}``."""
    return {
        (p, eta): drift_run(p, algorithm, eta, tau=tau, approach=approach, points=points)
        for p in problems
        for eta in etas
    }


def constant_gd_motion(name: str, *, lr_fraction: float, steps: int, approach: int) -> float:
    r""":math:`\|\Phi(\theta_N) - \Phi(\theta_{n_0})\|` for GD on :math:`E` with the stable step
    ``lr_fraction`` :math:`\cdot 2/\lambda_1(\theta_0)`: how far plain GD moves along :math:`\Gamma` after
    its approach."""
    spec = problem(name)
    x0 = jnp.asarray(spec.start)
    lr = lr_fraction * 2 / float(gf.sharpness(spec.loss, x0))
    run = gf.gd(spec.loss, x0, lr=lr, steps=steps)
    a, b = (project_to_manifold(spec.loss, jnp.asarray(run.theta[n]), codim=spec.codim).theta for n in (approach, -1))
    return float(jnp.linalg.norm(a - b))


def drift_table(results: dict) -> str:
    """A Markdown table of the runs: problem, eta, steps, approach, drift, relative error, residual, time."""
    lines = [
        "| problem | η | steps | approach steps | flow's drift | max ‖Φ(θₙ) − X(τ)‖ / drift | λ₁ start → end (run) | "
        "λ₁ / threshold | flow's max E | time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (p, eta), r in results.items():
        ratio = np.median(r.sharpness / r.threshold)
        lines.append(
            f"| {p} | {eta} | {int(r.steps[-1])} | {r.approach_steps} | {r.drift:.3g} | {r.error:.3g} | "
            f"{r.projected_sharpness[0]:.4g} → {r.projected_sharpness[-1]:.4g} | {ratio:.3f} | "
            f"{r.flow_residual:.1e} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def plot_drift(results: dict, algorithm: str, problem: str):
    """The figure: (a) the two phases (loss per step), (b) sharpness against the EoS threshold, (c) lambda_1 of
    Phi(theta_n) and of the flow against tau, (d) the distance ||Phi(theta_n) - X(tau)||, (e) the relative error
    against eta for every problem."""
    from gdflows_book.figures import panels

    algo = ALGORITHMS[algorithm]
    runs = {eta: r for (p, eta), r in results.items() if p == problem}
    etas = sorted(runs)
    colors = dict(zip(etas, plt.cm.viridis(np.linspace(0.1, 0.8, len(etas))), strict=True))
    fig, axes = panels(5, aspect=0.75)
    ax = axes[0]
    for eta, r in runs.items():
        ax.semilogy(np.arange(len(r.loss)) * eta**2, np.maximum(r.loss, 1e-300), color=colors[eta], label=f"η = {eta}")
        ax.axvline(r.approach_steps * eta**2, color=colors[eta], linestyle=":", linewidth=1)
    ax.set(title=f"(a) {problem}: approach, then drift", xlabel="τ = η² n", ylabel="E − E*")
    ax.legend(fontsize=8)
    ax = axes[1]
    r = runs[etas[len(etas) // 2]]
    ax.plot(r.tau, r.sharpness, "k.", label="λ₁(θₙ)")
    ax.plot(r.tau, r.threshold, color="tab:red", label=f"{algo.threshold_label} (2-step mean)")
    ax.set(title=f"(b) edge of stability, η = {r.eta}", xlabel="τ after the approach", ylabel="sharpness")
    ax.legend(fontsize=8)
    ax = axes[2]
    for eta, r in runs.items():
        ax.plot(r.tau, r.projected_sharpness, "o", color=colors[eta], markersize=3, label=f"λ₁(Φ(θₙ)), η = {eta}")
    ax.plot(r.tau, r.flow_sharpness, color="tab:red", label="λ₁ of the flow (smallest η's start)")
    ax.set(title="(c) sharpness along Γ", xlabel="τ after the approach", ylabel="λ₁")
    ax.legend(fontsize=7)
    ax = axes[3]
    for eta, r in runs.items():
        ax.semilogy(r.tau[1:], r.distance[1:], color=colors[eta], label=f"η = {eta}")
    ax.set(title="(d) ‖Φ(θₙ) − X(τ)‖", xlabel="τ after the approach", ylabel="distance")
    ax.legend(fontsize=8)
    ax = axes[4]
    for p in dict.fromkeys(q for q, _ in results):
        es = sorted(eta for q, eta in results if q == p)
        ax.loglog(es, [results[p, e].error for e in es], "o-", label=p)
    es = np.array(sorted({eta for _, eta in results}))
    ax.loglog(es, es, "k:", label="slope 1")
    ax.set(title="(e) max distance / drift against η", xlabel="η", ylabel="relative error")
    ax.set_xticks(es, [f"{e:g}" for e in es])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def check_drift(checks, results: dict, gd_motion: dict, *, error_per_eta: float, falling: Sequence[str]) -> None:
    """The claim checks of F12/F13, each over every problem and eta, with the worst case named: lambda_1 decreases
    along the run and along the flow; the drift matches the flow to ``error_per_eta`` times eta (a tolerance that
    shrinks with eta), and on the problems in ``falling`` better at the smallest eta than at the largest; the run
    sits at its EoS threshold; constant-step GD does not move along Gamma."""

    def worst(values: dict) -> tuple:
        key = max(values, key=values.get)
        return values[key], f"{key[0]}, η = {key[1]}"

    value, where = worst({k: r.projected_sharpness[-1] / r.projected_sharpness[0] for k, r in results.items()})
    checks.at_most(f"λ₁(Φ(θₙ)) end / start, worst ({where})", value, 1.0)
    value, where = worst({k: float(np.max(np.diff(r.flow_sharpness))) for k, r in results.items()})
    checks.at_most(f"largest rise of the flow's λ₁ between saves ({where})", value, 1e-9)
    value, where = worst({k: r.error / (error_per_eta * k[1]) for k, r in results.items()})
    checks.at_most(f"max ‖Φ(θₙ) − X(τ)‖ / drift, over {error_per_eta} η, worst ({where})", value, 1.0)
    value, where = worst({k: abs(float(np.median(r.sharpness / r.threshold)) - 1) for k, r in results.items()})
    checks.at_most(f"|median λ₁ / EoS threshold − 1|, worst ({where})", value, 0.05)
    for p in dict.fromkeys(q for q, _ in results if q in falling):
        es = sorted(eta for q, eta in results if q == p)
        checks.that(
            f"{p}: the error falls with η (η = {es[-1]} → {es[0]})",
            results[p, es[0]].error < results[p, es[-1]].error,
            measured=f"{results[p, es[-1]].error:.3g} → {results[p, es[0]].error:.3g}",
            requirement="smaller at the smallest η",
        )
    ratios = {p: motion / drift for p, (motion, drift) in gd_motion.items()}
    where = max(ratios, key=ratios.get)
    checks.at_most(f"constant-step GD's motion along Γ / the flow's drift, worst ({where})", ratios[where], 1e-6)


#: The limiting flow of each algorithm, as the paper states it (for the claims ledger).
FLOW_TEXT = {"normalized": "dX/dτ = −¼ P_T ∇log λ₁", "sqrt": "dX/dτ = −⅛ P_T ∇λ₁"}


def state_paper_claims(checks, algorithm: str, *, problems: Sequence[str], falling: Sequence[str]) -> None:
    """The claims of Arora, Li & Panigrahi (2022) that F12/F13 test, with the verdicts of :func:`check_drift`'s
    checks (call it after them): the edge of stability is reproduced; the drift along Γ is reproduced where the
    error is asserted to fall with η on every problem run, and in part where only the problems in ``falling``."""
    name, source = ALGORITHMS[algorithm].label, "Arora, Li & Panigrahi 2022, ICML"
    everywhere = set(problems) <= set(falling)
    checks.paper_claim(
        f"{name} enters the edge of stability: λ₁ settles at its threshold",
        source=source,
        verdict="reproduced",
        rests_on="EoS threshold",
    )
    checks.paper_claim(
        f"After reaching the minimisers, {name} drifts along them following the flow {FLOW_TEXT[algorithm]} in "
        "τ = η²n (the limit η → 0), which decreases λ₁",
        source=source,
        verdict="reproduced" if everywhere else "reproduced in part",
        rests_on=("λ₁(Φ(θₙ)) end / start", "rise of the flow's λ₁", "max ‖Φ(θₙ) − X(τ)‖", "the error falls with η"),
        note=(
            "λ₁ decreases and the drift matches the flow to a tolerance of 0.5 η at every η measured, and the error "
            f"falls from the largest η to the smallest on {', '.join(falling) or 'no problem'}"
            + (
                "."
                if everywhere
                else "; elsewhere it depends on the phase of GD's 2-cycle and does not shrink steadily, so the limit "
                "is not demonstrated there."
            )
        ),
    )
