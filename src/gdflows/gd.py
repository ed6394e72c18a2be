r"""Discrete gradient descent: the ground truth every flow is compared with.

GD with learning rate :math:`h` maps :math:`\theta_{n+1} = \theta_n - h\nabla E(\theta_n)`.
Step :math:`n` sits at time :math:`t_n = nh`, so a flow and GD are compared at the
same :math:`t`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gdflows._checks import DivergenceWarning, check_lr, check_steps, check_theta0

Loss = Callable[[jax.Array], jax.Array]


class Trajectory(NamedTuple):
    """Parameters and loss at the times :math:`t_n = nh` of a GD run or a flow.

    If the run left the region where the loss is finite, the arrays stop at the
    last finite entry and ``stopped_at`` holds the time of the first non-finite one.
    """

    t: np.ndarray  # (n+1,) times t_n = n h
    theta: np.ndarray  # (n+1, d) parameters at t_n
    loss: np.ndarray  # (n+1,) loss at t_n
    stopped_at: float | None = None  # time of the first non-finite value, if any
    info: dict | None = None  # solver statistics for flows; None for GD

    @property
    def diverged(self) -> bool:
        """Whether the run stopped at a non-finite value."""
        return self.stopped_at is not None


class GDScan(NamedTuple):
    """Raw output of :func:`gd_scan`: fixed-length arrays, safe under ``vmap``."""

    theta: jax.Array  # (steps+1, d); frozen at the last finite iterate after a divergence
    loss: jax.Array  # (steps+1,); +inf from the first non-finite step on
    finite_steps: jax.Array  # number of steps completed with a finite loss and iterate


def gd_scan(loss: Loss, theta0: jax.Array, lr: float, steps: int) -> GDScan:
    """GD as one ``lax.scan``, jit- and vmap-friendly.

    Once a loss or iterate is non-finite the iterate stops moving, so a batch of
    runs can be vectorised even when some of them diverge.
    """
    value_and_grad = jax.value_and_grad(loss)

    def step(carry, _):
        theta, alive, count = carry
        value, grad = value_and_grad(theta)
        new = theta - lr * grad
        ok = alive & jnp.isfinite(value) & jnp.all(jnp.isfinite(new))
        theta_next = jnp.where(ok, new, theta)
        recorded = jnp.where(alive & jnp.isfinite(value), value, jnp.inf)
        return (theta_next, ok, count + ok.astype(jnp.int32)), (theta, recorded)

    init = (theta0, jnp.array(True), jnp.array(0, jnp.int32))
    (last, alive, count), (thetas, losses) = jax.lax.scan(step, init, None, length=steps)
    final_loss = jnp.where(alive, loss(last), jnp.inf)
    thetas = jnp.concatenate([thetas, last[None]], axis=0)
    losses = jnp.concatenate([losses, final_loss[None]], axis=0)
    return GDScan(thetas, losses, count)


_gd_scan_jit = jax.jit(gd_scan, static_argnums=(0, 3))


def gd(loss: Loss, theta0, *, lr: float, steps: int) -> Trajectory:
    r"""Run gradient descent :math:`\theta_{n+1} = \theta_n - h\nabla E(\theta_n)`.

    Args:
      loss: pure function :math:`E` of a flat parameter vector, returning a scalar.
      theta0: initial parameters, a 1-D float array.
      lr: learning rate :math:`h > 0`.
      steps: number of steps :math:`N \ge 0`.

    Returns:
      A :class:`Trajectory` with ``theta[n]`` :math:`= \theta_n` and
      ``loss[n]`` :math:`= E(\theta_n)` at ``t[n]`` :math:`= nh`. A run whose loss
      or iterate becomes non-finite stops there: the arrays hold the finite part,
      ``stopped_at`` the time of the first non-finite value, and a
      :class:`DivergenceWarning` names the step. A divergence is data to plot, not
      an error.

    Example:
      >>> import jax.numpy as jnp
      >>> run = gd(lambda th: 0.5 * jnp.sum(th**2), jnp.ones(2), lr=0.5, steps=3)
      >>> [float(v) for v in run.theta[:, 0]]
      [1.0, 0.5, 0.25, 0.125]
    """
    lr = check_lr(lr)
    steps = check_steps(steps)
    theta0 = check_theta0(theta0)
    out = _gd_scan_jit(loss, theta0, lr, steps)
    theta, losses = np.asarray(out.theta), np.asarray(out.loss)
    t = lr * np.arange(steps + 1)
    finite = np.isfinite(losses) & np.all(np.isfinite(theta), axis=1)
    if finite.all():
        return Trajectory(t, theta, losses)
    first_bad = int(np.argmin(finite))
    warnings.warn(
        f"GD with lr={lr} produced a non-finite loss at step {first_bad} (t = {t[first_bad]:.6g}); "
        f"the trajectory of steps 0..{first_bad - 1} is returned. Lower lr to stay stable.",
        DivergenceWarning,
        stacklevel=2,
    )
    return Trajectory(t[:first_bad], theta[:first_bad], losses[:first_bad], stopped_at=float(t[first_bad]))
