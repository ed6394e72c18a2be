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
"""

from __future__ import annotations

import functools
import warnings
from typing import Literal, NamedTuple

import jax
import jax.extend.core as jax_core
import jax.numpy as jnp
import numpy as np

from gdflows._checks import check_lr, check_positive_int, check_steps, check_theta0
from gdflows._results import CentralRun
from gdflows.errors import EigenTrackingError, NotSmoothError, SDCPError
from gdflows.flows._base import Flow, precision_checked
from gdflows.spectral import hessian, hvp

# Elementwise primitives whose derivatives are discontinuous: a loss built from them (ReLU is
# ``max(x, 0)``) has no third derivative where the central flow needs one. ``reduce_max`` (as in
# a stabilised log-sum-exp) is not listed: there it only shifts the argument.
_NONSMOOTH = frozenset({"max", "min", "abs", "sign", "floor", "ceil", "round", "clamp"})


class CentralInfo(NamedTuple):
    """What one evaluation of the central flow found (all arrays; batched over time in runs)."""

    eigenvalues: jax.Array  # (tracked,) top Hessian eigenvalues, descending
    vectors: jax.Array  # (d, tracked) their orthonormal eigenvectors; U is the first k columns
    X: jax.Array  # (k, k) Sigma = U X U^T, X PSD
    predicted_loss: jax.Array  # E + <U^T H U, X>/2 = E + tr(Sigma)/h at lambda = 2/h: GD's time-averaged loss
    sdcp_residual: jax.Array  # relative KKT residual of the SDCP solution
    sdcp_iterations: jax.Array  # projected-gradient iterations spent on it (0: closed form)
    eig_residual: jax.Array  # max_i |H u_i - lambda_i u_i| / |lambda_1|
    hvps: jax.Array  # Hessian-vector products spent on the eigenpairs (and H U)
    active: jax.Array  # rank of X: the directions whose constraint is active (oscillating at the edge)


def _subjaxprs(value):
    if isinstance(value, jax_core.ClosedJaxpr):
        yield value.jaxpr
    elif isinstance(value, jax_core.Jaxpr):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _subjaxprs(item)


def _primitive_names(jaxpr) -> set[str]:
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for param in eqn.params.values():
            for sub in _subjaxprs(param):
                names |= _primitive_names(sub)
    return names


def check_smooth(loss, theta0) -> None:
    r"""Raise :class:`NotSmoothError` if ``loss`` uses a primitive with a discontinuous derivative.

    The central flow differentiates the loss three times (:math:`\nabla^3E[u_i, u_j]`); for ReLU,
    ``abs``, elementwise ``max``/``min`` and rounding the third derivative is zero almost
    everywhere and infinite on the kinks, and the flow's :math:`\Sigma` is meaningless. The check
    reads the loss's jaxpr (a syntactic test: a smooth loss that happens to use ``max`` on
    constants is refused too; pass ``check_smoothness=False`` to the flow to skip it).
    """
    names = _primitive_names(jax.make_jaxpr(loss)(jnp.asarray(theta0)).jaxpr)
    found = sorted(names & _NONSMOOTH)
    if found:
        raise NotSmoothError(
            f"central_flow needs third derivatives of the loss, but the loss uses {', '.join(found)} "
            "(ReLU is max(x, 0)), whose derivatives jump; use a smooth activation (tanh, GELU, swish, "
            "softplus), or the rod_flow, which needs gradients only."
        )


# ----------------------------------------------------------------------------- the SDCP


def _svec_indices(k: int):
    i, j = np.triu_indices(k)
    return i, j, np.where(i == j, 1.0, np.sqrt(2.0))


def _svec(M, k):
    i, j, w = _svec_indices(k)
    return M[i, j] * w


def _smat(x, k):
    i, j, w = _svec_indices(k)
    vals = x / w
    M = jnp.zeros((k, k), x.dtype).at[i, j].set(vals)
    return M.at[j, i].set(vals)


def _project_psd(x, k):
    w, V = jnp.linalg.eigh(_smat(x, k))
    return _svec((V * jnp.maximum(w, 0.0)) @ V.T, k)


def solve_sdcp(alpha: jax.Array, B: jax.Array, *, tol: float = 1e-10, max_iter: int = 5000, x0=None):
    r"""Solve :math:`X \succeq 0,\ Z = \alpha + \mathcal B[X] \succeq 0,\ \langle X, Z\rangle = 0` in JAX.

    ``alpha`` is a symmetric :math:`k\times k` matrix; ``B`` the positive semidefinite operator
    :math:`\mathcal B` as an :math:`m \times m` matrix on the orthonormal coordinates
    :math:`\operatorname{svec}(X)` (upper triangle, off-diagonal entries times :math:`\sqrt2`,
    :math:`m = k(k+1)/2`). For such :math:`\mathcal B` the SDCP is the optimality condition of the
    convex problem :math:`\min_{X\succeq0} \tfrac12\langle X, \mathcal B X\rangle + \langle\alpha, X\rangle`,
    solved here by accelerated projected gradient (FISTA with adaptive restart; the projection is a
    :math:`k\times k` ``eigh``) until the relative KKT residual
    :math:`\|X - \Pi_{\succeq0}(X - Z/L)\|\,L / (\|\alpha\| + L\|X\|)` is below ``tol``.
    :math:`k = 1` and :math:`\alpha \succeq 0` (then :math:`X = 0`) are solved in closed form.

    Returns:
      ``(X, residual, iterations)``, traceable (no host callback).
    """
    k = alpha.shape[0]
    a = _svec(0.5 * (alpha + alpha.T), k)
    dtype = a.dtype
    if k == 1:
        b = B[0, 0]
        x = jnp.where((a[0] < 0) & (b > 0), -a[0] / jnp.where(b > 0, b, 1.0), 0.0)
        z = a[0] + b * x
        scale = jnp.abs(a[0]) + jnp.abs(b * x) + jnp.finfo(dtype).tiny
        residual = jnp.where(b > 0, jnp.abs(jnp.minimum(z, 0.0)) / scale, jnp.where(a[0] < 0, 1.0, 0.0))
        return x.reshape(1, 1), residual, jnp.array(0)
    L = jnp.maximum(jnp.linalg.eigvalsh(B)[-1], jnp.finfo(dtype).tiny)
    norm_a = jnp.linalg.norm(a)

    def residual_of(x):
        step = x - _project_psd(x - (B @ x + a) / L, k)
        return jnp.linalg.norm(step) * L / (norm_a + L * jnp.linalg.norm(x) + jnp.finfo(dtype).tiny)

    if x0 is None:  # the diagonal closed form: each direction on its own
        diag = jnp.diag(alpha)
        bdiag = jnp.diag(B)[_svec_indices(k)[0] == _svec_indices(k)[1]]
        x0 = _svec(jnp.diag(jnp.maximum(-diag, 0.0) / jnp.maximum(bdiag, jnp.finfo(dtype).tiny)), k)
    else:
        x0 = _svec(x0, k)
    x0 = _project_psd(x0, k)

    def cond(carry):
        _, _, _, it, res = carry
        return (res > tol) & (it < max_iter)

    def body(carry):
        x, x_prev, momentum, it, _ = carry
        y = x + ((momentum - 1.0) / (momentum + 2.0)) * (x - x_prev)
        x_new = _project_psd(y - (B @ y + a) / L, k)
        restart = jnp.dot(y - x_new, x_new - x) > 0  # the objective went up: drop the momentum
        momentum = jnp.where(restart, 1.0, momentum + 1.0)
        return x_new, x, momentum, it + 1, residual_of(x_new)

    trivial = jnp.linalg.eigvalsh(alpha)[0] >= 0  # alpha PSD: X = 0 is the solution
    x_start = jnp.where(trivial, jnp.zeros_like(x0), x0)
    res0 = residual_of(x_start)
    x, _, _, iterations, residual = jax.lax.while_loop(
        cond, body, (x_start, x_start, jnp.asarray(1.0, dtype), jnp.array(0), res0)
    )
    return _smat(x, k), residual, iterations


# ----------------------------------------------------------------------------- eigenpairs


def track_eigenpairs(matvec, vectors, *, tol: float = 1e-7, max_iter: int = 50, converged: int | None = None):
    r"""Top eigenpairs of a symmetric operator by LOBPCG, warm-started from ``vectors``.

    Each iteration applies ``matvec`` to the residual block :math:`R = HV - V\Lambda` and takes the top
    :math:`k` Ritz pairs of :math:`H` on :math:`\operatorname{span}(V, R, P)`, where :math:`P` is the
    previous iteration's step (the locally optimal block preconditioned conjugate-gradient method
    without preconditioner). The images :math:`HV, HP` are carried by linearity, so an iteration
    costs :math:`k` products. The basis is orthonormalised through its Gram matrix, and directions
    with Gram eigenvalue below :math:`10^{-10}` of the largest (e.g. :math:`P = 0` at the start, or
    converged residuals) are dropped. It stops when each of the first ``converged`` columns (default:
    all) has :math:`\|Hv_i - \lambda_i v_i\| \le` ``tol`` :math:`|\lambda_1|`; further columns
    enlarge the search space and give eigenvalue estimates without being waited for. Warm-started
    from the previous substep's vectors, a few iterations suffice.

    Returns:
      ``(eigenvalues (k,), V (d, k), HV (d, k), matvecs, relative residual)``, eigenvalues descending.
    """
    k = vectors.shape[1]
    converged = k if converged is None else converged
    V, _ = jnp.linalg.qr(vectors)
    W = matvec(V)

    def residual(lam, V, W):
        norms = jnp.linalg.norm(W - V * lam, axis=0)[:converged]
        return jnp.max(norms) / jnp.maximum(jnp.abs(lam[0]), 1e-300)

    def rayleigh_ritz(B, HB):
        """Top-k Ritz pairs on span(B), B of any conditioning: coefficients Z with V = B Z orthonormal."""
        norms = jnp.linalg.norm(B, axis=0)
        scale = jnp.where(norms > 0, 1.0 / jnp.where(norms > 0, norms, 1.0), 0.0)
        B, HB = B * scale, HB * scale
        s, U = jnp.linalg.eigh(B.T @ B)
        keep = s > 1e-10 * s[-1]
        C = U * jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, s, 1.0)), 0.0)
        T = C.T @ (B.T @ HB) @ C
        T = 0.5 * (T + T.T)
        penalty = jnp.max(jnp.abs(T)) * 1e3 + 1.0  # dropped directions sink below every Ritz value
        w, Y = jnp.linalg.eigh(T - jnp.diag(jnp.where(keep, 0.0, penalty)))
        return w[::-1][:k], scale[:, None] * (C @ Y[:, ::-1][:, :k])

    lam, Z = rayleigh_ritz(V, W)
    V, W = V @ Z, W @ Z

    def cond(carry):
        *_, it, res = carry
        return (res > tol) & (it < max_iter)

    def body(carry):
        lam, V, W, P, HP, it, _ = carry
        R = W - V * lam
        B = jnp.concatenate([V, R, P], axis=1)
        HB = jnp.concatenate([W, matvec(R), HP], axis=1)
        lam, Z = rayleigh_ritz(B, HB)
        step, Hstep = B[:, k:] @ Z[k:], HB[:, k:] @ Z[k:]
        V, W = B @ Z, HB @ Z
        return lam, V, W, step, Hstep, it + 1, residual(lam, V, W)

    start = (lam, V, W, jnp.zeros_like(V), jnp.zeros_like(W), jnp.array(0), residual(lam, V, W))
    lam, V, W, _, _, iterations, res = jax.lax.while_loop(cond, body, start)
    return lam, V, W, k * (iterations + 1), res


class _Options(NamedTuple):
    h: float  # learning rate
    kappa: float  # restoring rate, 1/time
    k: int  # size of the SDCP: the fixed k, or all tracked eigenpairs with k="auto"
    auto: bool  # k="auto": every tracked eigenpair enters the SDCP, which chooses the active ones
    tracked: int  # eigenpairs tracked (>= k); the ones beyond k are watched, not constrained
    spectrum: str  # "dense" or "iterative"
    sdcp_tol: float
    sdcp_max_iter: int
    eig_tol: float
    eig_max_iter: int


def _top_eigenpairs(loss, theta, vectors, o: _Options):
    matvec = jax.vmap(lambda v: hvp(loss, theta, v), 1, 1)
    if o.spectrum == "dense":
        w, V = jnp.linalg.eigh(hessian(loss, theta))
        lam, U = w[::-1][: o.tracked], V[:, ::-1][:, : o.tracked]
        U = U * jnp.where(jnp.sum(U * vectors, axis=0) < 0, -1.0, 1.0)  # signs as in the previous vectors
        HU = matvec(U)
        res = jnp.max(jnp.linalg.norm(HU - U * lam, axis=0)[: o.k]) / jnp.maximum(jnp.abs(lam[0]), 1e-300)
        return lam, U, HU, jnp.asarray(theta.shape[0] + o.tracked), res
    return track_eigenpairs(matvec, vectors, tol=o.eig_tol, max_iter=o.eig_max_iter, converged=o.k)


def _central_velocity(loss, o: _Options, theta, vectors, X0):
    value, g = jax.value_and_grad(loss)(theta)
    lam_all, U_all, HU_all, hvps, eig_residual = _top_eigenpairs(loss, theta, vectors, o)
    k = o.k
    lam, U, HU = lam_all[:k], U_all[:, :k], HU_all[:, :k]
    i, j, w = _svec_indices(k)
    third = jax.vmap(lambda u, v: jax.jvp(lambda x: hvp(loss, x, u), (theta,), (v,))[1])(U.T[i], U.T[j])
    G = third * jnp.asarray(w)[:, None]  # (m, d): rows scaled so that svec(X) . G = sum_ij X_ij grad(u_i H u_j)
    # G @ v is svec(d/dt U^T H U) along v (the rows already carry the svec weights), so smat undoes it exactly
    alpha = o.kappa * jnp.diag(2.0 / o.h - lam) + _smat(G @ g, k)
    B = 0.5 * G @ G.T
    X, residual, iterations = solve_sdcp(alpha, B, tol=o.sdcp_tol, max_iter=o.sdcp_max_iter, x0=X0)
    velocity = -g - 0.5 * G.T @ _svec(X, k)
    UHU = U.T @ HU
    predicted = value + 0.5 * jnp.sum(0.5 * (UHU + UHU.T) * X)
    x_eigenvalues = jnp.linalg.eigvalsh(X)
    active = jnp.sum(x_eigenvalues > 1e-9 * jnp.maximum(x_eigenvalues[-1], jnp.finfo(X.dtype).tiny))
    info = CentralInfo(lam_all, U_all, X, predicted, residual, iterations, eig_residual, hvps, active)
    return velocity, info


#: Eigenpairs tracked with ``k="auto"`` when ``tracked`` is not given.
AUTO_TRACKED = 3


def _options(lr, k, tracked, spectrum, restoring, sdcp_tol, sdcp_max_iter, eig_tol, eig_max_iter) -> _Options:
    h = check_lr(lr)
    auto = isinstance(k, str) and k == "auto"
    if not auto and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be 'auto' or a positive integer (eigenpairs in the SDCP), got k={k!r}.")
    least = 1 if auto else k
    if tracked is not None and (isinstance(tracked, bool) or not isinstance(tracked, int) or tracked < least):
        raise ValueError(f"tracked must be an integer >= {least} (k = {k!r}), got tracked={tracked!r}.")
    if tracked is None and not auto:
        tracked = k
    if spectrum not in ("dense", "iterative"):
        raise ValueError(f"spectrum must be 'dense' or 'iterative', got spectrum={spectrum!r}.")
    if not np.isfinite(restoring) or restoring < 0:
        raise ValueError(f"restoring must be a finite number >= 0, got restoring={restoring!r}.")
    return _Options(h, restoring / h, k, auto, tracked, spectrum, sdcp_tol, sdcp_max_iter, eig_tol, eig_max_iter)


def _for_dimension(o: _Options, d: int) -> _Options:
    """The options for d parameters: k="auto" without ``tracked`` tracks min(AUTO_TRACKED, d), and its
    SDCP spans every tracked pair; more eigenpairs than parameters is an error."""
    tracked = min(AUTO_TRACKED, d) if o.tracked is None else o.tracked
    if tracked > d:
        raise ValueError(
            f"tracked = {tracked} eigenpairs (k = {o.k!r}) cannot be tracked for {d} parameters; "
            f"pass tracked <= {d} and k <= tracked."
        )
    return o._replace(tracked=tracked, k=tracked if o.auto else o.k)


def _initial_vectors(theta0, tracked, seed=0):
    return jax.random.normal(jax.random.key(seed), (theta0.shape[0], tracked), dtype=theta0.dtype)


_ARGS_DOC = r"""
      loss: the loss :math:`E(\theta)`; it must have third derivatives (no ReLU; checked by
        :func:`check_smooth` unless ``check_smoothness=False``).
      lr: the learning rate :math:`h` of the GD being modelled.
      k: ``"auto"`` (default, as in the published code): every tracked eigenpair enters the SDCP,
        which itself makes the critical ones active (:math:`X \ne 0` on them) and leaves the others
        at :math:`X = 0`; or a fixed number of top eigenpairs, for experiments. Either way
        :math:`k(k+1)/2` third-derivative products per evaluation. A direction outside the SDCP
        is unconstrained: a cut-off below :math:`2/h` changes the flow wherever an eigenvalue
        grows faster than :math:`\kappa(2/h - \lambda)`, so "auto" uses none.
      tracked: how many top eigenpairs are computed (default: ``k``, or 3 with ``"auto"``, at most
        the number of parameters). With a fixed ``k`` the ones beyond it are watched; with
        ``"auto"`` the run warns when the last tracked one becomes active (raise ``tracked``).
      spectrum: ``"dense"`` (dense Hessian and ``eigh``: small problems) or ``"iterative"``
        (:func:`track_eigenpairs` on Hessian-vector products, warm-started).
      sdcp_tol, sdcp_max_iter: tolerance and iteration cap of :func:`solve_sdcp`.
      eig_tol, eig_max_iter: relative residual and iteration cap of :func:`track_eigenpairs`.
