r"""Curvature: Hessian-vector products, dense Hessians, Lanczos and Krylov matrix functions.

The public functions take a loss ``loss(params, *args)`` of any pytree of float arrays (``args``:
extra arguments such as a batch); :func:`hvp` returns a pytree like ``params``, while
:func:`hessian`, :func:`sharpness` and :func:`top_eigenpairs` work on the flat view
:math:`\theta` of the parameters (:func:`gdflows.ravel`): the Hessian is the :math:`d \times d`
matrix of :math:`E(\theta)`, the eigenvectors are flat. The building blocks (:func:`lanczos`,
:func:`krylov_apply`, ...) work on flat vectors. Dense Hessians are built column block by
column block from Hessian-vector products, which needs far less temporary memory than ``jax.hessian`` on networks;
they are the reference for small problems. At scale, :func:`lanczos` with full
reorthogonalisation gives the top eigenpairs (:func:`top_eigenpairs`,
:func:`lanczos_top`) and the Krylov evaluation of a matrix function on a vector,
:math:`f(H)v \approx \|v\|V_m^\top f(T_m)e_1` (:func:`krylov_apply`), from Hessian-vector
products alone; :func:`track_eigenpairs` (block LOBPCG) follows top eigenpairs that move
slowly, warm-started from the previous ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from gdflows._pytree import bind_args, flat_problem
from gdflows.cost import linearized_hvp, note
from gdflows.errors import LanczosError

Loss = Callable[[jax.Array], jax.Array]


def gradient(loss: Loss, *, holomorphic: bool = False) -> Callable[[jax.Array], jax.Array]:
    r""":math:`\nabla E`, or the complex derivative of the analytic continuation if ``holomorphic``."""
    return jax.grad(loss, holomorphic=holomorphic)


def hvp(loss: Loss, theta, v, *, holomorphic: bool = False, args: tuple = ()):
    r"""Hessian-vector product :math:`H(\theta)v = \frac{d}{d\epsilon}\nabla E(\theta + \epsilon v)|_0`.

    Forward-over-reverse (``jvp`` of ``grad``): one gradient's cost, a few times over.
    ``theta`` and ``v`` are pytrees of the same structure (or flat vectors), and so is the result.
    """
    return jax.jvp(gradient(bind_args(loss, args), holomorphic=holomorphic), (theta,), (v,))[1]


def hessian(loss: Loss, theta, *, holomorphic: bool = False, block: int = 256, args: tuple = ()) -> jax.Array:
    r"""Dense Hessian :math:`H_{ij} = \partial_i\partial_j E(\theta)`, symmetrised, of the flat view :math:`\theta`.

    Columns are Hessian-vector products against basis vectors, ``block`` at a time.
    The exact Hessian is symmetric; the returned :math:`(H + H^\top)/2` removes the
    round-off asymmetry so that ``eigh`` sees a symmetric matrix. For pytree parameters it is
    the :math:`d \times d` Hessian of the ravelled loss (leaves in ``jax.tree`` order).
    """
    loss, theta, _ = flat_problem(loss, theta, args)
    note("dense_hessian", theta)
    d = theta.shape[0]
    basis = jnp.eye(d, dtype=theta.dtype)
    column = lambda e: hvp(loss, theta, e, holomorphic=holomorphic)  # noqa: E731
    columns = jax.lax.map(column, basis, batch_size=min(block, d))
    return 0.5 * (columns + columns.T)


def third_derivative(
    loss: Loss, theta: jax.Array, u: jax.Array, v: jax.Array, *, holomorphic: bool = False
) -> jax.Array:
    r"""The vector :math:`\nabla^3 E(\theta)[u, v] = \frac{d}{d\epsilon} H(\theta + \epsilon v)\,u\,|_0`.

    It is :math:`\nabla(u^\top H v)` with :math:`u, v` held fixed: one ``jvp`` of a Hessian-vector product.
    """
    return jax.jvp(lambda x: hvp(loss, x, u, holomorphic=holomorphic), (theta,), (v,))[1]


def third_derivative_vv(loss: Loss, theta: jax.Array, v: jax.Array, *, holomorphic: bool = False) -> jax.Array:
    r"""The vector :math:`\nabla^3 E(\theta)[v, v]`, the gradient of the curvature :math:`v^\top H v`."""
    return third_derivative(loss, theta, v, v, holomorphic=holomorphic)


#: Parameters up to which ``sharpness(method="auto")`` uses the dense spectrum; Lanczos above (see :func:`sharpness`).
DENSE_UP_TO = 200


def sharpness(
    loss: Loss,
    theta,
    *,
    args: tuple = (),
    method: Literal["auto", "dense", "lanczos"] = "auto",
    krylov_dim: int = 64,
    tol: float = 1e-8,
    seed: int = 0,
) -> jax.Array:
    r"""Largest Hessian eigenvalue :math:`\lambda_{\max}(H(\theta))`, dense or by Lanczos.

    Args:
      loss: the loss ``loss(params, *args)``.
      theta: the parameters, a flat vector or any pytree of float arrays.
      args: extra arguments of the loss (e.g. a batch).
      method: ``"dense"`` (``eigvalsh`` of the dense Hessian: :math:`d` Hessian-vector products and
        :math:`O(d^3)`), ``"lanczos"`` (:func:`top_eigenpairs`: ``krylov_dim`` products, raises
        :class:`~gdflows.LanczosError` if the relative residual exceeds ``tol``) or ``"auto"``:
        dense up to ``DENSE_UP_TO`` = 200 parameters, Lanczos above.
      krylov_dim, tol, seed: Lanczos steps, convergence tolerance and start-vector seed (Lanczos only).

    The crossover, measured on a one-hidden-layer tanh MLP (64 samples, float64, compiled, best of
    3, 2 shared cores, jax 0.10): dense 1.5 / 5–6 / 81 / 330 ms and 3.0 / 40 s at
    :math:`d` = 81 / 101–201 / 401 / 801 and 1,601 / 3,201; Lanczos with 64 steps 2.4–3.2 ms up to
    :math:`d` = 201, 6 / 12 / 32 / 34 ms at 401 / 801 / 1,601 / 3,201 (the same eigenvalue to 12
    digits throughout). They cross between 100 and 150 parameters, where both take a few
    milliseconds; up to 200 the dense spectrum is kept, since it is exact and cannot fail to converge.
    """
    if method not in ("auto", "dense", "lanczos"):
        raise ValueError(f"method must be 'auto', 'dense' or 'lanczos', got method={method!r}.")
    loss, theta, _ = flat_problem(loss, theta, args)
    theta = jnp.asarray(theta)
    if method == "dense" or (method == "auto" and theta.shape[0] <= DENSE_UP_TO):
        return _dense_sharpness(loss, theta)
    return top_eigenpairs(loss, theta, 1, m=krylov_dim, tol=tol, seed=seed).values[0]


@eqx.filter_jit
def _dense_sharpness(loss, theta):
    return jnp.linalg.eigvalsh(hessian(loss, theta))[-1]


# ----------------------------------------------------------------------------- Lanczos


class Lanczos(NamedTuple):
    r"""A Lanczos decomposition :math:`HV_m^\top = V_m^\top T_m + \beta_m v_{m+1}e_m^\top`.

    With the bilinear form :math:`\langle a, b\rangle = a^\top b` (no conjugate): for a real
    symmetric :math:`H` this is the usual Lanczos process, for a complex-symmetric one
    (:math:`H^\top = H`, the Hessian of a holomorphic loss at complex parameters) it is the
    complex-symmetric Lanczos process, whose basis satisfies :math:`V V^\top = I`.
    """

    alpha: jax.Array  # (m,) diagonal of the tridiagonal T_m
    beta: jax.Array  # (m,) beta[j] = T[j, j+1] for j < m-1; beta[m-1] is the final residual norm
    basis: jax.Array  # (m, d) rows v_1 .. v_m; rows after a breakdown are zero
    norm: jax.Array  # <v, v>^{1/2} of the start vector
    steps: jax.Array  # steps before an invariant subspace (breakdown) was found; m if none

    def tridiagonal(self) -> jax.Array:
        """The matrix :math:`T_m`."""
        off = self.beta[:-1]
        return jnp.diag(self.alpha) + jnp.diag(off, 1) + jnp.diag(off, -1)


def _bilinear(a, b):
    return jnp.sum(a * b)


def lanczos(
    matvec: Callable[[jax.Array], jax.Array],
    v: jax.Array,
    m: int,
    *,
    converged: Callable[[Lanczos, jax.Array], jax.Array] | None = None,
) -> Lanczos:
    r"""``m`` steps of Lanczos with full reorthogonalisation, started from ``v``; jittable.

    Every new vector is orthogonalised against all previous ones twice (classical
    Gram–Schmidt, repeated), so the basis stays orthonormal to round-off and no ghost
    eigenvalues appear. Costs exactly ``m`` products with :math:`H`. If the Krylov space
    becomes invariant after ``k < m`` steps (a breakdown, :math:`\beta_k \approx 0`), the
    remaining rows of the basis are zero, ``steps`` is ``k`` and :math:`T_m` decouples, which
    leaves :math:`f(T_m)e_1` exact.

    ``converged(lz, k)``, if given, is asked after every ``CHECK_EVERY``-th step with the
    decomposition of the first ``k`` steps (:math:`T_k` padded with zeros); when it says True the
    process stops there as at a breakdown, and the products with :math:`H` it would have spent
    on the remaining steps are skipped.
    """
    v = jnp.asarray(v)
    note("lanczos", v)
    dtype = v.dtype
    eps = jnp.finfo(dtype).eps
    norm = jnp.sqrt(_bilinear(v, v))
    q0 = v / jnp.where(norm == 0, 1.0, norm)  # v = 0: a zero basis, and f(H) 0 = 0
    basis0 = jnp.zeros((m, v.shape[0]), dtype)

    def body(j, carry):
        basis, alpha, beta, q, alive, steps = carry
        basis = basis.at[j].set(q)
        w = matvec(q) if converged is None else jax.lax.cond(alive, matvec, jnp.zeros_like, q)
        scale = jnp.sqrt(jnp.sum(jnp.abs(w) ** 2))
        a = _bilinear(q, w)
        w = w - basis.T @ (basis @ w)
        w = w - basis.T @ (basis @ w)
        b = jnp.sqrt(_bilinear(w, w))
        ok = alive & (jnp.abs(b) > 64 * eps * jnp.maximum(scale, jnp.abs(a)))
        alpha = alpha.at[j].set(jnp.where(alive, a, 0.0))
        steps = steps + alive.astype(jnp.int32)
        if converged is not None:
            k = j + 1
            check = ok & (k % CHECK_EVERY == 0) & (k < m)
            so_far = Lanczos(alpha, beta.at[j].set(0.0), basis, norm, steps)
            ok = ok & ~jax.lax.cond(check, lambda: converged(so_far, k), lambda: jnp.array(False))
        q_next = jnp.where(ok, w / jnp.where(ok, b, 1.0), jnp.zeros_like(w))
        beta = beta.at[j].set(jnp.where(ok, b, 0.0))
        return basis, alpha, beta, q_next, ok, steps

    init = (basis0, jnp.zeros(m, dtype), jnp.zeros(m, dtype), q0, jnp.array(True), jnp.array(0, jnp.int32))
    basis, alpha, beta, _, _, steps = jax.lax.fori_loop(0, m, body, init)
    return Lanczos(alpha, beta, basis, norm, steps)


#: :func:`lanczos` asks its ``converged`` test after every this many steps
CHECK_EVERY = 4


def settled(
    f: Callable[[jax.Array], jax.Array], tol: float, symmetric: Literal["real", "complex"]
) -> Callable[[Lanczos, jax.Array], jax.Array]:
    r"""A ``converged`` test for :func:`lanczos`: the Krylov approximation of :math:`f(H)v` has settled.

    True at step :math:`k` when :math:`\|y_k - y_{k-c}\| \le \mathrm{tol}\,\|y_k\|`, with
    :math:`y_k = f(T_k)e_1` (padded with zeros) and :math:`c` = ``CHECK_EVERY``: the change of
    the approximation over the last :math:`c` steps, an estimate of its error where the error
    falls fast with the dimension (the basis is orthonormal, so these are the norms of the
    approximations themselves for a real symmetric :math:`H`).
    """

    def test(lz: Lanczos, k: jax.Array) -> jax.Array:
        index = jnp.arange(lz.alpha.shape[0])
        shorter = lz._replace(alpha=jnp.where(index < k - CHECK_EVERY, lz.alpha, 0.0))
        shorter = shorter._replace(beta=jnp.where(index < k - CHECK_EVERY - 1, lz.beta, 0.0))
        now, before = _eigen_small(lz, symmetric)(f), _eigen_small(shorter, symmetric)(f)
        return jnp.linalg.norm(now - before) <= tol * jnp.linalg.norm(now)

    return test


class Eigenpairs(NamedTuple):
    """Top eigenpairs from :func:`lanczos_top` / :func:`top_eigenpairs`."""

    values: jax.Array  # (k,) largest eigenvalues (Ritz values), descending
    vectors: jax.Array  # (k, d) unit eigenvectors (Ritz vectors), one per row
    residuals: jax.Array  # (k,) ||H u - lambda u||, each from one more product with H
    matvecs: int  # products with H spent: m for the basis plus k for the residuals
    converged: jax.Array  # (k,) residual <= tol * max(|lambda_1|, tiny)


def lanczos_top(matvec, v0: jax.Array, k: int, m: int, tol: float = 1e-8) -> Eigenpairs:
    r"""The ``k`` largest eigenpairs of a real symmetric :math:`H` from ``m`` Lanczos steps; jittable.

    The Ritz pairs of :math:`T_m` are returned with their true residuals
    :math:`\|Hu - \lambda u\|` (``k`` extra products). Never raises: look at ``converged``
    (or use :func:`top_eigenpairs`, which raises :class:`LanczosError`).
    """
    if not 1 <= k <= m:
        raise ValueError(f"need 1 <= k <= m, got k={k}, m={m}.")
    lz = lanczos(matvec, v0, m)
    theta, s = jnp.linalg.eigh(lz.tridiagonal())
    valid = jnp.arange(m) < lz.steps
    weight_outside = jnp.sum(jnp.where(valid[:, None], 0.0, s**2), axis=0)
    theta = jnp.where(weight_outside > 0.5, -jnp.inf, theta)  # Ritz values of a decoupled zero block
    order = jnp.argsort(-theta)[:k]
    values = theta[order]
    vectors = s[:, order].T @ lz.basis
    vectors = vectors / jnp.linalg.norm(vectors, axis=1, keepdims=True)
    residuals = jnp.linalg.norm(jax.vmap(matvec)(vectors) - values[:, None] * vectors, axis=1)
    scale = jnp.maximum(jnp.max(jnp.abs(values)), jnp.finfo(values.dtype).tiny)
    return Eigenpairs(values, vectors, residuals, m + k, residuals <= tol * scale)


def hvp_operator(loss: Loss, theta: jax.Array, *, holomorphic: bool = False) -> Callable[[jax.Array], jax.Array]:
    r"""The map :math:`v \mapsto H(\theta)v`, with the gradient's linearisation computed once."""
    return gradient_and_hvp_operator(loss, theta, holomorphic=holomorphic)[1]


