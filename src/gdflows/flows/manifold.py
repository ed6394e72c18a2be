r"""Sharpness-reducing flows on the manifold of minimisers (Arora, Li & Panigrahi 2022).

Let :math:`\Gamma` be a manifold of minimisers of :math:`E` (a connected set of them, along which
the Hessian :math:`H` has constant rank), :math:`\Phi(x) = \lim_{t\to\infty}x(t)` the limit of the
gradient flow :math:`\dot x = -\nabla E(x)` started at :math:`x`, and on :math:`\Gamma`,
:math:`\partial\Phi = P_T`, the orthogonal projector onto the tangent space, the kernel of
:math:`H`. Normalized GD and GD on :math:`\sqrt{E - E_*}` with step :math:`\eta` both reach an
oscillation of size :math:`O(\eta)` across :math:`\Gamma` and then drift along it; with
:math:`\tau = \eta^2 n` their projections :math:`\Phi(\theta_n)` follow, to :math:`O(\eta)`,

.. math::
    \frac{dX}{d\tau} = -\tfrac14 P_T(X)\,\nabla\log\lambda_1(X) \quad\text{(normalized GD)},\qquad
    \frac{dX}{d\tau} = -\tfrac18 P_T(X)\,\nabla\lambda_1(X) \quad\text{(GD on }\sqrt{E - E_*}\text{)},

both Riemannian gradient flows that decrease the sharpness :math:`\lambda_1 = \lambda_{\max}(H)`.
With :math:`u_1` the top unit eigenvector, :math:`\nabla\lambda_1 = \nabla^3E[u_1, u_1]`
(:func:`gdflows.spectral.third_derivative_vv`: one ``jvp`` of a Hessian-vector product). The book
page *Normalized GD and GD on √loss* derives both on :math:`E = \tfrac12\lambda(y)x^2`.

**Time.** :func:`gdflows.solve` reads every flow at GD's times :math:`t_n = n\eta`, and
:math:`\tau = \eta^2 n = \eta t`, so the fields here are :math:`dX/dt = \eta\, dX/d\tau`: the flow
solved for ``steps`` = :math:`N` is :math:`X` at :math:`\tau = \eta^2 N`, aligned with the run's steps.

**Staying on** :math:`\Gamma`. The tangent field moves :math:`X` off :math:`\Gamma` at second order
in the step; after every solver step (the flow's ``after_step``) and in ``init``,
:func:`project_to_manifold` brings the state back, and :attr:`gdflows.Solution.loss`
(:math:`E(X) - E_*`) is the residual of staying on :math:`\Gamma`.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp

from gdflows._checks import check_lr, check_number, check_positive_int
from gdflows._results import Projection
from gdflows.flows._base import Flow, bind, flow_factory, precision_checked
from gdflows.flows._loss_checks import check_smooth
from gdflows.spectral import _start_vector, hessian, hvp_operator, lanczos_top, third_derivative_vv

#: Hessian eigenvalues at most ``NULL_TOL`` times :math:`\lambda_1` count as zero (tangent to :math:`\Gamma`)
#: when the codimension is not given. Off :math:`\Gamma` by :math:`r` the zero eigenvalues become
#: :math:`O(r\,\|\nabla^3E\|)`; a tolerance they cross inside a solver step makes the field jump (measured
#: on the diagonal network at 1e-6: 61 of 124 steps rejected), so give ``codim`` where it is known.
NULL_TOL = 1e-3


def _spectrum(loss, theta, null_tol, codim, krylov_dim):
    r"""``(values, vectors, normal)``: eigenpairs of :math:`H(\theta)`, vectors as columns, and the mask
    of those normal to :math:`\Gamma`. Dense (``krylov_dim`` 0): all pairs, the normal ones the top
    ``codim``, or for ``codim`` None those above ``null_tol`` :math:`\lambda_1`; Lanczos: the top ``codim``."""
    if krylov_dim == 0:
        values, vectors = jnp.linalg.eigh(hessian(loss, theta))
        if codim is None:
            return values, vectors, values > null_tol * values[-1]
        return values, vectors, jnp.arange(values.shape[0]) >= values.shape[0] - codim
    pairs = lanczos_top(hvp_operator(loss, theta), _start_vector(theta, 0), codim, krylov_dim)
    return pairs.values, pairs.vectors.T, jnp.ones(codim, dtype=bool)


def _top(values, vectors):
    index = jnp.argmax(values)
    return values[index], vectors[:, index]


def _tangent(vectors, normal, v):
    r""":math:`P_T v = v - \sum_{i\ \mathrm{normal}} u_i u_i^\top v`."""
    return v - vectors @ jnp.where(normal, vectors.T @ v, 0.0)


def _newton(loss, theta, null_tol, codim, krylov_dim):
    r"""One Newton step on :math:`\nabla E = 0` in the normal space:
    :math:`\theta - \sum_{i\ \mathrm{normal}} u_i\,(u_i^\top\nabla E)/\lambda_i`."""
    values, vectors, normal = _spectrum(loss, theta, null_tol, codim, krylov_dim)
    coefficients = jnp.where(normal, (vectors.T @ jax.grad(loss)(theta)) / jnp.where(normal, values, 1.0), 0.0)
    return theta - vectors @ coefficients


def _retract(loss, null_tol, codim, krylov_dim, newton_steps, theta):
    for _ in range(newton_steps):
        theta = _newton(loss, theta, null_tol, codim, krylov_dim)
    return theta


def _gradient_flow_rk4(loss, theta, dt, steps):
    """``steps`` classical RK4 steps of :math:`\\dot x = -\\nabla E(x)` of size ``dt``."""
    grad = jax.grad(loss)

    def step(x, _):
        k1 = -grad(x)
        k2 = -grad(x + 0.5 * dt * k1)
        k3 = -grad(x + 0.5 * dt * k2)
        k4 = -grad(x + dt * k3)
        return x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

    return jax.lax.scan(step, theta, None, length=steps)[0]


def _phi(loss, theta, flow_time, rk4_steps, newton_steps, null_tol, codim):
    lam1 = jnp.linalg.eigvalsh(hessian(loss, theta))[-1]
    dt = flow_time / rk4_steps
    theta = _gradient_flow_rk4(loss, theta, dt / lam1, rk4_steps)
    return _retract(loss, null_tol, codim, 0, newton_steps, theta)


def project_to_manifold(
    loss,
    theta,
    *,
    flow_time: float = 100.0,
    rk4_steps: int = 4000,
    newton_steps: int = 4,
    codim: int | None = None,
    null_tol: float = NULL_TOL,
    loss_min: float = 0.0,
) -> Projection:
    r"""The gradient-flow projection :math:`\Phi(\theta)` onto the manifold of minimisers (dense Hessians).

    :math:`\Phi` is computed as the gradient flow :math:`\dot x = -\nabla E(x)` from :math:`\theta`
    for the time :math:`T` = ``flow_time`` :math:`/\lambda_1(\theta)` by ``rk4_steps`` classical
    Runge–Kutta steps (:math:`\lambda_1\,dt = 0.025` by default: 1e-10 on the scalar factorisation),
    then ``newton_steps`` Newton steps on :math:`\nabla E = 0` restricted to the normal space (the top
    ``codim`` eigenvectors, or those with eigenvalues above ``null_tol`` :math:`\lambda_1`).
    The flow contracts the normal offset
    :math:`r` to :math:`r e^{-\mu T}` (:math:`\mu` the smallest nonzero eigenvalue); Newton's step
    then differs from :math:`\Phi` by :math:`O(r^2 e^{-2\mu T})`. Check ``grad_norm``: if the flow
    time was too short for :math:`\mu`, Newton's method did the rest and the result is a retraction
    close to, not equal to, :math:`\Phi`.

    Args:
      loss: :math:`E` of a flat vector, smooth (three derivatives).
      theta: one point, shape ``(d,)``.
      flow_time: :math:`\lambda_1(\theta) T`, the flow time in units of the fastest time scale.
      rk4_steps, newton_steps: the work of the two stages.
      codim: the codimension of :math:`\Gamma` (the Hessian's rank there), if known.
      null_tol: without ``codim``, eigenvalues at most ``null_tol`` :math:`\lambda_1` count as zero (tangent).
      loss_min: :math:`E_* = \min E`, subtracted in the reported residual.

    Returns:
      A :class:`~gdflows.Projection`: the point, :math:`E - E_*` and :math:`\|\nabla E\|` there.

    Example:
      >>> import jax.numpy as jnp, gdflows as gf
      >>> p = gf.flows.project_to_manifold(lambda th: 0.25 * (th[0] * th[1] - 1) ** 2, jnp.array([2.0, 2.0]))
      >>> round(float(p.theta[0] * p.theta[1]), 12), float(p.theta[0] - p.theta[1])  # on ab = 1, a = b by symmetry
      (1.0, 0.0)
    """
    flow_time = check_number("flow_time", flow_time)
    rk4_steps = check_positive_int("rk4_steps", rk4_steps)
    newton_steps = check_positive_int("newton_steps", newton_steps, example="newton_steps=4")
    null_tol = check_number("null_tol", null_tol)
    codim = None if codim is None else check_positive_int("codim", codim, example="codim=1")
    point = _phi_jit(loss, jnp.asarray(theta), flow_time, rk4_steps, newton_steps, null_tol, codim)
    return Projection(point, loss(point) - loss_min, jnp.linalg.norm(jax.grad(loss)(point)))


_phi_jit = eqx.filter_jit(_phi)  # the loss traced through its arrays (a Partial) or static (a function)


def _manifold_field(loss, scale, power, null_tol, codim, krylov_dim, t, theta):
    r""":math:`dX/dt = -\text{scale}\; P_T\nabla\lambda_1/\lambda_1^{\text{power}}`."""
    values, vectors, normal = _spectrum(loss, theta, null_tol, codim, krylov_dim)
    lam1, u1 = _top(values, vectors)
    grad_lam1 = third_derivative_vv(loss, theta, u1)
    return -scale * _tangent(vectors, normal, grad_lam1) / lam1**power


def _manifold_flow(name, loss, lr, coefficient, power, spectrum, codim, null_tol, krylov_dim, newton_steps):
    h = check_lr(lr)
    if spectrum not in ("dense", "lanczos"):
        raise ValueError(f"spectrum must be 'dense' or 'lanczos', got spectrum={spectrum!r}.")
    if codim is not None:
        codim = check_positive_int("codim", codim, example="codim=5")
    if spectrum == "lanczos":
        if codim is None:
            raise ValueError(
                "spectrum='lanczos' needs the codimension of the manifold of minimisers (the rank of the Hessian "
                "there, e.g. the number of training examples of an interpolating model): pass codim=k, or use "
                "spectrum='dense'."
            )
        krylov_dim = check_positive_int("krylov_dim", krylov_dim, example="krylov_dim=64")
        if codim > krylov_dim:
            raise ValueError(f"codim must be at most krylov_dim={krylov_dim}, got codim={codim}; raise krylov_dim.")
    else:
        krylov_dim = 0
    null_tol = check_number("null_tol", null_tol)
    newton_steps = check_positive_int("newton_steps", newton_steps, example="newton_steps=2")

    def init(theta0):
        check_smooth(loss, theta0)
        return project_to_manifold(loss, theta0, codim=codim, null_tol=null_tol).theta

    field = bind(_manifold_field, loss, jnp.asarray(h * coefficient), jnp.asarray(power), null_tol, codim, krylov_dim)
    return Flow(
        name=name,
        lr=h,
        loss=loss,
        init=precision_checked(name, init),
        vector_field=field,
        position=_identity,
        after_step=bind(_retract, loss, null_tol, codim, krylov_dim, newton_steps),
    )


def _identity(theta):
    return theta


_DOC_ARGS = r"""
    Args:
      loss: the loss :math:`E(\theta)`, smooth (three derivatives: ``init`` refuses ReLU, ``abs``, ...).
      lr: the step :math:`\eta` of the run it models; the field is :math:`\eta\,dX/d\tau`, so
        :func:`gdflows.solve` with ``steps=N`` gives :math:`X(\tau = \eta^2 N)`, aligned with step :math:`N`.
      spectrum: ``"dense"`` (``eigh`` of the dense Hessian: :math:`d` Hessian-vector products) or
        ``"lanczos"`` (the top ``codim`` eigenpairs from ``krylov_dim`` Lanczos steps: for a small
        codimension at any :math:`d`). The normal space is spanned by the top ``codim`` eigenvectors
        :math:`V`, :math:`P_T = I - VV^\top`.
      codim: the rank of :math:`H` on :math:`\Gamma` (the codimension of :math:`\Gamma`); needed by
        ``"lanczos"``. With ``"dense"`` and ``codim`` None, the eigenvalues above ``null_tol``
        :math:`\lambda_1` are taken as normal instead (:data:`NULL_TOL`: give ``codim`` where it is known,
        the field is then smooth).
      null_tol: relative tolerance for a zero eigenvalue (``"dense"`` without ``codim``).
      krylov_dim: Lanczos steps (``"lanczos"``).
      newton_steps: normal-space Newton steps after every solver step (the retraction to :math:`\Gamma`).
      args: extra arguments of the loss.

    ``init(theta0)`` is :math:`\Phi(\theta_0)` (:func:`project_to_manifold`); the state is the point
    :math:`X` itself. Cost per evaluation: one spectrum (dense or Lanczos) and one third-derivative
    product; the retraction adds ``newton_steps`` spectra and gradients per solver step.
"""


@flow_factory
def normalized_gd_flow(
    loss,
    *,
    lr: float,
    spectrum: Literal["dense", "lanczos"] = "dense",
    codim: int | None = None,
    null_tol: float = NULL_TOL,
    krylov_dim: int = 64,
    newton_steps: int = 2,
) -> Flow:
    return _manifold_flow("NGD flow", loss, lr, 0.25, 1.0, spectrum, codim, null_tol, krylov_dim, newton_steps)


normalized_gd_flow.__doc__ = (
    r"""The limiting flow of normalized GD, :math:`dX/d\tau = -\tfrac14 P_T\nabla\log\lambda_1(X)` on :math:`\Gamma`.
"""
    + _DOC_ARGS
    + r"""
    Example:
      >>> import jax.numpy as jnp, gdflows as gf
      >>> flow = gf.flows.normalized_gd_flow(lambda th: 0.25 * (th[0] * th[1] - 1) ** 2, lr=0.1)
      >>> x = jnp.array([2.0, 0.5])  # on ab = 1; da/dtau = -a^3 (a^4 - 1) / (2 (a^4 + 1)^2)
      >>> round(float(flow.vector_field(0.0, x)[0]) / 0.1, 9), round(-8 * 15 / (2 * 17**2), 9)
      (-0.207612457, -0.207612457)
"""
)


@flow_factory
def sqrt_loss_flow(
    loss,
    *,
    lr: float,
    spectrum: Literal["dense", "lanczos"] = "dense",
    codim: int | None = None,
    null_tol: float = NULL_TOL,
    krylov_dim: int = 64,
    newton_steps: int = 2,
) -> Flow:
    return _manifold_flow("√L flow", loss, lr, 0.125, 0.0, spectrum, codim, null_tol, krylov_dim, newton_steps)


sqrt_loss_flow.__doc__ = (
    r"""The limiting flow of GD on :math:`\sqrt{E - E_*}`,
    :math:`dX/d\tau = -\tfrac18 P_T\nabla\lambda_1(X)` on :math:`\Gamma`.
"""
    + _DOC_ARGS
    + r"""
    Example:
      >>> import jax.numpy as jnp, gdflows as gf
      >>> flow = gf.flows.sqrt_loss_flow(lambda th: 0.25 * (th[0] * th[1] - 1) ** 2, lr=0.1)
      >>> x = jnp.array([2.0, 0.5])  # on ab = 1; da/dtau = -a (a^4 - 1) / (8 (a^4 + 1))
      >>> round(float(flow.vector_field(0.0, x)[0]) / 0.1, 9), round(-2 * 15 / (8 * 17), 9)
      (-0.220588235, -0.220588235)
"""
)
