r"""Small ``flax.nnx`` networks, and the flat loss :math:`E(\theta)` the rest of gdflows works on.

Models are ordinary ``nnx.Module``\ s (:class:`MLP`, :class:`CNN`). :func:`flatten` splits a
model once (``nnx.split``), flattens its parameters in the order of
:func:`gdflows.ravel` and returns a :class:`FlatModel`: the pure loss of the flat
vector, the initial vector, and the way back from a vector to a model.

Holomorphy. The complex-space principal flow evaluates :math:`E` at complex parameters and
differentiates it as an analytic function. A network with a smooth activation that is entire
or analytic near the real axis (``tanh``, ``softplus``, ``gelu`` in its tanh form) and the
mean-squared error :math:`\tfrac1{2n}\sum_i\|f(x_i;\theta) - y_i\|^2` (squares, no complex
conjugate) is holomorphic, and its flat loss accepts complex :math:`\theta`. ReLU is not, and
the cross-entropy as JAX computes it (``log_softmax`` takes an elementwise maximum) fails the
test below, so it is marked not holomorphic. :func:`flatten`
decides by testing the flat loss itself (:func:`gdflows.check_holomorphic`: the jaxpr for
kinks, then the Cauchy–Riemann identity at complex points near :math:`\theta_0`), whatever the
model's activation is called, or takes the caller's word (``holomorphic=True``/``False``).
:attr:`FlatModel.holomorphic` records the answer, and the flat loss carries it as
``loss.holomorphic`` so that :func:`gdflows.principal_flow` refuses ``space="complex"`` for a
loss marked ``False`` before running and trusts one marked ``True``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gdflows._checks import check_positive_int
from gdflows._pytree import ravel
from gdflows.errors import NotHolomorphicError
from gdflows.flows._loss_checks import check_holomorphic


def _is_complex(x) -> bool:
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.complexfloating)


def _softplus(x):
    # jax.nn.softplus uses logaddexp (a maximum), which has no complex continuation;
    # log(1 + e^x) is the same analytic function, fine for the moderate |x| of complex flows.
    return jnp.log1p(jnp.exp(x)) if _is_complex(x) else jax.nn.softplus(x)


def _gelu(x):
    return jax.nn.gelu(x, approximate=True)  # the tanh form: analytic near the real axis


#: Activations by name (holomorphy is decided by :func:`flatten`'s test of the loss, not by name).
ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "gelu": _gelu,
    "softplus": _softplus,
    "relu": jax.nn.relu,
}
LOSSES = ("mse", "cross_entropy")


# The known activations given as functions (nnx.tanh is jnp.tanh, nnx.gelu is jax.nn.gelu, whose default
# is the tanh form, and so on), mapped to their names.
_KNOWN_FUNCTIONS: dict[Callable, str] = {
    jnp.tanh: "tanh",
    jax.nn.gelu: "gelu",
    jax.nn.softplus: "softplus",
    jax.nn.relu: "relu",
}


def _activation_name(activation) -> str | Callable:
    """The name of a known activation (given by name or as a known function), or an unknown function itself."""
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid names: {', '.join(ACTIVATIONS)}.")
        return activation
    if callable(activation):
        try:
            return _KNOWN_FUNCTIONS.get(activation, activation)
        except TypeError:  # unhashable callable
            return activation
    raise TypeError(
        f"activation must be one of the names {', '.join(ACTIVATIONS)} or a function, got activation={activation!r}."
    )


def _activation(activation) -> Callable:
    name = _activation_name(activation)
    return ACTIVATIONS[name] if isinstance(name, str) else name


def _check_widths(name: str, widths) -> list[int]:
    """Layer widths or shape entries: positive integers (the error names the entry)."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of positive integers, got {name}={widths!r}.")
    return [check_positive_int(f"{name}[{i}]", width, example=f"{name}[{i}]=64") for i, width in enumerate(widths)]


class MLP(nnx.Module):
    r"""A fully connected network :math:`x \mapsto W_L\sigma(\dots\sigma(W_1x + b_1)\dots) + b_L`.

    Args:
      sizes: layer widths from input to output, e.g. ``[64, 64, 64, 10]`` for the 64→64→64→10
        network of F6 (64 input features, two hidden layers of 64, 8,970 parameters).
      activation: ``"tanh"``, ``"gelu"`` (tanh approximation), ``"softplus"`` or ``"relu"``, or a
        function: a known one (``jnp.tanh``, ``nnx.gelu``, ``nnx.softplus``, ``nnx.relu``) is stored by
        its name; another one (a lambda, ``jax.nn.swish``) is used as given (:func:`flatten` tests
        the loss for holomorphy either way).
      rngs: ``nnx.Rngs`` for the initialisation (LeCun-normal weights, zero biases).
      param_dtype: parameter dtype (float64 by default, to compare flows with GD tightly).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from gdflows.models import MLP
      >>> model = MLP([4, 8, 3], activation="tanh", rngs=nnx.Rngs(0))
      >>> model(jnp.ones((5, 4))).shape  # a batch of 5 inputs, 3 outputs each
      (5, 3)
      >>> len(model.layers), model.layers[0].kernel.shape  # (4*8 + 8) + (8*3 + 3) = 67 parameters
      (2, (4, 8))
    """

    def __init__(self, sizes: Sequence[int], *, activation: str = "tanh", rngs: nnx.Rngs, param_dtype=jnp.float64):
        sizes = _check_widths("sizes", sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes needs an input and an output width, got sizes={list(sizes)!r}.")
        self.activation = _activation_name(activation)
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs, param_dtype=param_dtype) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )

    def __call__(self, x):
        act = _activation(self.activation)
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)


