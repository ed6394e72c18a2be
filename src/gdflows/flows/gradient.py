r"""Negative gradient flow (NGF), :math:`\dot\theta = -\nabla E(\theta)`."""

from __future__ import annotations

import jax

from gdflows._checks import check_lr
from gdflows.flows._base import Flow, bind, flow_factory, parameter_flow


@flow_factory
def gradient_flow(loss, *, lr: float) -> Flow:
    r"""Negative gradient flow :math:`\dot\theta = -\nabla E(\theta)`, the :math:`h \to 0` limit of GD.

    On :math:`E = \tfrac12\theta^\top A\theta` its solution is :math:`\theta(t) = e^{-tA}\theta_0`:
    no oscillation and no divergence, whatever the learning rate of the GD it is compared with.

    Args:
      loss: the loss :math:`E(\theta)`.
      lr: the learning rate :math:`h` of the GD it is compared with. The field does not depend
        on it, but the times it is read at do: :func:`gdflows.solve` returns it at :math:`t_n = nh`.
      args: extra arguments of the loss, ``loss(theta, *args)`` (e.g. a batch), held fixed.

    Cost per evaluation: one gradient; cheap at any size.

    Example:
      >>> import jax.numpy as jnp, gdflows as gf
      >>> flow = gf.gradient_flow(lambda th: 0.5 * jnp.sum(th**2), lr=0.1)
      >>> flow.name, flow.lr
      ('NGF', 0.1)
      >>> [float(v) for v in flow.vector_field(0.0, flow.init(jnp.array([1.0, -2.0])))]  # -grad E = -theta
      [-1.0, 2.0]
    """
    h = check_lr(lr)
    return parameter_flow("NGF", loss, bind(_negative_gradient, loss), lr=h)


def _negative_gradient(loss, theta):
    return -jax.grad(loss)(theta)
