r"""The drift-adjusted learning rate (DAL) as optax gradient transformations.

Rosca, Wu, Qin & Dherin (TMLR 2023) bound the drift of one GD step by
:math:`h\,\|H(\theta)\nabla E(\theta)\|` and propose to choose the learning rate from the
curvature along the gradient,

.. math::

   v_t = \frac{\|H(\theta_t)\, g_t\|}{\|g_t\|}, \qquad
   h_t = \min\!\Big(\frac{2}{v_t^{\,p}},\; h_{\max}\Big), \qquad
   \theta_{t+1} = \theta_t - h_t\, g_t,

with :math:`g_t = \nabla E(\theta_t)`. Because :math:`\|Hg\|/\|g\| \le \max_i|\lambda_i|`, with
equality when :math:`g` lies in the top eigenspace, DAL-1 (:math:`p = 1`) takes steps of about
:math:`2/\lambda_{\max}`, the edge of GD's stability on a quadratic. :math:`p` trades the
two ends: :math:`p = 0` turns the adaptation off (plain GD at ``base_lr``), larger :math:`p`
shrinks the step more where the curvature is large.

This module gives :func:`scale_by_dal` (the scaling :math:`g \mapsto h_t g`, to compose with
other transformations) and :func:`dal` (the complete optimiser, :math:`g \mapsto -h_t g`), both
:class:`optax.GradientTransformationExtraArgs`. DAL needs the loss, not only the gradient:
:math:`Hg` is one Hessian-vector product, or a finite difference of two gradients. The loss
comes in through optax's extra-arguments convention, exactly as for optax's line searches::

    updates, state = tx.update(grads, state, params, value_fn=loss)   # or grad_fn=jax.grad(loss)

With ``flax.nnx`` (0.12), ``nnx.Optimizer.update(model, grads, **kwargs)`` forwards its keyword
arguments to ``tx.update``, and the ``params`` it hands on are the model's ``wrt`` state as pure
arrays; so the loss must be a function of that state::

    optimizer = nnx.Optimizer(model, dal(p=1.0), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        graph, _, rest = nnx.split(model, nnx.Param, ...)
        value_fn = lambda params: loss(nnx.merge(graph, params, rest), x, y)
        grads = nnx.grad(loss)(model, x, y)
        optimizer.update(model, grads, value_fn=value_fn)

``optimizer.opt_state.learning_rate`` then holds :math:`h_t` (tested in ``tests/test_optim.py``).

The notebook F8 of the book shows what DAL does on a network; ``benchmarks/dal.py`` measures
what it costs per step.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gdflows._checks import check_choice, check_number
from gdflows._results import TrainRun

__all__ = ["DALState", "dal", "scale_by_dal", "train"]

HVP_METHODS = ("exact", "finite_difference")


class DALState(NamedTuple):
    """State of :func:`scale_by_dal` and :func:`dal`: what the last step measured and used."""

    learning_rate: jax.Array  # h_t used by the last update (0 before the first update)
    v: jax.Array  # ||H g|| / ||g|| at the last update (0 before the first one and at g = 0; NaN if g or Hg is)


# ----------------------------------------------------------------------------- argument checks


def _check_settings(p, h_max, base_lr, hvp, epsilon) -> tuple[float, float, float | None, str, float]:
    p = check_number("p", p, strict=False, example="p=1.0")
    h_max = check_number("h_max", h_max, example="h_max=5.0")
    epsilon = check_number("epsilon", epsilon, example="epsilon=0.01")
    check_choice("hvp", hvp, HVP_METHODS)
    if p == 0.0:
        if base_lr is None:
            raise ValueError("p=0 switches DAL off and runs plain GD at base_lr; pass base_lr (e.g. base_lr=0.1).")
        base_lr = check_number("base_lr", base_lr, example="base_lr=0.1")
        if base_lr > h_max:
            raise ValueError(f"base_lr={base_lr} exceeds h_max={h_max}; the learning rate never exceeds h_max.")
    elif base_lr is not None:
        raise ValueError(
            f"base_lr={base_lr!r} is only used when p=0 (plain GD); with p={p} the learning rate is "
            "min(2 / v**p, h_max). Pass base_lr=None, or p=0."
        )
    return p, h_max, base_lr, hvp, epsilon


# ----------------------------------------------------------------------------- the loss as an extra argument


def _call_with_own_kwargs(fn: Callable, params, extra_args: dict):
    """``fn(params, **kw)`` with those extra arguments that ``fn`` names as keyword parameters.

    This lets a loss take data as an extra argument (``value_fn(params, batch=...)``) that
    travels through ``update(..., batch=batch)``, as in optax's line searches.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and some wrapped callables: pass nothing extra
        return fn(params)
    names = [
        name
        for name, parameter in list(signature.parameters.items())[1:]
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    return fn(params, **{name: extra_args[name] for name in names if name in extra_args})


def _gradient_function(grad_fn, value_fn, extra_args: dict) -> Callable:
    """``params -> ∇E(params)`` from ``grad_fn`` (preferred) or ``value_fn``; raise if neither came."""
    if grad_fn is not None:
        if not callable(grad_fn):
            raise TypeError(f"grad_fn must be a function params -> gradient pytree, got {grad_fn!r}.")
        return lambda params: _checked_gradient(params, _call_with_own_kwargs(grad_fn, params, extra_args))
    if value_fn is not None:
        if not callable(value_fn):
            raise TypeError(f"value_fn must be a function params -> scalar loss, got {value_fn!r}.")
        return jax.grad(lambda params: _call_with_own_kwargs(value_fn, params, extra_args))
    raise TypeError(
        "DAL needs the loss to measure the curvature along the gradient, and update() received "
        "neither grad_fn nor value_fn. Pass one of them as an extra argument, e.g. "
        "tx.update(grads, state, params, value_fn=loss) or grad_fn=jax.grad(loss)."
    )


def _checked_gradient(params, gradient):
    """``gradient``, after checking it has the pytree structure and leaf shapes of ``params`` (else raise)."""
    expected, got = jax.tree.structure(params), jax.tree.structure(gradient)
    shapes = [jnp.shape(leaf) for leaf in jax.tree.leaves(params)]
    if expected != got or shapes != [jnp.shape(leaf) for leaf in jax.tree.leaves(gradient)]:
        raise ValueError(
            "grad_fn must return the gradient as a pytree of the same structure and leaf shapes as params: "
            f"expected {expected} with leaf shapes {shapes}, got {got} with leaf shapes "
            f"{[jnp.shape(leaf) for leaf in jax.tree.leaves(gradient)]}. Pass grad_fn=jax.grad(loss), or value_fn=loss."
        )
    return gradient


def _hessian_times(gradient: Callable, params, direction, reference_grad, norm, *, hvp: str, epsilon: float):
    r""":math:`H(\theta)\,u` for the direction ``u``, exactly or by a forward difference of gradients."""
    if hvp == "exact":
        # forward over reverse: the jvp of the gradient along u
        return jax.jvp(gradient, (params,), (direction,))[1]
    # (∇E(θ + εu) − ∇E(θ)) / ε with ε = epsilon / ‖u‖: the probe sits at distance `epsilon` from θ
    scale = epsilon / jnp.where(norm > 0, norm, 1.0)
    probe = jax.tree.map(lambda x, u: x + scale.astype(x.dtype) * u.astype(x.dtype), params, direction)
    return jax.tree.map(
        lambda g1, g0: (g1 - g0.astype(g1.dtype)) / scale.astype(g1.dtype), gradient(probe), reference_grad
    )


def _state_dtype(params) -> jnp.dtype:
    leaves = [x for x in jax.tree.leaves(params) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    return jnp.result_type(*leaves) if leaves else jnp.result_type(float)


# ----------------------------------------------------------------------------- transformations


def scale_by_dal(
    p: float = 1.0,
    h_max: float = 5.0,
    base_lr: float | None = None,
    *,
    hvp: Literal["exact", "finite_difference"] = "exact",
    epsilon: float = 0.01,
) -> optax.GradientTransformationExtraArgs:
    r"""Scale the updates by the drift-adjusted learning rate :math:`h_t`.

    With :math:`u` the incoming updates (the gradient :math:`g_t`, when this transformation
    comes first), each update measures

    .. math::

       v_t = \frac{\|H(\theta_t)\,u\|}{\|u\|}, \qquad
       h_t = \begin{cases} \min(2 / v_t^{\,p},\; h_{\max}) & p > 0,\\
                            \texttt{base\_lr} & p = 0,\end{cases}

    and returns :math:`h_t\,u` (a positive scaling; chain with ``optax.scale(-1.0)``, or use
    :func:`dal`, to descend). :math:`Hu` is either an exact Hessian-vector product (``jvp`` of
    the gradient, ``hvp="exact"``) or the forward difference of gradients used by the
    authors, :math:`(\nabla E(\theta + \varepsilon u) - \nabla E(\theta))/\varepsilon` with
    :math:`\varepsilon = \texttt{epsilon}/\|u\|` (``hvp="finite_difference"``), whose error is
    first order in ``epsilon``: :math:`\tfrac{\varepsilon}{2}\nabla^3E[u, u]`.

    **The loss enters as an extra argument of** ``update``, the convention of
    :class:`optax.GradientTransformationExtraArgs`: ``update(updates, state, params, *,
    grad_fn=None, value_fn=None, grad=None, **extra_args)``.

    * ``grad_fn(params) -> gradient`` (same pytree as ``params``), or ``value_fn(params) ->
      scalar loss`` (its gradient is taken with :func:`jax.grad`). One of the two is
      required; if both come, ``grad_fn`` is used. Either may take further keyword
      arguments that are passed to ``update`` as extra arguments, e.g. a minibatch:
      ``value_fn(params, batch)`` with ``update(..., value_fn=loss, batch=batch)``; an extra
      argument reaches the function only if its signature names it. For a minibatch,
      the function must be the minibatch loss: the curvature is the minibatch's.
    * ``grad`` (optional): :math:`\nabla E(\theta)` at ``params``, the name optax's line
      searches use. The finite difference subtracts it; without it, the incoming updates are
      taken to be :math:`\nabla E(\theta)`, which is true when DAL comes first in a chain
      (saving one gradient per step). Pass ``grad`` when something transforms the gradient
      before DAL.
    * Other extra arguments are accepted and ignored, so DAL composes in ``optax.chain``.

    The functions are called inside ``update``, so call ``update`` inside your jitted step (a
    function is not a JAX value and cannot be an argument of a jitted ``update`` itself).

    **Zero gradient.** :math:`v = \|Hu\|/\|u\|` is undefined at :math:`u = 0`; it is defined
    as :math:`v = 0` there (and :math:`h_t = h_{\max}`), which is the limit along any
    direction in which the curvature vanishes. The update is :math:`h_t \cdot 0 = 0`: the
    parameters stay put, and nothing is NaN. Likewise :math:`Hu = 0` gives :math:`h_t = h_{\max}`.
    A NaN gradient or curvature is not a zero: :math:`v_t`, :math:`h_t` and the updates are then
    NaN (never :math:`h_{\max}`), so the failure shows in the state and the parameters.

    **Cost per step**, on top of the gradient the caller computes: one Hessian-vector product
    (``"exact"``, a few gradients' worth) or one more gradient (``"finite_difference"``).
    The curvature is measured also when ``p = 0``, so that :math:`v_t` can be plotted for
    plain GD too; use ``optax.sgd`` for GD without it.

    Args:
      p: the power :math:`p \ge 0`. ``p = 0`` is plain GD at ``base_lr``, as in the authors'
        code, where the static learning rate is used when the scaling power is 0.
      h_max: the largest learning rate, :math:`h_{\max} > 0` (the authors' default, 5). It
        bounds the step where the curvature along the gradient is tiny.
      base_lr: the learning rate of plain GD when ``p = 0``, at most ``h_max``; required then,
        and refused when ``p > 0`` (where it would have no effect).
      hvp: ``"exact"`` or ``"finite_difference"``: how :math:`Hu` is computed.
      epsilon: for ``"finite_difference"``, the distance :math:`\|\varepsilon u\|` of the
        probe point from :math:`\theta` (the authors' 0.01). Checked always, used only then.

    Returns:
      An :class:`optax.GradientTransformationExtraArgs` whose state is a :class:`DALState`
      holding :math:`h_t` (``learning_rate``) and :math:`v_t` (``v``) of the last update.

    Raises:
      ValueError, TypeError: at construction, for ``p < 0``, ``h_max <= 0``, a non-finite or
        non-positive ``epsilon``, an unknown ``hvp``, or a misused ``base_lr``; in ``update``,
        for missing ``params`` or a missing ``grad_fn``/``value_fn``. Each message names the
        argument.

    Example:
      On :math:`E(\theta) = \tfrac12\theta^\top\mathrm{diag}(4, 1)\theta`, the gradient
      :math:`(4, 0)` at :math:`\theta = (1, 0)` lies on the top eigenvector, so
      :math:`v = 4` and DAL-1 takes :math:`h = 2/4`:

      >>> import jax.numpy as jnp
      >>> import optax
      >>> from gdflows.optim import scale_by_dal
      >>> loss = lambda theta: 0.5 * (4.0 * theta[0] ** 2 + theta[1] ** 2)
      >>> theta = jnp.array([1.0, 0.0])
      >>> tx = optax.chain(scale_by_dal(p=1.0), optax.scale(-1.0))
      >>> state = tx.init(theta)
      >>> updates, state = tx.update(jnp.array([4.0, 0.0]), state, theta, value_fn=loss)
      >>> float(state[0].v), float(state[0].learning_rate), [float(u) for u in updates]
      (4.0, 0.5, [-2.0, -0.0])

    References:
      M. Rosca, Y. Wu, C. Qin and B. Dherin, *On a continuous time model of gradient descent
      dynamics and instability in deep learning*, TMLR 2023, section on the drift-adjusted
      learning rate. https://openreview.net/forum?id=EYrRzKPinA
    """
    p, h_max, base_lr, hvp, epsilon = _check_settings(p, h_max, base_lr, hvp, epsilon)

    def init_fn(params) -> DALState:
        zero = jnp.zeros([], _state_dtype(params))
        return DALState(learning_rate=zero, v=zero)

    def update_fn(updates, state: DALState, params=None, *, grad_fn=None, value_fn=None, grad=None, **extra_args):
        if params is None:
            raise ValueError(
                "DAL needs params (the current parameters) to measure the curvature: "
                "call update(updates, state, params, value_fn=...)."
            )
        gradient = _gradient_function(grad_fn, value_fn, extra_args)
        norm = optax.tree.norm(updates)
        reference = updates if grad is None else grad
        hu = _hessian_times(gradient, params, updates, reference, norm, hvp=hvp, epsilon=epsilon)
        hu_norm = optax.tree.norm(hu)
        nonzero = norm > 0
        v = jnp.where(nonzero, hu_norm / jnp.where(nonzero, norm, 1.0), 0.0)
        # a NaN gradient or curvature stays NaN in v (norm > 0 is False for NaN, which would give 0)
        v = jnp.where(jnp.isnan(norm), jnp.nan, v)
        if p == 0.0:
            h = jnp.asarray(base_lr, v.dtype)
        else:
            # v = 0 (zero gradient, or no curvature along it) gives h_max, not 2/0; a NaN v gives a NaN h,
            # never h_max (v > 0 is False for NaN)
            positive = v > 0
            h = jnp.where(positive, jnp.minimum(2.0 / jnp.where(positive, v, 1.0) ** p, h_max), h_max)
            h = jnp.where(jnp.isnan(v), jnp.nan, h)
        dtype = state.learning_rate.dtype
        new_state = DALState(learning_rate=h.astype(dtype), v=v.astype(dtype))
        scaled = jax.tree.map(lambda u: h.astype(u.dtype) * u, updates)
        return scaled, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def dal(
    p: float = 1.0,
    h_max: float = 5.0,
    base_lr: float | None = None,
    *,
    hvp: Literal["exact", "finite_difference"] = "exact",
    epsilon: float = 0.01,
) -> optax.GradientTransformationExtraArgs:
    r"""Gradient descent with the drift-adjusted learning rate: :math:`\theta \leftarrow \theta - h_t\nabla E(\theta)`.

    The complete optimiser: :func:`scale_by_dal` with the sign flipped, so that
    ``optax.apply_updates(params, updates)`` descends. Its state is the :class:`DALState`
    itself (not a chain's tuple), so ``state.learning_rate`` is :math:`h_t` of the last step.
    Pass the loss to ``update`` as ``value_fn=`` (or ``grad_fn=``); see :func:`scale_by_dal`
    for the definition, the arguments and the zero-gradient convention.

    Example:
      DAL-1 on a quadratic with :math:`\lambda_{\max} = 4` settles at :math:`h = 2/4`:

      >>> import jax, jax.numpy as jnp, optax
      >>> from gdflows.optim import dal
      >>> loss = lambda theta: 0.5 * (4.0 * theta[0] ** 2 + theta[1] ** 2)
      >>> tx = dal(p=1.0)
      >>> theta = jnp.array([1.0, 1.0])
      >>> state = tx.init(theta)
      >>> @jax.jit
      ... def step(theta, state):
      ...     updates, state = tx.update(jax.grad(loss)(theta), state, theta, value_fn=loss)
      ...     return optax.apply_updates(theta, updates), state
      >>> for _ in range(20):
      ...     theta, state = step(theta, state)
      >>> round(float(state.learning_rate), 6)
      0.5

    References:
      M. Rosca, Y. Wu, C. Qin and B. Dherin, TMLR 2023 (see :func:`scale_by_dal`).
    """
    inner = scale_by_dal(p, h_max, base_lr, hvp=hvp, epsilon=epsilon)

    def update_fn(updates, state, params=None, **extra_args):
        scaled, state = inner.update(updates, state, params, **extra_args)
        return jax.tree.map(jnp.negative, scaled), state

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


# ----------------------------------------------------------------------------- a training loop


def _state_learning_rate(state) -> jax.Array | None:
    """The field ``learning_rate`` of an optimiser state (DAL's, ``optax.inject_hyperparams``'), or None."""
    return optax.tree_utils.tree_get(state, "learning_rate")


@functools.partial(jax.jit, static_argnames=("loss", "tx", "steps", "objective", "evaluate", "every", "learning_rate"))
def _train(theta0, batches, *, loss, tx, steps, objective, evaluate, every, learning_rate):
    tx = optax.with_extra_args_support(tx)
    nan = jnp.asarray(jnp.nan, jnp.result_type(*jax.tree.leaves(theta0)))

    def step(carry, batch):
        theta, state, alive = carry
        value_fn = loss if batch is None else functools.partial(loss, batch=batch)
        updates, state = tx.update(jax.grad(value_fn)(theta), state, theta, value_fn=value_fn)
        new = optax.apply_updates(theta, updates)
        ok = alive & jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(new)]))
        h = learning_rate(state) if learning_rate is not None else _state_learning_rate(state)
        h = nan if h is None else jnp.asarray(h)
        recorded = jnp.where(ok, objective(new), jnp.inf)
        kept = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, theta)
        return (kept, state, ok), (recorded, jnp.where(alive, h, nan))

    def chunk(carry, chunk_batches):
        carry, (values, h) = jax.lax.scan(step, carry, chunk_batches, length=every)
        return carry, (values, h, evaluate(carry[0]) if evaluate is not None else jnp.zeros(0))

    if batches is not None:
        batches = jax.tree.map(lambda b: b.reshape(steps // every, every, *b.shape[1:]), batches)
    carry = (theta0, tx.init(theta0), jnp.array(True))
    (theta, _, _), (values, h, evaluations) = jax.lax.scan(chunk, carry, batches, length=steps // every)
    first = jnp.reshape(objective(theta0), (1,))
    return TrainRun(theta, jnp.concatenate([first, values.ravel()]), h.ravel(), evaluations.reshape(-1))


def train(
    loss: Callable,
    tx: optax.GradientTransformation,
    theta0,
    *,
    steps: int | None = None,
    batches=None,
    objective: Callable | None = None,
    evaluate: Callable | None = None,
    every: int = 1,
    learning_rate: Callable | None = None,
) -> TrainRun:
    r"""Run the optimiser ``tx`` for ``steps`` steps on ``loss``, as one compiled loop, and record it.

    Each step :math:`t` computes :math:`g_t = \nabla E_t(\theta_t)` and
    ``updates, state = tx.update(g_t, state, theta_t, value_fn=E_t)`` (so :func:`dal` and optax's
    line searches get the loss), then :math:`\theta_{t+1} = \theta_t + \text{updates}`, where
    :math:`E_t` is ``loss`` or, with ``batches``, ``loss(theta, batch=batches[t])``. It records
    ``objective`` (default ``loss``) at every iterate, :math:`h_t` from the optimiser state, and
    ``evaluate(theta)`` after every ``every`` steps. A non-finite iterate ends the run (see
    :class:`gdflows.TrainRun`).

    The loop is compiled once per ``(loss, tx, objective, evaluate, learning_rate, steps,
    every)``: pass the same function objects again (e.g. for other seeds) to reuse it.

    Args:
      loss: ``loss(theta) -> scalar``, or with ``batches`` ``loss(theta, batch) -> scalar``
        (the keyword must be ``batch``).
      tx: an optax transformation; a plain one is given extra-argument support.
      theta0: the start, a pytree of arrays (a flat vector for the library's losses).
      steps: number of steps; optional with ``batches`` (their leading length), required without.
      batches: a pytree of arrays whose leading axis indexes the steps (e.g. ``(steps,
        batch_size)`` example indices), or None for a full-batch ``loss(theta)``.
      objective: ``objective(theta) -> scalar`` recorded at every iterate; default ``loss``
        (required with ``batches``: e.g. the full training loss).
      evaluate: ``evaluate(theta) -> scalar`` (e.g. test accuracy) after every ``every`` steps.
      every: steps between evaluations; must divide ``steps``.
      learning_rate: ``learning_rate(state) -> h_t``; default: the state's field
        ``learning_rate`` (:class:`DALState`, ``optax.inject_hyperparams``), NaN if there is none.

    Returns:
      A :class:`gdflows.TrainRun` ``(theta, loss, learning_rate, evaluations)``.

    Example:
      DAL-1 on :math:`E = \tfrac12(4\theta_1^2 + \theta_2^2)` settles at :math:`h = 2/4`:

      >>> import jax.numpy as jnp
      >>> from gdflows.optim import dal, train
      >>> loss = lambda theta: 0.5 * (4.0 * theta[0] ** 2 + theta[1] ** 2)
      >>> run = train(loss, dal(p=1.0), jnp.array([1.0, 1.0]), steps=20)
      >>> run.loss.shape, round(float(run.learning_rate[-1]), 6)
      ((21,), 0.5)
    """
    if batches is not None:
        length = jax.tree.leaves(batches)[0].shape[0]
        if steps is not None and steps != length:
            raise ValueError(f"steps={steps} but batches has {length} steps: pass one of them (or make them agree).")
        steps = length
        if objective is None:
            raise ValueError(
                "With batches, loss(theta, batch) is a minibatch loss; pass objective=... (e.g. the full "
                "training loss, theta -> scalar) for the recorded loss."
            )
    if steps is None or isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive whole number (or pass batches), got steps={steps!r}.")
    if isinstance(every, bool) or int(every) != every or every < 1 or steps % every:
        raise ValueError(f"every must be a positive divisor of steps={steps}, got every={every!r}.")
    return _train(
        theta0,
        batches,
        loss=loss,
        tx=tx,
        steps=int(steps),
        objective=loss if objective is None else objective,
        evaluate=evaluate,
        every=int(every),
        learning_rate=learning_rate,
    )
