r"""Small ``flax.nnx`` networks, and the flat loss :math:`E(\theta)` the rest of gdflows works on.

Models are ordinary ``nnx.Module``\ s (:class:`MLP`, :class:`CNN`). :func:`flatten` splits a
model once (``nnx.split``), flattens its parameters in the order of
``jax.flatten_util.ravel_pytree`` and returns a :class:`FlatModel`: the pure loss of the flat
vector, the initial vector, and the way back from a vector to a model.

Holomorphy. The complex-space principal flow evaluates :math:`E` at complex parameters and
differentiates it as an analytic function. A network with a smooth activation that is entire
or analytic near the real axis (``tanh``, ``softplus``, ``gelu`` in its tanh form) and the
mean-squared error :math:`\tfrac1{2n}\sum_i\|f(x_i;\theta) - y_i\|^2` (squares, no complex
conjugate) is holomorphic, and its flat loss accepts complex :math:`\theta`. ReLU is not
(nor is the cross-entropy, whose log-sum-exp needs a maximum). :attr:`FlatModel.holomorphic`
records which case holds, and the flat loss carries it as ``loss.holomorphic`` so that
:func:`gdflows.principal_flow` refuses ``space="complex"`` for such a loss before running.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.flatten_util import ravel_pytree


def _is_complex(x) -> bool:
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.complexfloating)


def _softplus(x):
    # jax.nn.softplus uses logaddexp (a maximum), which has no complex continuation;
    # log(1 + e^x) is the same analytic function, fine for the moderate |x| of complex flows.
    return jnp.log1p(jnp.exp(x)) if _is_complex(x) else jax.nn.softplus(x)


def _gelu(x):
    return jax.nn.gelu(x, approximate=True)  # the tanh form: analytic near the real axis


#: Activations by name, and whether each is holomorphic (analytic near the real axis).
ACTIVATIONS: dict[str, tuple[Callable, bool]] = {
    "tanh": (jnp.tanh, True),
    "gelu": (_gelu, True),
    "softplus": (_softplus, True),
    "relu": (jax.nn.relu, False),
}
LOSSES = ("mse", "cross_entropy")


def _activation(name: str) -> Callable:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid names: {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name][0]


class MLP(nnx.Module):
    r"""A fully connected network :math:`x \mapsto W_L\sigma(\dots\sigma(W_1x + b_1)\dots) + b_L`.

    Args:
      sizes: layer widths from input to output, e.g. ``[64, 64, 64, 10]`` for the 64→64→64→10
        network of F6 (64 input features, two hidden layers of 64, 8,970 parameters).
      activation: ``"tanh"``, ``"gelu"`` (tanh approximation), ``"softplus"`` or ``"relu"``.
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
        if len(sizes) < 2:
            raise ValueError(f"sizes needs an input and an output width, got sizes={list(sizes)!r}.")
        self.activation = activation
        _activation(activation)
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
      input_shape: shape of one example, channels last.
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
        _activation(activation)
        self.activation = activation
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
    """A model seen as a pure function of one flat parameter vector."""

    loss: Callable[[jax.Array], jax.Array]  # theta -> E(theta); carries .holomorphic
    theta0: jax.Array  # (d,) the model's parameters, flattened
    predict: Callable[[jax.Array, jax.Array], jax.Array]  # (theta, x) -> network outputs
    to_model: Callable[[jax.Array], nnx.Module]  # theta -> a model holding these parameters
    holomorphic: bool  # smooth (holomorphic) activation and the MSE loss
    size: int  # d, the number of parameters

    def accuracy(self, theta: jax.Array, x, labels) -> float:
        """Fraction of ``x`` classified as ``labels`` by the network with parameters ``theta``."""
        return float(jnp.mean(jnp.argmax(jnp.real(self.predict(theta, jnp.asarray(x))), axis=-1) == labels))


def flatten(model: nnx.Module, x, y, *, loss: Literal["mse", "cross_entropy"] = "mse") -> FlatModel:
    r"""Turn a model and a full batch of data into the flat loss :math:`E(\theta)`.

    Args:
      model: an ``nnx.Module`` (its ``activation`` attribute, if any, decides holomorphy).
      x: inputs, ``(n, *input_shape)``.
      y: targets: one-hot ``(n, classes)`` (for ``"cross_entropy"`` integer labels also work).
      loss: ``"mse"``, :math:`E = \frac1{2n}\sum_i\|f(x_i) - y_i\|^2`, or ``"cross_entropy"``,
        :math:`E = -\frac1n\sum_i y_i\cdot\log\operatorname{softmax}f(x_i)`.

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
      >>> flatten(MLP([4, 3], activation="relu", rngs=nnx.Rngs(0)), jnp.ones((5, 4)), jnp.zeros((5, 3))).holomorphic
      False
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid names: {', '.join(LOSSES)}.")
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree.flatten(state)
    shapes = [leaf.shape for leaf in leaves]
    sizes = [int(np.prod(shape)) for shape in shapes]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    theta0, _ = ravel_pytree(state)  # same leaf order as jax.tree.flatten
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if loss == "cross_entropy" and y.ndim == 1:
        y = jax.nn.one_hot(y, int(jnp.max(y)) + 1)
    activation = getattr(model, "activation", None)
    holomorphic = loss == "mse" and activation is not None and ACTIVATIONS[activation][1]

    def unflatten(theta):
        # dtype-preserving (ravel_pytree's own inverse refuses complex vectors for real leaves)
        parts = [theta[a:b].reshape(shape) for a, b, shape in zip(offsets[:-1], offsets[1:], shapes, strict=True)]
        return jax.tree.unflatten(treedef, parts)

    def predict(theta, inputs):
        return nnx.merge(graphdef, unflatten(theta))(inputs)

    def flat_loss(theta):
        out = predict(theta, x)
        if loss == "mse":
            return 0.5 * jnp.sum((out - y) ** 2) / out.shape[0]
        return -jnp.sum(y * jax.nn.log_softmax(out, axis=-1)) / out.shape[0]

    flat_loss.holomorphic = holomorphic
    return FlatModel(
        loss=flat_loss,
        theta0=theta0,
        predict=predict,
        to_model=lambda theta: nnx.merge(graphdef, unflatten(jnp.asarray(theta))),
        holomorphic=bool(holomorphic),
        size=int(offsets[-1]),
    )
