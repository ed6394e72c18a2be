r"""A semidefinite complementarity problem (SDCP) solver in JAX, and the svec coordinates it uses.

The central flow (:func:`gdflows.central_flow`) finds the covariance of GD's oscillation as the
solution :math:`X` of a small SDCP, :math:`X \succeq 0,\ \alpha + \mathcal B[X] \succeq 0,\
\langle X, \alpha + \mathcal B[X]\rangle = 0`, at every evaluation of its vector field, so the
solver runs inside ``jit`` (no host callback). Symmetric :math:`k\times k` matrices are handled in
the orthonormal coordinates :math:`\operatorname{svec}` (:func:`svec`, :func:`smat`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def svec_indices(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Rows, columns and weights of :math:`\operatorname{svec}` for :math:`k\times k` matrices.

    The upper triangle :math:`i \le j` in row-major order; the weight is 1 on the diagonal and
    :math:`\sqrt2` off it, so that :math:`\operatorname{svec}(A)\cdot\operatorname{svec}(B) = \langle A, B\rangle`.
    """
    i, j = np.triu_indices(k)
    return i, j, np.where(i == j, 1.0, np.sqrt(2.0))


def svec(M: jax.Array, k: int) -> jax.Array:
    r"""The :math:`k(k+1)/2` orthonormal coordinates of a symmetric :math:`k\times k` matrix.

    See :func:`svec_indices`; :math:`M` is read on its upper triangle.
    """
    i, j, w = svec_indices(k)
    return M[i, j] * w


def smat(x: jax.Array, k: int) -> jax.Array:
    r"""The symmetric :math:`k\times k` matrix with coordinates ``x``: the inverse of :func:`svec`."""
    i, j, w = svec_indices(k)
    vals = x / w
    M = jnp.zeros((k, k), x.dtype).at[i, j].set(vals)
    return M.at[j, i].set(vals)


def _project_psd(x, k):
    w, V = jnp.linalg.eigh(smat(x, k))
    return svec((V * jnp.maximum(w, 0.0)) @ V.T, k)


def solve_sdcp(
    alpha: jax.Array, B: jax.Array, *, tol: float = 1e-10, max_iter: int = 5000, x0: jax.Array | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
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

    Args:
      alpha: the constant term, ``(k, k)``.
      B: the operator on svec coordinates, ``(m, m)``, positive semidefinite.
      tol: the relative KKT residual to reach.
      max_iter: the iteration cap; the residual reached is returned either way.
      x0: a warm start ``(k, k)`` (the central flow passes the previous substep's :math:`X`);
        default: each direction's own closed form, :math:`X_{ii} = \max(-\alpha_{ii}, 0)/\mathcal B_{ii,ii}`.

    Returns:
      ``(X, residual, iterations)``, traceable (no host callback).
    """
    k = alpha.shape[0]
    a = svec(0.5 * (alpha + alpha.T), k)
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
        bdiag = jnp.diag(B)[svec_indices(k)[0] == svec_indices(k)[1]]
        x0 = svec(jnp.diag(jnp.maximum(-diag, 0.0) / jnp.maximum(bdiag, jnp.finfo(dtype).tiny)), k)
    else:
        x0 = svec(x0, k)
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
    return smat(x, k), residual, iterations
