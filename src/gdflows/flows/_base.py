"""The common face of every flow.

A flow is a small value in the optax style: a factory closes over the loss and
hyperparameters and returns a :class:`Flow` of pure functions. The solver only
ever calls these, so flows with extra state (a complex part, an eigenvector
estimate, a rod's half-length) plug into the same :func:`gdflows.solve`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

State = Any  # a pytree of real arrays


class Flow(NamedTuple):
    r"""An ODE :math:`\dot s = F(t, s)` on a state :math:`s` that carries parameters :math:`\theta`.

    Attributes:
      name: short label for tables and legends.
      loss: the loss :math:`E` the flow was built from.
      init: ``theta0 -> state``; may check the loss eagerly (e.g. holomorphy).
      vector_field: ``(t, state) -> d state / dt``, pure and traceable.
      position: ``state -> theta``, the real parameters the state stands for.
    """

    name: str
    loss: Callable[[jax.Array], jax.Array]
    init: Callable[[jax.Array], State]
    vector_field: Callable[[Any, State], State]
    position: Callable[[State], jax.Array]


def parameter_flow(name: str, loss, field: Callable[[jax.Array], jax.Array]) -> Flow:
    r"""A flow whose state is just :math:`\theta`: :math:`\dot\theta = F(\theta)`."""
    return Flow(
        name=name,
        loss=loss,
        init=lambda theta0: theta0,
        vector_field=lambda t, theta: field(theta),
        position=lambda theta: theta,
    )
