r"""The central flow of Cohen et al. (2025): the time-averaged path of GD at the edge of stability.

GD at the edge of stability oscillates along the top Hessian eigenvectors while its sharpness
hovers at :math:`2/h`. The central flow models the *centre* of the oscillation, with the
oscillation's covariance :math:`\Sigma` as an implicit variable:

.. math::
    \dot\theta = -\Bigl[\nabla E + \tfrac12\nabla\langle H, \Sigma\rangle\Bigr], \qquad
    \Sigma = U X U^\top \succeq 0,

where :math:`U = (u_1, \dots, u_k)` are the top eigenvectors of :math:`H(\theta)` and the
:math:`k \times k` matrix :math:`X \succeq 0` solves a semidefinite complementarity problem
(SDCP) that keeps every eigenvalue at or below :math:`2/h`. With :math:`G_{ij} = \nabla(u_i^\top H u_j)
= \nabla^3E[u_i, u_j]` (the eigenvectors held fixed) the rate of change of :math:`U^\top H U` along the
flow is :math:`G_{ij}\cdot\dot\theta`, affine in :math:`X`. We ask

.. math::
    Z(X) = \kappa\bigl(\tfrac2h I - \Lambda\bigr) - \tfrac{d}{dt}U^\top H U \succeq 0, \quad
    X \succeq 0, \quad \langle X, Z(X)\rangle = 0,

with :math:`\Lambda = \operatorname{diag}(\lambda_i)`. With :math:`\kappa = 0` this is the paper's
condition "no eigenvalue at :math:`2/h` may grow"; the restoring rate :math:`\kappa > 0` also pulls an
eigenvalue that has drifted above :math:`2/h` back at the rate :math:`\kappa` (while active,
:math:`\dot\lambda = -\kappa(\lambda - 2/h)`), so the sharpness cannot drift over long runs. The
published code linearises the constraint over an Euler substep of length :math:`\Delta t`; that is
exactly this formulation with :math:`\kappa = 1/\Delta t`, discretised by forward Euler
(:func:`central_flow_run` does that; :func:`central_flow` gives the continuous field for
:func:`gdflows.solve`). One unstable direction at :math:`\lambda = 2/h`:
:math:`X = \sigma^2 = 2\langle -\nabla E, \nabla S\rangle/\|\nabla S\|^2` where positive.

**Time.** Our time is :math:`t = nh` (GD step :math:`n` at time :math:`nh`); the paper and its code
count time in steps, :math:`\tau = t/h`, and normalise curvature by :math:`h` (their eigenvalues are
:math:`h\lambda`, their threshold 2, their eigenvectors :math:`\sqrt h\,u`). Their
:math:`X_{\text{paper}}` is our :math:`X/h`, so their predicted loss :math:`E + \operatorname{tr} X_{\text{paper}}`
is our :math:`E + \operatorname{tr}\Sigma/h`.

**Pieces.** The SDCP solver is :func:`gdflows.sdcp.solve_sdcp`, the warm-started eigensolver
:func:`gdflows.spectral.track_eigenpairs` (LOBPCG), the smoothness test
:func:`gdflows.flows.check_smooth`. Their settings reach the flow as two small values,
:class:`EigenOptions` and :class:`SDCPOptions`, given once to :func:`central_flow`,
:func:`central_flow_run` or :func:`central_diagnostics`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gdflows._checks import check_lr, check_number, check_positive_int, check_steps, check_theta0
from gdflows._pytree import flat_problem
from gdflows._results import CentralInfo, CentralRun
from gdflows.errors import EigenTrackingError, SDCPError
from gdflows.flows._base import Flow, flow_factory, precision_checked
from gdflows.flows._loss_checks import check_smooth
from gdflows.sdcp import smat, solve_sdcp, svec, svec_indices
from gdflows.spectral import DENSE_UP_TO, hessian, hvp, relative_residual, third_derivative, track_eigenpairs

# ----------------------------------------------------------------------------- options


def _checked_tol(owner: str, tol) -> float:
    try:
        value = float(tol)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{owner}.tol must be a positive finite number, got tol={tol!r}; pass e.g. {owner}(tol=1e-8).")
    return value


def _checked_max_iter(owner: str, max_iter) -> int:
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise ValueError(
            f"{owner}.max_iter must be a non-negative integer, got max_iter={max_iter!r}; pass e.g. "
            f"{owner}(max_iter=200)."
        )
    return int(max_iter)


@dataclass(frozen=True, kw_only=True)
class EigenOptions:
    r"""How the central flow finds the top Hessian eigenpairs at each evaluation.

    Attributes:
      spectrum: ``"dense"`` (dense Hessian and ``eigh``: small problems, exact; :math:`d`
        Hessian-vector products per evaluation), ``"iterative"``
        (:func:`gdflows.spectral.track_eigenpairs`, LOBPCG on Hessian-vector products,
        warm-started from the previous evaluation's vectors) or ``"auto"`` (the default): dense up
        to ``gdflows.spectral.DENSE_UP_TO`` = 200 parameters, iterative above. (A dense spectrum
        on a network of 1,210 parameters cost 20 s per GD step of :func:`central_flow_run` here.)
      tol: for ``"iterative"``, the relative residual :math:`\|Hu_i - \lambda_i u_i\|/|\lambda_1|`
        the eigenpairs in the SDCP must reach; :func:`central_flow_run` raises
        :class:`~gdflows.EigenTrackingError` where one exceeds ``100 * tol``.
      max_iter: for ``"iterative"``, the LOBPCG iteration cap per evaluation (0: Rayleigh–Ritz on
        the starting vectors only).
    """

    spectrum: Literal["auto", "dense", "iterative"] = "auto"
    tol: float = 1e-8
    max_iter: int = 200

    def __post_init__(self):
        if self.spectrum not in ("auto", "dense", "iterative"):
            raise ValueError(
                f"EigenOptions.spectrum must be 'auto', 'dense' or 'iterative', got spectrum={self.spectrum!r}; "
                "pass EigenOptions(spectrum='iterative') for networks."
            )
        object.__setattr__(self, "tol", _checked_tol("EigenOptions", self.tol))
        object.__setattr__(self, "max_iter", _checked_max_iter("EigenOptions", self.max_iter))


@dataclass(frozen=True, kw_only=True)
class SDCPOptions:
    r"""How the central flow solves its SDCP (:func:`gdflows.sdcp.solve_sdcp`) at each evaluation.

    Attributes:
      tol: the relative KKT residual to reach; :func:`central_flow_run` raises
        :class:`~gdflows.SDCPError` where it is not reached.
      max_iter: the cap on accelerated projected-gradient iterations per SDCP.
    """

    tol: float = 1e-10
    max_iter: int = 5000

    def __post_init__(self):
        object.__setattr__(self, "tol", _checked_tol("SDCPOptions", self.tol))
        object.__setattr__(self, "max_iter", _checked_max_iter("SDCPOptions", self.max_iter))


class _Settings(NamedTuple):
    h: float  # learning rate
    kappa: float  # restoring rate, 1/time
    k: int  # size of the SDCP: the fixed k, or all tracked eigenpairs with k="auto"
    auto: bool  # k="auto": every tracked eigenpair enters the SDCP, which chooses the active ones
    tracked: int  # eigenpairs tracked (>= k); the ones beyond k are watched, not constrained
    eigen: EigenOptions  # how the eigenpairs are found
    sdcp: SDCPOptions  # how the SDCP is solved


#: Eigenpairs tracked with ``k="auto"`` when ``tracked`` is not given.
AUTO_TRACKED = 3


def _settings(lr, k, tracked, restoring, eigen, sdcp) -> _Settings:
    h = check_lr(lr)
    auto = isinstance(k, str) and k == "auto"
    if not auto and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be 'auto' or a positive integer (eigenpairs in the SDCP), got k={k!r}.")
    least = 1 if auto else k
    if tracked is not None and (isinstance(tracked, bool) or not isinstance(tracked, int) or tracked < least):
        raise ValueError(f"tracked must be an integer >= {least} (k = {k!r}), got tracked={tracked!r}.")
    if tracked is None and not auto:
        tracked = k
    if not isinstance(eigen, EigenOptions):
        raise TypeError(
            f"eigen must be an EigenOptions, got {eigen!r}; pass e.g. eigen=EigenOptions(spectrum='iterative')."
        )
    if not isinstance(sdcp, SDCPOptions):
        raise TypeError(f"sdcp must be an SDCPOptions, got {sdcp!r}; pass e.g. sdcp=SDCPOptions(tol=1e-10).")
    restoring = check_number("restoring", restoring, minimum=0.0, strict=False, example="restoring=4.0")
    return _Settings(h, restoring / h, k, auto, tracked, eigen, sdcp)


def _for_dimension(o: _Settings, d: int) -> _Settings:
    """The settings for d parameters: k="auto" without ``tracked`` tracks min(AUTO_TRACKED, d), and its
    SDCP spans every tracked pair; more eigenpairs than parameters is an error; the "auto" spectrum is
    dense up to DENSE_UP_TO parameters and iterative above."""
    tracked = min(AUTO_TRACKED, d) if o.tracked is None else o.tracked
    if tracked > d:
        raise ValueError(
            f"tracked = {tracked} eigenpairs (k = {o.k!r}) cannot be tracked for {d} parameters; "
            f"pass tracked <= {d} and k <= tracked."
        )
    eigen = o.eigen
    if eigen.spectrum == "auto":
        eigen = dataclasses.replace(eigen, spectrum="dense" if d <= DENSE_UP_TO else "iterative")
    return o._replace(tracked=tracked, k=tracked if o.auto else o.k, eigen=eigen)


def _initial_vectors(theta0, tracked, seed=0):
    return jax.random.normal(jax.random.key(seed), (theta0.shape[0], tracked), dtype=theta0.dtype)


# ----------------------------------------------------------------------------- the field


def _top_eigenpairs(loss, theta, vectors, o: _Settings):
    if o.eigen.spectrum == "dense":  # the dense Hessian costs d products and gives H U for free
        H = hessian(loss, theta)
        w, V = jnp.linalg.eigh(H)
        lam, U = w[::-1][: o.tracked], V[:, ::-1][:, : o.tracked]
        U = U * jnp.where(jnp.sum(U * vectors, axis=0) < 0, -1.0, 1.0)  # signs as in the previous vectors
        HU = H @ U
        return lam, U, HU, jnp.asarray(theta.shape[0]), relative_residual(lam, U, HU, o.k)
    matvec = jax.vmap(lambda v: hvp(loss, theta, v), 1, 1)
    return track_eigenpairs(matvec, vectors, tol=o.eigen.tol, max_iter=o.eigen.max_iter, converged=o.k)


def _central_velocity(loss, o: _Settings, theta, vectors, X0):
    value, g = jax.value_and_grad(loss)(theta)
    lam_all, U_all, HU_all, hvps, eig_residual = _top_eigenpairs(loss, theta, vectors, o)
    k = o.k
    lam, U, HU = lam_all[:k], U_all[:, :k], HU_all[:, :k]
    i, j, w = svec_indices(k)
    third = jax.vmap(lambda u, v: third_derivative(loss, theta, u, v))(U.T[i], U.T[j])
    G = third * jnp.asarray(w)[:, None]  # (m, d): rows scaled so that svec(X) . G = sum_ij X_ij grad(u_i H u_j)
    # G @ v is svec(d/dt U^T H U) along v (the rows already carry the svec weights), so smat undoes it exactly
    alpha = o.kappa * jnp.diag(2.0 / o.h - lam) + smat(G @ g, k)
    B = 0.5 * G @ G.T
    X, residual, iterations = solve_sdcp(alpha, B, tol=o.sdcp.tol, max_iter=o.sdcp.max_iter, x0=X0)
    velocity = -g - 0.5 * G.T @ svec(X, k)
    UHU = U.T @ HU
    predicted = value + 0.5 * jnp.sum(0.5 * (UHU + UHU.T) * X)
    x_eigenvalues = jnp.linalg.eigvalsh(X)
    active = jnp.sum(x_eigenvalues > 1e-9 * jnp.maximum(x_eigenvalues[-1], jnp.finfo(X.dtype).tiny))
    info = CentralInfo(lam_all, U_all, X, predicted, residual, iterations, eig_residual, hvps, active)
    return velocity, info


# ----------------------------------------------------------------------------- entry points


@flow_factory
def central_flow(
    loss,
    *,
    lr: float,
    k: int | Literal["auto"] = "auto",
    tracked: int | None = None,
    restoring: float = 4.0,
    eigen: EigenOptions = EigenOptions(),
    sdcp: SDCPOptions = SDCPOptions(),
    check_smoothness: bool = True,
) -> Flow:
    r"""The central flow as a :class:`~gdflows.flows.Flow` for :func:`gdflows.solve`.

    Args:
      loss: the loss :math:`E(\theta)`; it must have third derivatives (no ReLU).
      lr: the learning rate :math:`h` of the GD being modelled.
      args: extra arguments of the loss, ``loss(theta, *args)`` (e.g. a batch), held fixed.
      k: ``"auto"`` (default, as in the published code): every tracked eigenpair enters the SDCP,
        which itself makes the critical ones active (:math:`X \ne 0` on them) and leaves the others
        at :math:`X = 0`; or a fixed number of top eigenpairs, for experiments. Either way
        :math:`k(k+1)/2` third-derivative products per evaluation. A direction outside the SDCP
        is unconstrained: a cut-off below :math:`2/h` changes the flow wherever an eigenvalue
        grows faster than :math:`\kappa(2/h - \lambda)`, so ``"auto"`` uses none.
      tracked: how many top eigenpairs are computed (default: ``k``, or 3 with ``"auto"``, at most
        the number of parameters). With a fixed ``k`` the ones beyond it are watched; with
        ``"auto"`` :func:`central_flow_run` warns when the last tracked one becomes active.
      restoring: the restoring rate :math:`\kappa` in units of :math:`1/h`; 4 is what the published
        code's 4 Euler substeps per GD step amount to, 0 the unstabilised flow.
      eigen: how the eigenpairs are found (:class:`EigenOptions`).
      sdcp: how the SDCP is solved (:class:`SDCPOptions`).
      check_smoothness: refuse a loss with kinks (:func:`~gdflows.flows.check_smooth`, a test on
        its jaxpr) at the first concrete ``init``.

    Cost per evaluation: one gradient, the top ``tracked`` eigenpairs (a dense Hessian, :math:`d`
    Hessian-vector products, and ``eigh`` by default; LOBPCG on Hessian-vector products with
    ``EigenOptions(spectrum="iterative")``), the
    products :math:`HU` and :math:`k(k+1)/2` third-derivative products, and an SDCP solve. An
    adaptive :func:`gdflows.solve` pays this 13 times per Dopri8 step with cold-started
    eigenvectors; on a network use :func:`central_flow_run` (one warm-started evaluation per
    Euler substep), which :func:`gdflows.solve` points to above 300 parameters.

    Returns:
      A :class:`~gdflows.flows.Flow` with state ``(theta, vectors)``; the vectors (``(d, tracked)``)
      are only the eigensolver's starting guess and stay fixed during a ``solve`` (derivative 0).
      :func:`central_flow_run` refreshes them every substep; :func:`central_diagnostics` gives the
      eigenvalues, :math:`X`, the predicted loss and the residuals along a solved trajectory (the
      field cannot raise inside an adaptive solve, so failures are read there).
    """
    o = _settings(lr, k, tracked, restoring, eigen, sdcp)

    def init(theta0):
        if check_smoothness and not isinstance(theta0, jax.core.Tracer):
            check_smooth(loss, theta0)
        return (theta0, _initial_vectors(theta0, _for_dimension(o, theta0.shape[0]).tracked))

    def vector_field(t, state):
        theta, vectors = state
        velocity, _ = _central_velocity(loss, _for_dimension(o, theta.shape[0]), theta, vectors, None)
        return (velocity, jnp.zeros_like(vectors))

    return Flow(
        name="central flow",
        lr=o.h,
        loss=loss,
        init=precision_checked("central flow", init),
        vector_field=vector_field,
        position=lambda s: s[0],
    )


def central_diagnostics(
    loss,
    thetas,
    *,
    lr: float,
    k: int | Literal["auto"] = "auto",
    tracked: int | None = None,
    restoring: float = 4.0,
    eigen: EigenOptions = EigenOptions(tol=1e-10, max_iter=500),
    sdcp: SDCPOptions = SDCPOptions(),
) -> CentralInfo:
    r""":class:`CentralInfo` at each row of ``thetas``: eigenvalues, :math:`X`, predicted loss, residuals.

    Each row is evaluated on its own, the eigensolver started from random vectors (hence the
    tighter default ``eigen``: 1e-10 and 500 iterations, which matter only for
    ``spectrum="iterative"``). Nothing is raised: read the residuals.

    Args:
      loss: the loss :math:`E(\theta)`.
      thetas: points ``(n, d)``, e.g. a solved trajectory's ``theta``.
      lr, k, tracked, restoring: as for :func:`central_flow`.
      eigen: how the eigenpairs are found (:class:`EigenOptions`).
      sdcp: how the SDCP is solved (:class:`SDCPOptions`).

    Returns:
      :class:`CentralInfo` with a leading axis of length ``n``.
    """
    o = _settings(lr, k, tracked, restoring, eigen, sdcp)
    thetas = jnp.asarray(thetas)
    o = _for_dimension(o, thetas.shape[-1])
    return _diagnostics(loss, o)(thetas)


@functools.lru_cache(maxsize=32)
def _diagnostics(loss, o: _Settings):
    """The compiled diagnostics, cached per (loss, settings) so that a second call does not recompile."""

    def one(theta):
        return _central_velocity(loss, o, theta, _initial_vectors(theta, o.tracked), None)[1]

    return jax.jit(lambda thetas: jax.lax.map(one, thetas))


def central_flow_run(
    loss,
    theta0,
    *,
    lr: float,
    steps: int,
    substeps: int = 4,
    k: int | Literal["auto"] = "auto",
    tracked: int | None = None,
    eigen: EigenOptions = EigenOptions(),
    sdcp: SDCPOptions = SDCPOptions(),
    check_smoothness: bool = True,
    vectors0=None,
    args: tuple = (),
) -> CentralRun:
    r"""The central flow by forward Euler with ``substeps`` substeps per GD step, the published scheme.

    Each substep of length :math:`\Delta t = h/\text{substeps}` evaluates the field of
    :func:`central_flow` with restoring rate :math:`\kappa = 1/\Delta t` (the constraint linearised
    over the substep), warm-starts the eigensolver and the SDCP from the previous substep, and moves
    :math:`\theta \leftarrow \theta + \Delta t\,\dot\theta`. One ``lax.scan``, compiled once per
    (loss, settings, steps, substeps).

    Cost per evaluation (one per substep): as for :func:`central_flow`, with the eigensolver and
    SDCP warm-started; with ``EigenOptions(spectrum="iterative")`` it needs no dense Hessian, the
    path for networks of thousands of parameters.

    Args:
      loss: the loss :math:`E(\theta)`, ``loss(params, *args)``; it must have third derivatives (no ReLU).
      theta0: initial parameters ``(d,)``, or any pytree of float arrays (ravelled; the result's
        ``params`` has its structure, ``vectors0`` and the diagnostics are in the flat view).
      lr: the learning rate :math:`h` of the GD being modelled.
      steps: GD steps to cover.
      substeps: Euler substeps per GD step.
      k, tracked: as for :func:`central_flow`; with ``k="auto"`` the run warns when every tracked
        eigenpair is active, with a fixed ``k`` when eigenvalue ``k + 1`` reaches :math:`2/h`.
      eigen: how the eigenpairs are found (:class:`EigenOptions`).
      sdcp: how the SDCP is solved (:class:`SDCPOptions`).
      check_smoothness: refuse a loss with kinks (:func:`~gdflows.flows.check_smooth`).
      vectors0: starting guess ``(d, tracked)`` for the eigenvectors (default: random).
      args: extra arguments of the loss (e.g. a batch), held fixed.

    Returns:
      A :class:`~gdflows.CentralRun` at :math:`t_n = nh`; its ``diagnostics`` are the
      :class:`CentralInfo` at :math:`\theta(t_n)`, :math:`n < N` (first substep of each GD step); also
      the counts of Hessian-vector products, third-derivative products and gradients, and the worst
      residuals.

    Raises:
      SDCPError: an SDCP was not solved to ``sdcp.tol`` (the message names the GD step and residual).
      EigenTrackingError: an eigen-residual exceeded ``100 * eigen.tol``.
      NotSmoothError: the loss has no third derivatives (ReLU).
    """
    substeps = check_positive_int("substeps", substeps)
    o = _settings(lr, k, tracked, float(substeps), eigen, sdcp)
    h = o.h
    steps = check_steps(steps)
    loss, theta0, unravel = flat_problem(loss, theta0, args)
    theta0 = check_theta0(theta0)
    o = _for_dimension(o, theta0.shape[0])
    if check_smoothness:
        check_smooth(loss, theta0)
    if vectors0 is None:
        vectors = _initial_vectors(theta0, o.tracked)
    else:
        vectors = jnp.asarray(vectors0, dtype=theta0.dtype)
        if vectors.shape != (theta0.shape[0], o.tracked):
            raise ValueError(
                f"vectors0 must have shape (d, tracked) = {(theta0.shape[0], o.tracked)}, got {vectors.shape}."
            )
    thetas, losses, infos, worst = _euler_run(loss, o, steps, substeps)(theta0, vectors)
    sdcp_res, eig_res, hvps = (np.asarray(a) for a in worst)
    thetas, losses = np.asarray(thetas), np.asarray(losses)
    if np.any(~(sdcp_res <= o.sdcp.tol)):
        n = int(np.argmax(~(sdcp_res <= o.sdcp.tol)))
        raise SDCPError(
            f"central flow: the SDCP in GD step {n} (t = {n * h:.6g}) has relative KKT residual "
            f"{sdcp_res[n]:.3g} > SDCPOptions.tol = {o.sdcp.tol:.1g} after at most {o.sdcp.max_iter} iterations "
            "(no solution within tolerance: e.g. the sharpness cannot be lowered, grad S = 0); raise "
            "SDCPOptions.max_iter, loosen SDCPOptions.tol, or use fewer eigenpairs k."
        )
    eig_tol = o.eigen.tol
    if np.any(~(eig_res <= 100 * eig_tol)):
        n = int(np.argmax(~(eig_res <= 100 * eig_tol)))
        raise EigenTrackingError(
            f"central flow: the tracked eigenvectors in GD step {n} (t = {n * h:.6g}) have relative "
            f"residual |Hu - lambda u|/|lambda_1| = {eig_res[n]:.3g} > 100 EigenOptions.tol = {100 * eig_tol:.1g}; "
            "raise EigenOptions.max_iter, track more eigenpairs, or use EigenOptions(spectrum='dense')."
        )
    eigenvalues = np.asarray(infos.eigenvalues)
    active = np.asarray(infos.active)
    if o.auto and np.any(active == o.tracked):
        n = int(np.argmax(active == o.tracked))
        warnings.warn(
            f"central flow: all {o.tracked} tracked eigenpairs are active at GD step {n} (the last has "
            f"h lambda = {eigenvalues[n, -1] * h:.4f}); an untracked one may be critical too: rerun with a "
            "larger tracked.",
            RuntimeWarning,
            stacklevel=2,
        )
    if not o.auto and o.tracked > k and np.any(eigenvalues[:, k] * h > 2.0):
        n = int(np.argmax(eigenvalues[:, k] * h > 2.0))
        warnings.warn(
            f"central flow: eigenvalue {k + 1} reached 2/h at GD step {n} (h lambda = {eigenvalues[n, k] * h:.4f}) "
            f"but only k = {k} eigenpairs enter the SDCP; rerun with a larger k.",
            RuntimeWarning,
            stacklevel=2,
        )
    return CentralRun(
        times=h * np.arange(steps + 1),
        theta=thetas,
        loss=losses,
        diagnostics=infos,
        hvps=int(hvps.sum()),
        third_derivative_products=steps * substeps * o.k * (o.k + 1) // 2,
        gradients=steps * substeps,
        sdcp_residual_max=float(sdcp_res.max(initial=0.0)),
        eig_residual_max=float(eig_res.max(initial=0.0)),
        substeps=substeps,
        unravel=unravel,
    )


@functools.lru_cache(maxsize=32)
def _euler_run(loss, o: _Settings, steps, substeps):
    """The compiled Euler run, cached per (loss, settings, steps, substeps) so a second call does not recompile."""
    dt = o.h / substeps

    def substep(carry, _):
        theta, vectors, X = carry
        velocity, info = _central_velocity(loss, o, theta, vectors, X)
        return (theta + dt * velocity, info.vectors, info.X), info

    def step(carry, _):
        carry, infos = jax.lax.scan(substep, carry, None, length=substeps)
        first = jax.tree.map(lambda leaf: leaf[0], infos)
        worst = (jnp.max(infos.sdcp_residual), jnp.max(infos.eig_residual), jnp.sum(infos.hvps))
        return carry, (carry[0], first, worst)

    @jax.jit
    def run(theta0, vectors0):
        X0 = jnp.zeros((o.k, o.k), theta0.dtype)
        _, (thetas, infos, worst) = jax.lax.scan(step, (theta0, vectors0, X0), None, length=steps)
        thetas = jnp.concatenate([theta0[None], thetas])
        losses = jax.vmap(loss)(thetas)
        return thetas, losses, infos, worst

    return run
