r"""Modified flows of backward error analysis: the IGR flow and the third-order flow.

Backward error analysis seeks a flow :math:`\dot\theta = f_0 + h f_1 + h^2 f_2 + \dots`
whose time-:math:`h` map agrees with one GD step to a given order in :math:`h`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gdflows._checks import check_choice, check_lr
from gdflows.flows._base import Flow, bind, flow_factory, parameter_flow
from gdflows.spectral import hvp, third_derivative_vv


@flow_factory
def modified_flow(loss, *, lr: float, order: int = 1) -> Flow:
    r"""The modified flow of GD truncated after :math:`h^{\text{order}}`.

    * ``order=1`` — the implicit-gradient-regularisation (IGR) flow of Barrett & Dherin (2021),
      :math:`\dot\theta = -\nabla E - \tfrac h2 H\nabla E = -\nabla\big(E + \tfrac h4\|\nabla E\|^2\big)`.
    * ``order=2`` — the third-order modified flow,
      :math:`\dot\theta = -\big(\nabla E + \tfrac h2 H\nabla E + h^2\big(\tfrac13 H^2\nabla E
      + \tfrac1{12}\nabla^3E[\nabla E, \nabla E]\big)\big)`, whose time-:math:`h` map matches a
      GD step up to :math:`O(h^4)`.

    On a quadratic the third derivative vanishes and both are truncations of the
    principal flow's series :math:`-\sum_k \tfrac{h^k}{k+1}H^k\nabla E`.

    Args:
      loss: the loss :math:`E(\theta)`.
      lr: the learning rate :math:`h` of the GD being modelled.
      args: extra arguments of the loss, ``loss(theta, *args)`` (e.g. a batch), held fixed.
      order: 1 (IGR) or 2 (third order).

    Cost per evaluation: ``order=1``, one gradient and one Hessian-vector product; ``order=2``,
    one gradient, two Hessian-vector products and one third-derivative product
    :math:`\nabla^3E[\nabla E, \nabla E]` (a Hessian-vector product differentiated once more).
    No dense Hessian: fine for networks.

    Example:
      On :math:`E = \tfrac a2\theta^2` the fields are :math:`-(1 + \tfrac{ha}2)a\theta` and
      :math:`-(1 + \tfrac{ha}2 + \tfrac{(ha)^2}3)a\theta` (here :math:`a = 2`, :math:`h = 0.1`):

      >>> import jax.numpy as jnp, gdflows as gf
      >>> loss = lambda th: jnp.sum(th**2)
      >>> theta = jnp.array([1.0])
      >>> [round(float(gf.modified_flow(loss, lr=0.1, order=k).vector_field(0.0, theta)[0]), 12) for k in (1, 2)]
      [-2.2, -2.226666666667]
    """
    h = check_lr(lr)
    check_choice("order", order, (1, 2))  # 1: the IGR flow, 2: the third-order flow; order=True is refused
    return parameter_flow("IGR" if order == 1 else "MF3", loss, bind(_field, loss, jnp.asarray(h), order), lr=h)


def _field(loss, h, order: int, theta):
    g = jax.grad(loss)(theta)
    hg = hvp(loss, theta, g)
    velocity = g + 0.5 * h * hg
    if order == 2:
        h2g = hvp(loss, theta, hg)
        velocity = velocity + h**2 * (h2g / 3.0 + third_derivative_vv(loss, theta, g) / 12.0)
    return -velocity
