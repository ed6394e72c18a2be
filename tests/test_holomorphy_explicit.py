"""flatten decides holomorphy by testing the loss, or takes the caller's word; the refusal names the override."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gdflows as gf
from gdflows.models import MLP, flatten


class UserMLP(nnx.Module):
    """A user's network: no `activation` attribute, the nonlinearity written inline."""

    def __init__(self, function, rngs):
        self.function = function
        self.first = nnx.Linear(3, 6, rngs=rngs, param_dtype=jnp.float64)
        self.second = nnx.Linear(6, 2, rngs=rngs, param_dtype=jnp.float64)

    def __call__(self, x):
        return self.second(self.function(self.first(x)))


X = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3)
Y = jnp.cos(jnp.arange(8.0)).reshape(4, 2)


@pytest.mark.parametrize("function", [nnx.gelu, jnp.tanh, lambda z: z / (1.0 + z**2)])
def test_smooth_user_networks_without_an_activation_attribute_are_holomorphic(function):
    flat = flatten(UserMLP(function, nnx.Rngs(0)), X, Y)
    assert flat.holomorphic is True and flat.loss.holomorphic is True
    gf.check_holomorphic(flat.loss, flat.theta0 + 0.3)  # holds elsewhere too


@pytest.mark.parametrize("function", [nnx.relu, jax.nn.relu, lambda z: jnp.maximum(z, 0.0)])
def test_relu_networks_are_not(function):
    assert flatten(UserMLP(function, nnx.Rngs(0)), X, Y).holomorphic is False


def test_activation_given_as_a_callable():
    by_function = flatten(MLP([3, 5, 2], activation=nnx.gelu, rngs=nnx.Rngs(1)), X, Y)
    by_name = flatten(MLP([3, 5, 2], activation="gelu", rngs=nnx.Rngs(1)), X, Y)
    assert by_function.holomorphic is True
    assert float(by_function.loss(by_function.theta0)) == float(by_name.loss(by_name.theta0))
    swish = flatten(MLP([3, 5, 2], activation=jax.nn.swish, rngs=nnx.Rngs(1)), X, Y)  # unknown callable
    assert swish.holomorphic is True and np.isfinite(float(swish.loss(swish.theta0)))


def test_the_refusal_names_both_ways_out_and_the_override_works():
    flat = flatten(MLP([3, 5, 2], rngs=nnx.Rngs(2)), X, Y, holomorphic=False)  # the caller's (wrong) word
    assert flat.holomorphic is False
    with pytest.raises(gf.NotHolomorphicError) as info:
        gf.principal_flow(flat.loss, lr=0.1)
    message = str(info.value)
    assert "space='real'" in message and "holomorphic=True" in message and "loss.holomorphic = True" in message
    flat.loss.holomorphic = True  # the user knows better
    sol = gf.solve(gf.principal_flow(flat.loss, lr=0.1), flat.theta0, steps=1, progress=False)
    assert sol.stopped_at is None and np.all(np.isfinite(sol.theta))
    trusted = flatten(MLP([3, 5, 2], rngs=nnx.Rngs(2)), X, Y, holomorphic=True)
    assert trusted.holomorphic is True and trusted.loss.holomorphic is True


def test_a_loss_marked_holomorphic_skips_the_test_but_an_unmarked_one_is_tested():
    loss = lambda th: jnp.sum(jnp.abs(th) ** 3)  # noqa: E731
    with pytest.raises(gf.NotHolomorphicError, match="loss.holomorphic = True"):
        gf.principal_flow(loss, lr=0.1).init(jnp.ones(2))
    loss.holomorphic = True  # trusted: no test at init
    gf.principal_flow(loss, lr=0.1).init(jnp.ones(2))


def test_cross_entropy_is_decided_by_the_test_and_bad_flags_are_refused():
    labels = jnp.array([0, 1, 1, 0])
    ce = flatten(MLP([3, 5, 2], rngs=nnx.Rngs(0)), X, labels, loss="cross_entropy")
    assert ce.holomorphic is False  # JAX's log_softmax takes an elementwise maximum
    with pytest.raises(TypeError, match="holomorphic must be None"):
        flatten(MLP([3, 5, 2], rngs=nnx.Rngs(0)), X, Y, holomorphic="yes")


def test_accuracy_counts_argmax_matches():
    flat = flatten(MLP([3, 5, 2], rngs=nnx.Rngs(0)), X, Y)
    predicted = np.argmax(np.asarray(flat.predict(flat.theta0, X)), axis=-1)
    assert flat.accuracy(flat.theta0, X, predicted) == 1.0
    assert flat.accuracy(flat.theta0, X, 1 - predicted) == 0.0