def gradient_and_hvp_operator(
    loss: Loss, theta: jax.Array, *, holomorphic: bool = False
) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
    r""":math:`\nabla E(\theta)` and the map :math:`v \mapsto H(\theta)v` from one linearisation of the gradient
    (the gradient is its value: no second gradient evaluation)."""
    return linearized_hvp(gradient(loss, holomorphic=holomorphic), theta)


def _start_vector(theta: jax.Array, seed: int) -> jax.Array:
    v = jax.random.normal(jax.random.key(seed), theta.shape, dtype=theta.real.dtype)
    return v / jnp.linalg.norm(v)


def top_eigenpairs(
    loss: Loss,
    theta,
    k: int = 1,
    *,
    m: int = 64,
    tol: float = 1e-8,
    seed: int = 0,
    strict: bool = True,
    args: tuple = (),
) -> Eigenpairs:
    r"""The ``k`` largest Hessian eigenpairs at ``theta`` by Lanczos with full reorthogonalisation.

    Args:
      loss: the loss :math:`E`, ``loss(params, *args)``.
      theta: real parameters, a flat vector or any pytree of float arrays; the eigenvectors are
        in the flat view (rows of length :math:`d`; :func:`gdflows.ravel` gives the map back).
      k: number of eigenpairs.
      m: Lanczos steps (Hessian-vector products); capped at the dimension.
      tol: convergence tolerance on the relative residual :math:`\|Hu - \lambda u\|/|\lambda_1|`.
      seed: seed of the random start vector.
      strict: raise :class:`LanczosError` (with the residuals) if a pair has not converged;
        ``False`` returns the result with its ``converged`` flags instead.
      args: extra arguments of the loss (e.g. a batch).
    """
    loss, theta, _ = flat_problem(loss, theta, args)
    theta = jnp.asarray(theta)
    m = min(m, theta.shape[0])
    result = _top_jit(loss, theta, k, m, tol, seed)
    if strict and not bool(jnp.all(result.converged)):
        worst = float(jnp.max(result.residuals / jnp.maximum(jnp.max(jnp.abs(result.values)), 1e-300)))
        raise LanczosError(
            f"Lanczos with m={m} steps did not converge for the top {k} eigenpairs: largest relative residual "
            f"{worst:.3g} > tol={tol:.3g} (residuals {[float(r) for r in result.residuals]}); increase m, "
            "or pass strict=False to accept the estimate."
        )
    return result