"""


def central_flow(
    loss,
    *,
    lr: float,
    k: int | Literal["auto"] = "auto",
    tracked: int | None = None,
    spectrum: Literal["dense", "iterative"] = "dense",
    restoring: float = 4.0,
    sdcp_tol: float = 1e-10,
    sdcp_max_iter: int = 5000,
    eig_tol: float = 1e-8,
    eig_max_iter: int = 200,
    check_smoothness: bool = True,
) -> Flow:
    o = _options(lr, k, tracked, spectrum, restoring, sdcp_tol, sdcp_max_iter, eig_tol, eig_max_iter)

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


central_flow.__doc__ = (
    r"""The central flow as a :class:`~gdflows.flows.Flow` for :func:`gdflows.solve`.

    Args:"""
    + _ARGS_DOC
    + r"""      restoring: the restoring rate :math:`\kappa` in units of :math:`1/h`; 4 is what the published
        code's 4 Euler substeps per GD step amount to, 0 the unstabilised flow.

    Returns:
      A :class:`~gdflows.flows.Flow` with state ``(theta, vectors)``; the vectors (``(d, tracked)``)
      are only the eigensolver's starting guess and stay fixed during a ``solve`` (derivative 0).
      :func:`central_flow_run` refreshes them every substep; :func:`central_diagnostics` gives the
      eigenvalues, :math:`X`, the predicted loss and the residuals along a solved trajectory (the
      field cannot raise inside an adaptive solve, so failures are read there).
    """
)


def central_diagnostics(
    loss,
    thetas,
    *,
    lr: float,
    k: int | Literal["auto"] = "auto",
    tracked: int | None = None,
    spectrum: Literal["dense", "iterative"] = "dense",
    restoring: float = 4.0,
    sdcp_tol: float = 1e-10,
    sdcp_max_iter: int = 5000,
) -> CentralInfo:
    r""":class:`CentralInfo` at each row of ``thetas`` (``(n, d)``): eigenvalues, X, predicted loss, residuals."""
    o = _options(lr, k, tracked, spectrum, restoring, sdcp_tol, sdcp_max_iter, 1e-10, 500)
    thetas = jnp.asarray(thetas)
    o = _for_dimension(o, thetas.shape[-1])

    @jax.jit
    def one(theta):
        return _central_velocity(loss, o, theta, _initial_vectors(theta, o.tracked), None)[1]

    return jax.lax.map(one, thetas)


def central_flow_run(
    loss,
    theta0,
    *,
    lr: float,
    steps: int,
    substeps: int = 4,
    k: int | Literal["auto"] = "auto",
    tracked: int | None = None,
    spectrum: Literal["dense", "iterative"] = "dense",
    sdcp_tol: float = 1e-10,
    sdcp_max_iter: int = 5000,
    eig_tol: float = 1e-8,
    eig_max_iter: int = 200,
    check_smoothness: bool = True,
    vectors0=None,
) -> CentralRun:
    substeps = check_positive_int("substeps", substeps)
    o = _options(lr, k, tracked, spectrum, float(substeps), sdcp_tol, sdcp_max_iter, eig_tol, eig_max_iter)
    h = o.h
    steps = check_steps(steps)
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
    if np.any(~(sdcp_res <= sdcp_tol)):
        n = int(np.argmax(~(sdcp_res <= sdcp_tol)))
        raise SDCPError(
            f"central flow: the SDCP in GD step {n} (t = {n * h:.6g}) has relative KKT residual "
            f"{sdcp_res[n]:.3g} > sdcp_tol = {sdcp_tol:.1g} after at most {sdcp_max_iter} iterations "
            "(no solution within tolerance: e.g. the sharpness cannot be lowered, grad S = 0); raise "
            "sdcp_max_iter, loosen sdcp_tol, or use fewer eigenpairs k."
        )
    if np.any(~(eig_res <= 100 * eig_tol)):
        n = int(np.argmax(~(eig_res <= 100 * eig_tol)))
        raise EigenTrackingError(
            f"central flow: the tracked eigenvectors in GD step {n} (t = {n * h:.6g}) have relative "
            f"residual |Hu - lambda u|/|lambda_1| = {eig_res[n]:.3g} > 100 eig_tol = {100 * eig_tol:.1g}; "
            "raise eig_max_iter, track more eigenpairs, or use spectrum='dense'."
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
    )


central_flow_run.__doc__ = (
    r"""The central flow by forward Euler with ``substeps`` substeps per GD step, the published scheme.

    Each substep of length :math:`\Delta t = h/\text{substeps}` evaluates the field of
    :func:`central_flow` with restoring rate :math:`\kappa = 1/\Delta t` (the constraint linearised
    over the substep), warm-starts the eigensolver and the SDCP from the previous substep, and moves
    :math:`\theta \leftarrow \theta + \Delta t\,\dot\theta`. One ``lax.scan``, compiled once.

    Args:
      theta0: initial parameters; steps: GD steps to cover; substeps: Euler substeps per GD step."""
    + _ARGS_DOC
    + r"""      vectors0: starting guess ``(d, tracked)`` for the eigenvectors (default: random).

    Returns:
      A :class:`~gdflows.CentralRun` at :math:`t_n = nh`; its ``diagnostics`` are the
      :class:`CentralInfo` at :math:`\theta(t_n)`, :math:`n < N` (first substep of each GD step); also
      the counts of Hessian-vector products, third-derivative products and gradients, and the worst
      residuals.

    Raises:
      SDCPError: an SDCP was not solved to ``sdcp_tol`` (the message names the GD step and residual).
      EigenTrackingError: an eigen-residual exceeded ``100 * eig_tol``.
      NotSmoothError: the loss has no third derivatives (ReLU).
    """
)


@functools.lru_cache(maxsize=32)
def _euler_run(loss, o: _Options, steps, substeps):
    """The compiled Euler run, cached per (loss, options, steps, substeps) so a second call does not recompile."""
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
