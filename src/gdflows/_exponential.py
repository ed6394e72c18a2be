r"""An exponential Runge–Kutta integrator shaped like the principal flow (``solve(..., solver="exponential")``).

The PF is :math:`\dot\theta = F(\theta) = \frac{\log(I - hH)}{hH}\nabla E`. At the start
:math:`\theta_n` of a step freeze its linear part :math:`A = \log(I - hH(\theta_n))/h` and write

.. math:: \dot w = A w + N(\theta_n + w), \qquad w = \theta - \theta_n,
          \qquad N(\theta) = F(\theta) - A(\theta - \theta_n).

The linear part is integrated exactly, :math:`e^{dt A} = (I - hH_n)^{dt/h}`, and the remainder
:math:`N` by the fourth-order exponential Runge–Kutta method of Cox & Matthews (2002, ETDRK4),
with the :math:`\varphi`-functions :math:`\varphi_1(z) = (e^z - 1)/z`,
:math:`\varphi_2(z) = (e^z - 1 - z)/z^2`, :math:`\varphi_3(z) = (e^z - 1 - z - z^2/2)/z^3`
applied through the same eigendecomposition of :math:`H(\theta_n)` as the field itself:

.. math::
   X_2 &= \theta_n + \tfrac{dt}{2}\varphi_1(\tfrac{dt}{2}A)N_1, \quad
   X_3 = \theta_n + \tfrac{dt}{2}\varphi_1(\tfrac{dt}{2}A)N_2, \\
   X_4 &= \theta_n + e^{\frac{dt}{2}A}(X_2 - \theta_n) + \tfrac{dt}{2}\varphi_1(\tfrac{dt}{2}A)(2N_3 - N_1), \\
   \theta_{n+1} &= \theta_n + dt\,[(\varphi_1 - 3\varphi_2 + 4\varphi_3)N_1
                 + 2(\varphi_2 - 2\varphi_3)(N_2 + N_3) + (4\varphi_3 - \varphi_2)N_4],

with :math:`N_i = N(X_i)`, :math:`N_1 = F(\theta_n)` and the :math:`\varphi_k` at :math:`dt\,A`.
The embedded third-order solution replaces :math:`N_4` by :math:`N_5 = N(\theta_{n+1})` (first
same as last: :math:`F(\theta_{n+1})` and :math:`A` there start the next step). At :math:`A = 0` its
weights are :math:`(1/6, 1/3, 1/3, 0, 1/6)`, a third-order Runge–Kutta rule on RK4's stages and the
end point. Their difference :math:`dt\,(4\varphi_3 - \varphi_2)(dtA)(N_4 - N_5) = O(dt^4)` is the
error estimate of the step-size control: accept if its weighted RMS norm, with weights
``atol + rtol * max(|θ_n|, |θ_{n+1}|)``, is at most 1; next step
:math:`dt \cdot \min(5, \max(0.2, 0.9\,\mathrm{err}^{-1/4}))`; the solution carried on is the
fourth-order one.

Why this shape: with :math:`dt = h` the exponential Euler step
:math:`\theta_n + h\varphi_1(hA)F(\theta_n) = \theta_n - h\nabla E(\theta_n)` is GD's step on any
loss, and on a quadratic :math:`N` is constant, so every stage is exact and the step is the
exact flow for any :math:`dt` (the estimate is zero and the steps are one GD step each). Off
quadratics the PF's departure from GD enters through :math:`N` alone. For the complex PF the
state is :math:`z` (complex arithmetic), :math:`A` is taken on the flow's branch of the logarithm
and :math:`e^{hA} = I - hH` on every branch.

Cost: four field evaluations per attempted step (a Hessian and an eigendecomposition each, on
the dense route), three at the stages and one at its end, plus one at the start.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax.tree_util import Partial

from gdflows import spectral
from gdflows._results import FlowScan


class DenseLinearPart(NamedTuple):
    r"""The frozen linear part :math:`A = V\,\mathrm{diag}(\mu)\,V^{-1}` of a flow at a point."""

    rates: jax.Array  # (d,) eigenvalues mu_i of A (for the PF: log(1 - h lambda_i) / h)
    vectors: jax.Array  # (d, d) eigenvectors V, in columns
    inverse: jax.Array  # (d, d) V^{-1} (V^T for a real symmetric H)

    def apply(self, g: Callable[[jax.Array], jax.Array], v: jax.Array) -> jax.Array:
        r""":math:`g(A)v = V\,\mathrm{diag}(g(\mu))\,V^{-1}v`."""
        return self.vectors @ (g(self.rates) * (self.inverse @ v))


# below this |z| the phi-functions are summed from their series (31 terms: exact to round-off);
# above it the recursion phi_{k+1} = (phi_k - 1/k!)/z loses at most ~8 eps at |z| = 0.5
_PHI_SERIES = 0.5


def phi_functions(z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    r""":math:`(\varphi_0, \dots, \varphi_3)(z)` elementwise; :math:`\varphi_k(z) = \sum_j z^j/(j+k)!`."""
    small = jnp.abs(z) < _PHI_SERIES
    safe = jnp.where(small, jnp.ones_like(z), z)
    e = jnp.exp(safe)
    p1 = (e - 1.0) / safe
    p2 = (p1 - 1.0) / safe
    p3 = (p2 - 0.5) / safe
    series = []
    for k in (1, 2, 3):  # Horner on sum_j z^j / (j + k)!, 30 terms
        total = jnp.zeros_like(z)
        for j in range(30, -1, -1):
            total = total * z + 1.0 / math.factorial(j + k)
        series.append(total)
    return (
        jnp.exp(z),
        jnp.where(small, series[0], p1),
        jnp.where(small, series[1], p2),
        jnp.where(small, series[2], p3),
    )


def etdrk4_step(parts: Callable, x: jax.Array, field: jax.Array, linear, dt):
    r"""One Cox–Matthews ETDRK4 step of size ``dt`` from ``x``, with its error estimate (module docstring).

    ``parts(x) -> (F(x), linear part)``; ``field`` :math:`= F(x)` and ``linear`` (with an
    ``apply(g, v)`` for :math:`g(A)v`) are the step start's. Returns the new point
    :math:`\theta_{n+1}`, its field and linear part (the next step's start) and the error estimate
    :math:`dt\,(4\varphi_3 - \varphi_2)(dt A)\,(N_4 - N_5)`; four field evaluations.
    """

    def remainder(point, value):
        return value - linear.apply(lambda mu: mu, point - x)

    half = lambda v: linear.apply(lambda mu: 0.5 * dt * phi_functions(0.5 * dt * mu)[1], v)  # noqa: E731

    def weights(mu):
        _, p1, p2, p3 = phi_functions(dt * mu)
        return dt * (p1 - 3.0 * p2 + 4.0 * p3), dt * 2.0 * (p2 - 2.0 * p3), dt * (4.0 * p3 - p2)

    n1 = field
    x2 = x + half(n1)
    n2 = remainder(x2, parts(x2)[0])
    x3 = x + half(n2)
    n3 = remainder(x3, parts(x3)[0])
    x4 = x + linear.apply(lambda mu: jnp.exp(0.5 * dt * mu), x2 - x) + half(2.0 * n3 - n1)
    n4 = remainder(x4, parts(x4)[0])
    new = x + linear.apply(lambda mu: weights(mu)[0], n1) + linear.apply(lambda mu: weights(mu)[1], n2 + n3)
    new = new + linear.apply(lambda mu: weights(mu)[2], n4)
    field_new, linear_new = parts(new)
    error = linear.apply(lambda mu: weights(mu)[2], n4 - remainder(new, field_new))
    return new, (field_new, linear_new), error


class ExponentialMethod(NamedTuple):
    r"""How ``solve(..., solver="exponential")`` steps a flow: a flow's ``exponential`` hook.

    ``start(x)`` is what a step from :math:`x` needs (the field and the frozen linear part there);
    a step returns the next point's ``start`` too (first same as last), so an accepted step's end
    starts the next step.
    """

    start: Callable[[jax.Array], Any]  # x -> cache
    step: Callable[[jax.Array, Any, jax.Array], tuple[jax.Array, Any, jax.Array]]  # (x, cache, dt) -> (x', cache', err)
    order: int  # the error estimate is O(dt^order): the step-size factor is err^(-1/order)
    evaluations: int  # per attempted step: field evaluations, or Krylov runs that cost as much


def etdrk4(parts: Callable[[jax.Array], tuple[jax.Array, Any]]) -> ExponentialMethod:
    r"""Adaptive ETDRK4 (:func:`etdrk4_step`) on ``parts(x) -> (F(x), linear part with apply(g, v) = g(A)v)``."""
    return ExponentialMethod(parts, Partial(_etdrk4_step, parts), order=4, evaluations=4)


def _etdrk4_step(parts, x, cache, dt):
    return etdrk4_step(parts, x, *cache, dt)


def krylov_etd2(
    gradient_and_operator: Callable[[jax.Array], tuple[jax.Array, Callable]],
    coefficient: Callable[[jax.Array], jax.Array],
    rate: Callable[[jax.Array], jax.Array],
    m: int,
    symmetric: str,
    tol: float | None = None,
) -> ExponentialMethod:
    r"""Adaptive exponential Runge–Kutta of order 2 (Cox & Matthews' ETD2RK) for :math:`F = c(H)\nabla E`, by Lanczos.

    ``gradient_and_operator(x) -> (∇E(x), v ↦ H(x)v)``; ``m`` is the Krylov dimension (the most,
    with ``tol``: see :func:`gdflows.spectral.krylov_apply`); ``coefficient`` and ``rate`` are the
    field's :math:`c(\lambda)` and the linear part's :math:`a(\lambda)` (the PF's
    :math:`\log(1 - h\lambda)/(h\lambda)` and :math:`\log(1 - h\lambda)/h`, or their real parts),
    elementwise on eigenvalues :math:`\lambda` of :math:`H`. The linear part :math:`A = a(H_n)` is
    frozen at the step's start :math:`\theta_n`, and every function of it is applied by Lanczos
    on Hessian-vector products at :math:`\theta_n` (``m`` steps, :func:`gdflows.spectral.lanczos`).
    A step of size :math:`dt`:

    .. math::
       a &= \theta_n + dt\,\varphi_1(dtA)F_n, \qquad
       \theta_{n+1} = a + dt\,\varphi_2(dtA)\,\big(F(a) - A(a - \theta_n) - F_n\big),

    with :math:`F_n = c(H_n)\nabla E_n`. Since :math:`F_n`, :math:`a - \theta_n` and
    :math:`A(a - \theta_n) = (e^{dtA} - I)F_n` are all functions of :math:`H_n` applied to
    :math:`\nabla E_n`, the Krylov space :math:`\mathcal K_m(H_n, \nabla E_n)` that gives the field
    holds them all. A step costs three Lanczos runs (``3m`` Hessian-vector products and three
    gradients): the field at :math:`a`, :math:`\varphi_2(dtA)` on the bracket, and the field at
    :math:`\theta_{n+1}` (the next step's start). The error estimate is the correction
    :math:`dt\,\varphi_2(dtA)(\dots) = O(dt^2)`, the local error of the exponential Euler step
    :math:`a`; the solution carried on is the second-order one. With :math:`dt = h` the
    exponential Euler step of the PF is GD's step, and on a quadratic the bracket vanishes, so
    the method is exact there (to the Krylov error) for a step of any length.
    """
    start = Partial(_krylov_start, gradient_and_operator, coefficient, m, symmetric, tol)
    step = Partial(_krylov_etd2_step, gradient_and_operator, coefficient, rate, m, symmetric, tol)
    return ExponentialMethod(start, step, order=2, evaluations=3)


def _krylov_start(gradient_and_operator, coefficient, m, symmetric, tol, x):
    """The Lanczos decomposition of :math:`H(x)` from :math:`\nabla E(x)`: the field there, and every function of
    the frozen linear part applied to the gradient (``tol``: stop once the field has settled to it)."""
    g, operator = gradient_and_operator(x)
    converged = None if tol is None else spectral.settled(coefficient, tol, symmetric)
    return spectral.lanczos(operator, g, m, converged=converged)


def _krylov_etd2_step(gradient_and_operator, coefficient, rate, m, symmetric, tol, x, cache, dt):
    """One step of :func:`krylov_etd2` from ``x`` (``cache``: its Lanczos decomposition) of size ``dt``."""
    start = functools.partial(_krylov_start, gradient_and_operator, coefficient, m, symmetric, tol)
    at_x = spectral.functions_of(cache, symmetric)
    field = at_x(coefficient)
    a = x + at_x(lambda lam: dt * phi_functions(dt * rate(lam))[1] * coefficient(lam))
    a_image = at_x(lambda lam: jnp.expm1(dt * rate(lam)) * coefficient(lam))  # A (a - x) = (e^{dt A} - I) F_n
    field_a = spectral.functions_of(start(a), symmetric)(coefficient)
    _, operator = gradient_and_operator(x)
    bracket = field_a - a_image - field
    phi2 = lambda lam: phi_functions(dt * rate(lam))[2]  # noqa: E731
    correction = dt * spectral.krylov_apply(operator, bracket, phi2, m, symmetric=symmetric, tol=tol)
    new = a + correction
    return new, start(new), correction


# stop codes, as in gdflows._solve.STOP_KINDS: 0 finished, 1 non-finite, 3 step-size collapse, 4 budget
_RUNNING, _NON_FINITE, _COLLAPSE, _BUDGET = 0, 1, 3, 4
# a step below this fraction of the save interval ends the solve as a step-size collapse
MIN_STEP = 1e-12


def _finite(tree) -> jax.Array:
    """Every entry of every floating leaf of ``tree`` finite."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves))


def _point(state):
    return jax.lax.complex(state[0], state[1]) if isinstance(state, tuple) else state


def _as_state(x, like):
    return (jnp.real(x), jnp.imag(x)) if isinstance(like, tuple) else x


@eqx.filter_jit
def integrate_exponential(
    method: ExponentialMethod, position, loss, state0, *, ts: jax.Array, rtol: float, atol: float, max_steps: int
) -> tuple[FlowScan, jax.Array]:
    r"""Integrate :math:`\dot x = F(x)` by an adaptive exponential ``method`` from ``state0`` onto each time of ``ts``.

    ``method`` is the flow's ``exponential`` hook (:func:`etdrk4` or :func:`krylov_etd2`), on the
    point :math:`x` (complex :math:`z` for a state ``(Re z, Im z)``). The first step is one save
    interval. Returns a :class:`~gdflows.FlowScan` (entries after a failure non-finite,
    ``stop_kind`` 0 finished, 1 non-finite, 3 step-size collapse, 4 budget) and the number of
    field evaluations.
    """
    x0 = _point(state0)
    interval = ts[1] - ts[0] if ts.shape[0] > 1 else jnp.ones((), ts.dtype)
    cache0 = method.start(x0)
    saved0 = jnp.full((ts.shape[0], *x0.shape), jnp.nan, x0.dtype).at[0].set(x0)
    status0 = jnp.where(_finite(cache0), _RUNNING, _NON_FINITE)
    carry0 = (1, ts[0], x0, cache0, interval, saved0, 0, 0, 1, status0)

    def cond(carry):
        k, status = carry[0], carry[-1]
        return (k < ts.shape[0]) & (status == _RUNNING)

    def body(carry):
        k, t, x, cache, dt, saved, accepted, rejected, evaluations, _ = carry
        target = ts[k]
        lands = dt >= target - t
        step = jnp.where(lands, target - t, dt)
        new, cache_new, error = method.step(x, cache, step)
        scale = atol + rtol * jnp.maximum(jnp.abs(x), jnp.abs(new))
        err = jnp.sqrt(jnp.mean(jnp.abs(error / scale) ** 2))
        ok = jnp.isfinite(err) & (err <= 1.0) & jnp.all(jnp.isfinite(new))
        factor = jnp.where(err == 0.0, 5.0, jnp.clip(0.9 * err ** (-1.0 / method.order), 0.2, 5.0))
        factor = jnp.where(jnp.isfinite(err), factor, 0.2)
        cache = jax.tree.map(lambda a, b: jnp.where(ok, a, b), cache_new, cache)
        x = jnp.where(ok, new, x)
        landed = ok & lands
        t = jnp.where(ok, jnp.where(lands, target, t + step), t)
        saved = jnp.where(landed, saved.at[k].set(x), saved)
        accepted, rejected = accepted + ok, rejected + (~ok)
        evaluations = evaluations + method.evaluations
        dt = step * factor
        status = jnp.where(ok & ~_finite(cache), _NON_FINITE, _RUNNING)
        status = jnp.where((status == _RUNNING) & (dt < MIN_STEP * interval), _COLLAPSE, status)
        status = jnp.where((status == _RUNNING) & (accepted + rejected >= max_steps), _BUDGET, status)
        return k + landed, t, x, cache, dt, saved, accepted, rejected, evaluations, status

    k, _, _, _, _, saved, accepted, rejected, evaluations, status = jax.lax.while_loop(cond, body, carry0)
    finished = k == ts.shape[0]
    status = jnp.where(finished & (status == _BUDGET), _RUNNING, status)  # the budget ran out on the last step
    states = jax.vmap(lambda x: _as_state(x, state0))(saved)
    positions = jax.vmap(position)(states)
    losses = jax.vmap(loss)(positions)
    scan = FlowScan(
        theta=positions,
        loss=losses,
        state=states,
        successful=finished,
        accepted_steps=accepted,
        rejected_steps=rejected,
        result=diffrax.RESULTS.where(status == _BUDGET, diffrax.RESULTS.max_steps_reached, diffrax.RESULTS.successful),
        stop_kind=jnp.where(finished & jnp.all(jnp.isfinite(losses)), 0, jnp.where(status == 0, 1, status)),
    )
    return scan, evaluations