@eqx.filter_jit  # the loss traced through its arrays (a batch in args), static otherwise
def _top_jit(loss, theta, k, m, tol, seed):
    return lanczos_top(hvp_operator(loss, theta), _start_vector(theta, seed), k, m, tol)


def krylov_apply(
    matvec: Callable[[jax.Array], jax.Array],
    v: jax.Array,
    f: Callable[[jax.Array], jax.Array],
    m: int,
    *,
    symmetric: Literal["real", "complex"] = "real",
    tol: float | None = None,
) -> jax.Array:
    r"""The Krylov approximation :math:`f(H)v \approx \langle v,v\rangle^{1/2}\,V_m^\top f(T_m)e_1`; jittable.

    ``m`` Lanczos steps (``m`` products with :math:`H`) build :math:`V_m, T_m`; :math:`f` is
    applied to the small tridiagonal matrix through its eigendecomposition. Exact when
    :math:`f` agrees with a polynomial of degree :math:`< m` on the spectrum (in particular
    when ``m`` reaches the dimension, or the Krylov space becomes invariant).

    Args:
      matvec: :math:`v \mapsto Hv`.
      v: the vector.
      f: a function of an array of eigenvalues, applied elementwise (may return complex values).
      m: Krylov dimension.
      symmetric: ``"real"`` for a real symmetric :math:`H` (``eigh`` of :math:`T_m`);
        ``"complex"`` for a complex-symmetric :math:`H` (complex-symmetric Lanczos and ``eig`` of
        :math:`T_m`), as for the Hessian of a holomorphic loss at complex parameters.
      tol: None for exactly ``m`` steps; else ``m`` is the most, and the process stops once the
        approximation has settled to ``tol`` (:func:`settled`, asked every ``CHECK_EVERY`` steps).
    """
    if symmetric not in ("real", "complex"):
        raise ValueError(f"symmetric must be 'real' or 'complex', got {symmetric!r}.")
    converged = None if tol is None else settled(f, tol, symmetric)
    return functions_of(lanczos(matvec, v, m, converged=converged), symmetric)(f)


