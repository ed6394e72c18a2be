r"""The rod flow: GD's consecutive iterates as one segment, moving in continuous time.

Derived here from the description of Regis & Chewi (2026); it may differ from the published equations,
which could not be read where this library was written (see the book page *The rod flow*).

Two consecutive GD iterates span a *rod* with centre :math:`c` and half-length vector
:math:`\delta`. Take the ends as :math:`\theta_n = c - \delta` and :math:`\theta_{n+1} = c + \delta`;
GD moves the rod to :math:`[\theta_{n+1}, \theta_{n+2}]`, exactly:

.. math::
    c^+ = c - \tfrac h2\bigl(\nabla E(c+\delta) + \nabla E(c-\delta)\bigr), \qquad
    \delta^+ = -\tfrac h2\nabla E(c+\delta),

the first form using :math:`2\delta = -h\nabla E(c-\delta)`. Near the edge of stability
:math:`\delta^+ \approx -\delta`: the rod turns over every step. A rod has no orientation, so the
turn-over is not motion; with it factored out (:math:`\delta \to -\delta^+`) the map is a step of
size :math:`h`, and reading it as one forward-Euler step of an ODE gives the rod flow

.. math::
    \dot c = -\tfrac12\bigl(\nabla E(c+\delta) + \nabla E(c-\delta)\bigr), \qquad
    \dot\delta = \tfrac12\nabla E(c+\delta) - \tfrac1h\,\delta .

After the turn-over the :math:`+` end is the rod's earlier end, and the :math:`\delta`-equation is at
rest exactly on GD's rods in that orientation, :math:`c - \delta = (c + \delta) - h\nabla E(c+\delta)`:
the rod is re-created from the gradient, as GD's is. At a critical point of :math:`E` it linearises to
:math:`\dot\delta = \tfrac12(H - 2/h)\,\delta`, so a rod grows along an eigenvector exactly when
:math:`h\lambda > 2`. The derivation is on the book page *The rod flow*.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gdflows._checks import check_lr
from gdflows.flows._base import Flow, bind, first, flow_factory, precision_checked


@flow_factory
def rod_flow(loss, *, lr: float) -> Flow:
    r"""The rod flow of GD with learning rate :math:`h`: two gradient evaluations per field evaluation.

    Derived here from the paper's description (Regis & Chewi 2026); it may differ from the published
    equations (see the module docstring).

    Args:
      loss: the loss :math:`E(\theta)`, any differentiable function (no third derivatives or
        eigensolver are needed).
      lr: the learning rate :math:`h` of the GD being modelled.
      args: extra arguments of the loss, ``loss(theta, *args)`` (e.g. a batch), held fixed.

    Returns:
      A :class:`~gdflows.flows.Flow` with state ``(c, delta)``:

      * ``init(theta0)`` builds GD's first rod, :math:`c_0 = \theta_0 - \tfrac h2\nabla E(\theta_0)`,
        :math:`\delta_0 = \tfrac h2\nabla E(\theta_0)` (one gradient), with :math:`c_0 + \delta_0 =
        \theta_0`: the orientation in which GD's rods are the rest points of the
        :math:`\delta`-equation. The rod at :math:`t_n = nh` models :math:`[\theta_n, \theta_{n+1}]`;
      * ``position(state)`` is the centre :math:`c`, the model of the oscillation centre
        :math:`(\theta_n + \theta_{n+1})/2`; :func:`rod_ends` gives both ends.

    Along directions that oscillate, GD's half-step :math:`(\theta_{n+1} - \theta_n)/2` changes sign
    every step and the flow's :math:`\delta` does not; compare :math:`|\delta|` or
    :math:`\delta\delta^\top`.

    Cost per evaluation: two gradients (at :math:`c \pm \delta`); no Hessian, so it is the
    cheap model for networks.

    Example:
      >>> import jax.numpy as jnp, gdflows as gf
      >>> S, Q, h = 10.0, 1.0, 0.25  # E(w) = S w^2/2 - Q w^4/4, h S = 2.5 > 2
      >>> flow = gf.rod_flow(lambda w: S * w[0] ** 2 / 2 - Q * w[0] ** 4 / 4, lr=h)
      >>> c, d = jnp.zeros(1), jnp.sqrt(jnp.array([(S - 2 / h) / Q]))
      >>> float(jnp.abs(flow.vector_field(0.0, (c, d))[1][0])) < 1e-12
      True
    """
    h = check_lr(lr)

    def init(theta0):
        half_step = 0.5 * h * jax.grad(loss)(theta0)
        return (theta0 - half_step, half_step)

    return Flow(
        name="rod flow",
        lr=h,
        loss=loss,
        init=precision_checked("rod flow", init),
        vector_field=bind(_rod_field, loss, jnp.asarray(h)),
        position=first,
    )


def _rod_field(loss, h, t, state):
    c, delta = state
    plus, minus = jax.grad(loss)(c + delta), jax.grad(loss)(c - delta)
    return (-0.5 * (plus + minus), 0.5 * plus - delta / h)


def rod_ends(state) -> tuple[jax.Array, jax.Array]:
    r"""The two ends :math:`c - \delta, c + \delta` of a rod state (or of a saved trajectory of them)."""
    c, delta = state
    return c - delta, c + delta


def rod_length(state) -> jax.Array:
    r""":math:`\|\delta\|`, half the distance between the rod's ends (along the last axis)."""
    return jnp.linalg.norm(state[1], axis=-1)