class CNN(nnx.Module):
    r"""A small convolutional network: strided convolutions, then a linear read-out.

    Each convolution has a 3-wide kernel (in every spatial dimension) and stride 2, so it
    halves the resolution; no pooling (a strided convolution is linear and holomorphic).
    Works on images ``(H, W, C)`` and on signals ``(L, C)``.

    Args:
      input_shape: shape of one example, channels last: ``(H, W, C)``, or ``(L, C)`` with
        ``C < L`` (a 2-D shape with ``C >= L``, e.g. ``(8, 8)``, is refused as an image without
        its channel axis: pass ``(8, 8, 1)``).
      classes: number of outputs.
      channels: output channels of the convolutions.
      activation: as for :class:`MLP`.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        classes: int,
        *,
        channels: Sequence[int] = (8, 16),
        activation: str = "tanh",
        rngs: nnx.Rngs,
        param_dtype=jnp.float64,
    ):
        self.activation = _activation_name(activation)
        input_shape = _check_widths("input_shape", input_shape)
        classes = check_positive_int("classes", classes, example="classes=10")
        channels = _check_widths("channels", channels)
        if len(input_shape) < 2 or (len(input_shape) == 2 and input_shape[1] >= input_shape[0]):
            raise ValueError(
                f"input_shape must be one example's shape with the channels last, (height, width, channels) for an "
                f"image or (length, channels) for a signal with fewer channels than samples; got "
                f"input_shape={tuple(input_shape)!r}, which has no channel axis. Pass e.g. "
                f"{(*input_shape, 1)!r} (one channel), as load(..., flatten=False) returns."
            )
        spatial = tuple(input_shape[:-1])
        convs, width = [], input_shape[-1]
        for out in channels:
            convs.append(
                nnx.Conv(
                    width,
                    out,
                    kernel_size=(3,) * len(spatial),
                    strides=(2,) * len(spatial),
                    rngs=rngs,
                    param_dtype=param_dtype,
                )
            )
            width = out
            spatial = tuple((s + 1) // 2 for s in spatial)  # SAME padding with stride 2
        self.convs = nnx.List(convs)
        self.head = nnx.Linear(int(np.prod(spatial)) * width, classes, rngs=rngs, param_dtype=param_dtype)

    def __call__(self, x):
        act = _activation(self.activation)
        for conv in self.convs:
            x = act(conv(x))
        return self.head(x.reshape(x.shape[0], -1))


class FlatModel(NamedTuple):
    r"""A model seen as a pure function of one flat parameter vector (:func:`flatten`).

    Fields: ``loss`` is :math:`E(\theta)` on the full batch given to :func:`flatten` (real
    :math:`\theta`, and complex :math:`\theta` when ``holomorphic``), with the attribute
    ``loss.holomorphic`` that :func:`gdflows.principal_flow` reads; ``theta0`` the model's
    parameters in ``ravel_pytree`` order; ``predict(theta, x)`` the network's outputs on any inputs;
    ``to_model(theta)`` a module holding ``theta``; ``holomorphic`` whether ``loss`` is the
    analytic continuation the complex-space PF needs (tested, or as the caller said); ``size``
    the number :math:`d` of parameters.
    """

    loss: Callable[[jax.Array], jax.Array]  # theta -> E(theta); carries .holomorphic
    theta0: jax.Array  # (d,) the model's parameters, flattened
    predict: Callable[[jax.Array, jax.Array], jax.Array]  # (theta, x) -> network outputs, (n, classes)
    to_model: Callable[[jax.Array], nnx.Module]  # theta -> a model holding these parameters
    holomorphic: bool  # loss is holomorphic in theta (tested by flatten, or the caller's word)
    size: int  # d, the number of parameters

    def accuracy(self, theta: jax.Array, x, labels) -> float:
        r"""Fraction of the inputs ``x`` whose largest output is their label: :math:`\frac1n\sum_i
        [\arg\max_j \operatorname{Re} f_j(x_i;\theta) = \ell_i]`.

        Args:
          theta: parameters, ``(d,)`` (complex ones are read by their real part's outputs).
          x: inputs, ``(n, *input_shape)``: any batch, not only the one the loss was built on.
          labels: integer class labels, ``(n,)`` (e.g. ``data.labels_test``), not one-hot.

        Returns:
          A Python float in :math:`[0, 1]`.
        """
        return float(jnp.mean(jnp.argmax(jnp.real(self.predict(theta, jnp.asarray(x))), axis=-1) == labels))


def _targets(graphdef, state, x, y, loss: str) -> jax.Array:
    """``y`` as an array of the network's output shape: integer labels one-hot over the model's classes."""
    out = jax.eval_shape(lambda s, inputs: nnx.merge(graphdef, s)(inputs), state, x)
    classes = out.shape[-1]
    if y.ndim == 1:
        if loss != "cross_entropy":
            raise ValueError(
                f"y has shape {y.shape} (labels); loss='mse' needs one-hot targets of the network's output shape "
                f"{out.shape}: pass data.y_train (one-hot), or jax.nn.one_hot(labels, {classes})."
            )
        if not jnp.issubdtype(y.dtype, jnp.integer) or y.dtype == jnp.bool_:
            raise ValueError(f"integer labels are needed for y of shape {y.shape}, got dtype {y.dtype}.")
        if int(jnp.min(y)) < 0 or int(jnp.max(y)) >= classes:
            raise ValueError(
                f"labels in y must lie in 0..{classes - 1} (the model has {classes} outputs), got "
                f"{int(jnp.min(y))}..{int(jnp.max(y))}."
            )
        return jax.nn.one_hot(y, classes, dtype=out.dtype)
    if y.shape != out.shape:
        raise ValueError(f"y has shape {y.shape}, the network's outputs {out.shape}; pass targets of the output shape.")
    return y


def flatten(
    model: nnx.Module,
    x,
    y,
    *,
    loss: Literal["mse", "cross_entropy"] = "mse",
    holomorphic: bool | None = None,
) -> FlatModel:
    r"""Turn a model and a full batch of data into the flat loss :math:`E(\theta)`.

    Args:
      model: any ``nnx.Module`` (an :class:`MLP`, :class:`CNN` or one of your own).
      x: inputs, ``(n, *input_shape)``.
      y: targets: one-hot ``(n, classes)`` (for ``"cross_entropy"`` integer labels also work).
      loss: ``"mse"``, :math:`E = \frac1{2n}\sum_i\|f(x_i) - y_i\|^2`, or ``"cross_entropy"``,
        :math:`E = -\frac1n\sum_i y_i\cdot\log\operatorname{softmax}f(x_i)`.
      holomorphic: whether the loss is holomorphic in the parameters, as the complex-space
        principal flow needs. None (default): tested on the flat loss at ``theta0`` by
        :func:`gdflows.check_holomorphic` (a ReLU or ``abs`` anywhere, or the cross-entropy,
        gives False; tanh, GELU, softplus or any analytic activation with the MSE gives True,
        whether or not the model has an ``activation`` attribute); costs a few
        evaluations of the loss and its derivative. True or False: taken as given, untested.

    Returns:
      A :class:`FlatModel`. Its ``loss`` accepts real parameters and, when ``holomorphic``,
      complex ones (the analytic continuation); ``to_model(theta)`` rebuilds the module.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from gdflows.models import MLP, flatten
      >>> model = MLP([4, 8, 3], activation="tanh", rngs=nnx.Rngs(0))
      >>> flat = flatten(model, jnp.ones((5, 4)), jnp.zeros((5, 3)), loss="mse")
      >>> flat.size, flat.holomorphic, flat.theta0.shape
      (67, True, (67,))
      >>> bool(jnp.allclose(flat.predict(flat.theta0, jnp.ones((5, 4))), model(jnp.ones((5, 4)))))
      True
      >>> flatten(MLP([4, 8, 3], activation="relu", rngs=nnx.Rngs(0)), jnp.ones((5, 4)), jnp.zeros((5, 3))).holomorphic
      False
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid names: {', '.join(LOSSES)}.")
    graphdef, state = nnx.split(model)
    theta0, unflatten = ravel(state)  # its inverse keeps a complex theta complex, as the complex PF needs
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.ndim == 0 or x.shape[0] == 0 or y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"x and y must hold the same positive number of examples along their first axis, got x of shape "
            f"{x.shape} and y of shape {y.shape}."
        )
    if holomorphic is not None and not isinstance(holomorphic, bool):
        raise TypeError(f"holomorphic must be None (test the loss), True or False, got holomorphic={holomorphic!r}.")
    y = _targets(graphdef, state, x, y, loss)

    def predict(theta, inputs):
        return nnx.merge(graphdef, unflatten(theta))(inputs)

    def flat_loss(theta):
        out = predict(theta, x)
        if loss == "mse":
            return 0.5 * jnp.sum((out - y) ** 2) / out.shape[0]
        return -jnp.sum(y * jax.nn.log_softmax(out, axis=-1)) / out.shape[0]

    if holomorphic is None:
        try:
            check_holomorphic(flat_loss, theta0)
            holomorphic = True
        except NotHolomorphicError:
            holomorphic = False
    flat_loss.holomorphic = holomorphic
    return FlatModel(
        loss=flat_loss,
        theta0=theta0,
        predict=predict,
        to_model=lambda theta: nnx.merge(graphdef, unflatten(jnp.asarray(theta))),
        holomorphic=holomorphic,
        size=unflatten.size,
    )