def eig(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""Eigenvalues and right eigenvectors of a square (complex-symmetric or general) matrix, differentiable.

    The same LAPACK ``geev`` as :func:`jax.numpy.linalg.eig`, with the eigenvectors' derivatives enabled, so that
    the complex principal flow's field has a Jacobian (``jax.jacfwd``; diffrax's implicit solvers need one). The
    derivative is that of ``geev``'s normalisation and holds where the eigenvalues are distinct; at a repeated
    eigenvalue it is not finite.
    """
    values, vectors = jax.lax.linalg.eig(a, compute_left_eigenvectors=False, enable_eigvec_derivs=True)
    return values, vectors  # (lax returns a list)


def _eigen_small(lz: Lanczos, symmetric: str) -> Callable[[Callable], jax.Array]:
    """``f -> f(T)e_1`` from one eigendecomposition of ``lz``'s tridiagonal :math:`T`."""
    m = lz.alpha.shape[0]
    t = lz.tridiagonal()
    if symmetric == "real":
        theta, s = jnp.linalg.eigh(t)
        first = s[0, :]
    else:
        theta, s = eig(t)
        first = jnp.linalg.solve(s, jnp.zeros(m, s.dtype).at[0].set(1.0))
    return lambda f: s @ (f(theta) * first)


def functions_of(lz: Lanczos, symmetric: Literal["real", "complex"]) -> Callable[[Callable], jax.Array]:
    r"""``f -> \langle v,v\rangle^{1/2} V_m^\top f(T_m)e_1`` from a Lanczos decomposition, for any number of ``f``.

    One basis :math:`V_m` and one eigendecomposition of :math:`T_m` serve every :math:`f` (as in
    :func:`krylov_apply`): each further function costs :math:`O(dm)` and no product with :math:`H`.
    """
    small_of = _eigen_small(lz, symmetric)

    def apply(f: Callable[[jax.Array], jax.Array]) -> jax.Array:
        small = small_of(f)
        return lz.norm * (small.astype(jnp.result_type(small, lz.basis)) @ lz.basis)

    return apply


