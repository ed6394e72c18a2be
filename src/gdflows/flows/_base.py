"""The common face of every flow.

A flow is a small value in the optax style: a factory closes over the loss and
hyperparameters and returns a :class:`Flow` of pure functions. The solver only
ever calls these, so flows with extra state (a complex part, an eigenvector
estimate, a rod's half-length) plug into the same :func:`gdflows.solve`.

A flow is built before the parameters are known, on a loss ``loss(params, *args)``. Every
factory is wrapped by :func:`flow_factory`: it binds ``args`` and records itself with its
options in :attr:`Flow.factory`, so that :func:`gdflows.solve` given a pytree of parameters
rebuilds the same flow on the flat loss :math:`E(\theta) = \text{loss}(\text{unravel}(\theta), *\text{args})`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
from jax.tree_util import Partial

from gdflows._checks import warn_if_single_precision
from gdflows._pytree import bind_args

State = Any  # a pytree of real arrays


class Flow(NamedTuple):
    r"""An ODE :math:`\dot s = F(t, s)` on a state :math:`s` that carries parameters :math:`\theta`.

    Attributes:
      name: short label for tables and legends.
      lr: the learning rate :math:`h` of the GD the flow models; :func:`gdflows.solve` reads the
        flow at GD's times :math:`t_n = nh` with it.
      loss: the loss :math:`E` the flow was built from.
      init: ``theta0 -> state``; may check the loss eagerly (e.g. holomorphy), and warns
        (:class:`~gdflows.PrecisionWarning`) on single-precision ``theta0``.
      vector_field: ``(t, state) -> d state / dt``, pure and traceable.
      position: ``state -> theta``, the real parameters the state stands for.
      factory: ``flat_loss -> Flow``, the factory that built the flow with its options bound
        (None for a hand-made flow); :func:`gdflows.solve` calls it to run the flow on pytree
        parameters.
      after_step: optional ``state -> state``, applied by :func:`gdflows.solve` to the state at
        the end of every solver step, for state that records the path rather than being
        integrated (its derivative in ``vector_field`` is zero); None for most flows.
      stall_spectrum: optional ``state -> eigenvalues of hH`` there (or None), which :func:`gdflows.solve`
        reports (the one nearest 1) when its steps collapse; None for most flows.
      exponential: optional ``d -> ExponentialMethod`` for ``d`` parameters, an exponential
        integrator on the flow's point :math:`x` (the complex :math:`z` of a state ``(Re z, Im z)``):
        what ``solve(..., solver="exponential")`` needs (the principal flow has it, for its dense
        and its Krylov spectrum; ``gdflows._exponential``).

    ``loss`` is the factory's loss with its ``args`` bound; ``init``, ``vector_field`` and
    ``position`` work on the flat vector :math:`\theta` of a loss of a flat vector (``init``
    refuses a pytree). A flow on a loss of a pytree is meant for :func:`gdflows.solve`, which
    ravels the parameters and rebuilds it on the flat loss with ``factory``.
    """

    name: str
    lr: float
    loss: Callable[[jax.Array], jax.Array]
    init: Callable[[jax.Array], State]
    vector_field: Callable[[Any, State], State]
    position: Callable[[State], jax.Array]
    factory: Callable[[Callable], Flow] | None = None
    after_step: Callable[[State], State] | None = None
    stall_spectrum: Callable[[State], jax.Array] | None = None
    exponential: Callable[[int], Any] | None = None


def flow_factory(make: Callable[..., Flow]) -> Callable[..., Flow]:
    """``make(loss, **options)`` that also takes ``args=()`` (the loss's extra arguments) and records
    itself, options bound, in the flow's ``factory``."""

    @functools.wraps(make)
    def factory(loss, *, args: tuple = (), **options) -> Flow:
        flow = make(bind_args(loss, args), **options)
        return flow._replace(factory=functools.partial(factory, **options))

    signature = inspect.signature(make)
    extra = inspect.Parameter("args", inspect.Parameter.KEYWORD_ONLY, default=())
    factory.__signature__ = signature.replace(parameters=[*signature.parameters.values(), extra])
    return factory


def precision_checked(name: str, init: Callable[[jax.Array], State]) -> Callable[[jax.Array], State]:
    """``init`` that first warns (:class:`~gdflows.PrecisionWarning`) on a float32 or complex64 ``theta0``."""

    @functools.wraps(init)
    def checked(theta0):
        if getattr(theta0, "ndim", None) != 1:
            raise TypeError(
                f"the init of {name} takes the flat parameter vector, a 1-D array, got {type(theta0).__name__}"
                f"{' of shape ' + str(theta0.shape) if hasattr(theta0, 'shape') else ''}; for a pytree of "
                "parameters call gdflows.solve(flow, params0, steps=...), which ravels it, or ravel it yourself "
                "with gdflows.ravel(params0)."
            )
        warn_if_single_precision(theta0, f"the init of {name}")
        return init(theta0)

    return checked


def bind(function: Callable, *args) -> Partial:
    """``function`` with its leading ``args`` bound, as a pytree whose array arguments are leaves.

    Flows build their fields this way (module-level functions; loss and options bound, the
    learning rate as a 0-d array) rather than as closures: a new flow on the same loss then
    reuses the solver's compilation, even with another learning rate.
    """
    return Partial(function, *args)


def _autonomous(field, t, theta):
    return field(theta)


def _identity(theta):
    return theta


def first(state):
    """The first component of a tuple state (the position of most flows with extra state)."""
    return state[0]


def parameter_flow(name: str, loss, field: Callable[[jax.Array], jax.Array], *, lr: float) -> Flow:
    r"""A flow whose state is just :math:`\theta`: :math:`\dot\theta = F(\theta)`, for GD with learning rate ``lr``."""
    return Flow(
        name=name,
        lr=lr,
        loss=loss,
        init=precision_checked(name, _identity),
        vector_field=bind(_autonomous, field),
        position=_identity,
    )