# ----------------------------------------------------------------------------- LOBPCG


def relative_residual(values: jax.Array, vectors: jax.Array, images: jax.Array, count: int) -> jax.Array:
    r""":math:`\max_{i \le \text{count}} \|Hv_i - \lambda_i v_i\| / |\lambda_1|` for eigenpairs in columns.

    ``values`` (``(k,)``, descending), ``vectors`` :math:`V` and ``images`` :math:`HV` (both
    ``(d, k)``); only the first ``count`` columns are measured.
    """
    norms = jnp.linalg.norm(images - vectors * values, axis=0)[:count]
    return jnp.max(norms) / jnp.maximum(jnp.abs(values[0]), 1e-300)


def track_eigenpairs(
    matvec: Callable[[jax.Array], jax.Array],
    vectors: jax.Array,
    *,
    tol: float = 1e-7,
    max_iter: int = 50,
    converged: int | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    r"""Top eigenpairs of a symmetric operator by LOBPCG, warm-started from ``vectors``; jittable.

    ``matvec`` maps a block of columns ``(d, j)`` to :math:`H` times it; ``vectors`` ``(d, k)``
    is the starting block (any basis of a subspace near the top eigenvectors).

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
    note("lobpcg", vectors)
    converged = k if converged is None else converged
    V, _ = jnp.linalg.qr(vectors)
    W = matvec(V)

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
        return lam, V, W, step, Hstep, it + 1, relative_residual(lam, V, W, converged)

    start = (lam, V, W, jnp.zeros_like(V), jnp.zeros_like(W), jnp.array(0), relative_residual(lam, V, W, converged))
    lam, V, W, _, _, iterations, res = jax.lax.while_loop(cond, body, start)
    return lam, V, W, k * (iterations + 1), res
