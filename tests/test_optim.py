"""DAL (gdflows.optim): its definition on quadratics, the finite difference's order, edge cases,
bad input, and its use in optax.chain, under jit and with flax.nnx.Optimizer."""

from __future__ import annotations

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import gdflows
from gdflows import optim
from gdflows.optim import DALState, dal, scale_by_dal


def random_quadratic(seed: int, d: int = 6, low: float = 0.5, high: float = 8.0):
    """``E = ½ θᵀAθ`` with a random SPD ``A`` whose spectrum spans [low, high]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eigenvalues = np.sort(np.concatenate([[low, high], rng.uniform(low, high, d - 2)]))
    A = jnp.asarray(q @ np.diag(eigenvalues) @ q.T)
    return (lambda theta: 0.5 * theta @ A @ theta), eigenvalues, jnp.asarray(rng.standard_normal(d))


def run(tx, loss, theta0, steps: int):
    """``steps`` updates of ``tx`` under one jitted ``lax.scan``; returns final θ and per-step h, v."""

    def step(carry, _):
        theta, state = carry
        updates, state = tx.update(jax.grad(loss)(theta), state, theta, value_fn=loss)
        return (optax.apply_updates(theta, updates), state), (state.learning_rate, state.v, loss(theta))

    (theta, state), (h, v, losses) = jax.jit(lambda t, s: jax.lax.scan(step, (t, s), None, length=steps))(
        theta0, tx.init(theta0)
    )
    return theta, np.asarray(h), np.asarray(v), np.asarray(losses)


def quartic(theta):
    """A non-quadratic loss with non-zero third derivatives."""
    return jnp.sum(0.25 * theta**4 + 0.5 * theta**2) + jnp.sin(theta[0] * theta[1])


# ----------------------------------------------------------------------------- the definition


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("hvp", ["exact", "finite_difference"])
def test_dal1_settles_at_two_over_lambda_max(seed, hvp):
    loss, eigenvalues, theta0 = random_quadratic(seed)
    _, h, v, _ = run(dal(p=1.0, hvp=hvp), loss, theta0, steps=300)
    # on a quadratic ‖Hg‖/‖g‖ ≤ λ_max always, so h never drops below 2/λ_max
    assert np.all(h >= 2 / eigenvalues[-1] * (1 - 1e-9))
    np.testing.assert_allclose(h[-1], 2 / eigenvalues[-1], rtol=1e-8)
    np.testing.assert_allclose(v[-1], eigenvalues[-1], rtol=1e-8)


def test_dal_p0_is_gd():
    loss, _, theta0 = random_quadratic(1)
    theta, h, _, losses = run(dal(p=0.0, base_lr=0.2), loss, theta0, steps=50)
    reference = gdflows.gd(loss, theta0, lr=0.2, steps=50)
    assert np.all(h == 0.2)
    np.testing.assert_allclose(losses, reference.loss[:-1], rtol=1e-12)
    np.testing.assert_allclose(theta, reference.theta[-1], rtol=1e-12, atol=1e-15)


def test_dal_p2_uses_the_power():
    # gradient along an eigenvector with λ = 4: v = 4, h = min(2/4², h_max) = 1/8
    loss = lambda theta: 0.5 * (4.0 * theta[0] ** 2 + theta[1] ** 2)
    theta = jnp.array([1.0, 0.0])
    tx = scale_by_dal(p=2.0)
    updates, state = tx.update(jax.grad(loss)(theta), tx.init(theta), theta, value_fn=loss)
    assert float(state.v) == pytest.approx(4.0) and float(state.learning_rate) == pytest.approx(1 / 8)
    np.testing.assert_allclose(updates, [0.5, 0.0])


def test_finite_difference_order():
    """FD error against the exact HVP falls like epsilon (first order), and is exact on quadratics."""
    theta = jnp.array([0.7, -1.1, 0.4])
    g = jax.grad(quartic)(theta)
    exact = gdflows.hvp(quartic, theta, g)
    epsilons = np.geomspace(1e-1, 1e-4, 7)
    errors = []
    for eps in epsilons:
        tx = scale_by_dal(p=1.0, hvp="finite_difference", epsilon=eps)
        _, state = tx.update(g, tx.init(theta), theta, value_fn=quartic)
        errors.append(abs(float(state.v) - float(jnp.linalg.norm(exact) / jnp.linalg.norm(g))))
    order = np.polyfit(np.log(epsilons), np.log(errors), 1)[0]
    assert 0.9 < order < 1.1, f"measured order {order:.3f}, errors {errors}"

    loss, _, theta0 = random_quadratic(2)
    tx_fd, tx_ex = scale_by_dal(hvp="finite_difference"), scale_by_dal(hvp="exact")
    g0 = jax.grad(loss)(theta0)
    _, s_fd = tx_fd.update(g0, tx_fd.init(theta0), theta0, value_fn=loss)
    _, s_ex = tx_ex.update(g0, tx_ex.init(theta0), theta0, value_fn=loss)
    np.testing.assert_allclose(s_fd.v, s_ex.v, rtol=1e-10)


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0, 4.0])
def test_learning_rate_never_exceeds_h_max(p):
    # curvature from 1e-3 to 1e2 along the path: 2/v^p crosses h_max in many places
    loss = lambda theta: 0.5 * jnp.sum(jnp.array([1e-3, 1e-1, 1.0, 1e2]) * theta**2) + 0.1 * jnp.sum(theta**4)
    theta0 = jnp.array([3.0, -2.0, 0.5, 0.01])
    for h_max in (0.01, 0.5, 5.0):
        _, h, _, _ = run(dal(p=p, h_max=h_max), loss, theta0, steps=100)
        # (p < 1 steps past 2/λ where λ > 1 and can diverge; h stays within bounds even then)
        assert np.all(h <= h_max) and np.all(h >= 0), f"h_max={h_max}: h in [{h.min()}, {h.max()}]"
    # no curvature along the gradient at all: h is exactly h_max
    flat = lambda theta: jnp.sum(theta)
    tx = scale_by_dal(p=p, h_max=3.0)
    _, state = tx.update(jnp.ones(2), tx.init(jnp.zeros(2)), jnp.zeros(2), value_fn=flat)
    assert float(state.learning_rate) == 3.0 and float(state.v) == 0.0


@pytest.mark.parametrize("hvp", ["exact", "finite_difference"])
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_zero_gradient_gives_no_nan(hvp, p):
    loss, _, theta0 = random_quadratic(0)
    theta = jnp.zeros_like(theta0)  # the minimum: g = 0
    tx = dal(p=p, base_lr=0.1 if p == 0 else None, hvp=hvp)
    updates, state = jax.jit(lambda g, s, t: tx.update(g, s, t, value_fn=loss))(
        jax.grad(loss)(theta), tx.init(theta), theta
    )
    assert np.all(np.asarray(updates) == 0.0)
    assert float(state.v) == 0.0
    assert float(state.learning_rate) == (0.1 if p == 0 else 5.0)


@pytest.mark.parametrize("hvp", ["exact", "finite_difference"])
def test_pytree_params_match_flat_vector(hvp):
    rng = np.random.default_rng(3)
    params = {"w": jnp.asarray(rng.standard_normal((2, 3))), "b": (jnp.asarray(rng.standard_normal(3)),)}
    flat0, unravel = ravel_pytree(params)

    def tree_loss(p):
        hidden = jnp.tanh(jnp.ones(2) @ p["w"] + p["b"][0])
        return jnp.sum(hidden**2) + 0.1 * jnp.sum(p["w"] ** 4)

    flat_loss = lambda theta: tree_loss(unravel(theta))
    tx = dal(p=1.0, hvp=hvp)
    # a few steps only: this run takes large steps and amplifies round-off differences later on
    _, h_flat, v_flat, loss_flat = run(tx, flat_loss, flat0, steps=6)
    tree_theta, h_tree, v_tree, loss_tree = run(tx, tree_loss, params, steps=6)
    np.testing.assert_allclose(h_tree, h_flat, rtol=1e-12)
    np.testing.assert_allclose(v_tree, v_flat, rtol=1e-12)
    np.testing.assert_allclose(loss_tree, loss_flat, rtol=1e-12)
    assert jax.tree.structure(tree_theta) == jax.tree.structure(params)


def test_float32_parameters_keep_their_dtype():
    loss, _, theta0 = random_quadratic(0)
    theta32 = theta0.astype(jnp.float32)
    tx = dal(p=1.0)
    state = tx.init(theta32)
    updates, state = tx.update(jax.grad(loss)(theta32).astype(jnp.float32), state, theta32, value_fn=loss)
    assert updates.dtype == jnp.float32 and state.learning_rate.dtype == jnp.float32


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(p=-1.0), "p"),
        (dict(p=float("nan")), "p"),
        (dict(h_max=0.0), "h_max"),
        (dict(h_max=-2.0), "h_max"),
        (dict(h_max=float("inf")), "h_max"),
        (dict(epsilon=float("nan")), "epsilon"),
        (dict(epsilon=float("inf")), "epsilon"),
        (dict(epsilon=0.0), "epsilon"),
        (dict(hvp="lanczos"), "hvp"),
        (dict(p=0.0), "base_lr"),
        (dict(p=0.0, base_lr=10.0), "base_lr"),
        (dict(p=1.0, base_lr=0.1), "base_lr"),
        (dict(p=0.0, base_lr=-0.1), "base_lr"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, name):
    for factory in (scale_by_dal, dal):
        with pytest.raises((ValueError, TypeError), match=rf"\b{name}\b"):
            factory(**kwargs)


def test_p_must_be_a_number():
    with pytest.raises(TypeError, match=r"\bp\b"):
        dal(p="one")


def test_update_without_the_loss_says_what_to_pass():
    theta = jnp.ones(2)
    tx = dal()
    with pytest.raises(TypeError, match="grad_fn.*value_fn"):
        tx.update(theta, tx.init(theta), theta)
    with pytest.raises(ValueError, match="params"):
        tx.update(theta, tx.init(theta), None, value_fn=jnp.sum)
    with pytest.raises(TypeError, match="value_fn"):
        tx.update(theta, tx.init(theta), theta, value_fn=3.0)
    chained = optax.chain(optax.clip_by_global_norm(1.0), dal())
    with pytest.raises(TypeError, match="grad_fn.*value_fn"):
        chained.update(theta, chained.init(theta), theta)


# ----------------------------------------------------------------------------- ways of passing the loss


def test_grad_fn_and_value_fn_agree_and_grad_fn_wins():
    loss, _, theta = random_quadratic(4)
    g = jax.grad(loss)(theta)
    tx = scale_by_dal()
    s0 = tx.init(theta)
    _, by_value = tx.update(g, s0, theta, value_fn=loss)
    _, by_grad = tx.update(g, s0, theta, grad_fn=jax.grad(loss))
    _, both = tx.update(g, s0, theta, grad_fn=jax.grad(loss), value_fn=lambda t: 7.0 * loss(t))
    np.testing.assert_allclose(by_grad.v, by_value.v, rtol=1e-12)
    np.testing.assert_allclose(both.v, by_value.v, rtol=1e-12)


def test_minibatch_reaches_the_loss_as_an_extra_argument():
    rng = np.random.default_rng(5)
    x, y = jnp.asarray(rng.standard_normal((8, 3))), jnp.asarray(rng.standard_normal(8))
    batch_loss = lambda w, batch: jnp.mean((batch[0] @ w - batch[1]) ** 2)
    w = jnp.asarray(rng.standard_normal(3))
    tx = dal()
    batch = (x[:4], y[:4])
    _, state = tx.update(jax.grad(batch_loss)(w, batch), tx.init(w), w, value_fn=batch_loss, batch=batch)
    closed = lambda w: batch_loss(w, batch)
    _, reference = tx.update(jax.grad(closed)(w), tx.init(w), w, value_fn=closed)
    np.testing.assert_allclose(state.v, reference.v, rtol=1e-12)


def test_grad_argument_fixes_the_finite_difference_after_another_transformation():
    """When the updates are not ∇E(θ) (clipped first), passing grad= keeps the FD consistent."""
    theta = jnp.array([0.7, -1.1, 0.4])
    g = jax.grad(quartic)(theta)
    u = 0.1 * g / jnp.linalg.norm(g)  # what clipping to norm 0.1 would hand on
    exact_v = jnp.linalg.norm(gdflows.hvp(quartic, theta, u)) / jnp.linalg.norm(u)
    tx = scale_by_dal(hvp="finite_difference", epsilon=1e-5)
    _, with_grad = tx.update(u, tx.init(theta), theta, value_fn=quartic, grad=g)
    np.testing.assert_allclose(with_grad.v, exact_v, rtol=1e-3)
    _, without = tx.update(u, tx.init(theta), theta, value_fn=quartic)
    assert abs(float(without.v) - float(exact_v)) > 1.0  # the documented pitfall


# ----------------------------------------------------------------------------- composition


def test_in_optax_chain_with_extra_args_under_jit():
    loss, eigenvalues, theta0 = random_quadratic(6)
    tx = optax.chain(scale_by_dal(p=1.0), optax.scale(-1.0))
    alone = dal(p=1.0)

    @jax.jit
    def two_steps(theta):
        s_chain, s_alone = tx.init(theta), alone.init(theta)
        t_chain = t_alone = theta
        for _ in range(2):
            # an unrelated extra argument travels through the chain and is ignored
            u, s_chain = tx.update(jax.grad(loss)(t_chain), s_chain, t_chain, value_fn=loss, unrelated=1.0)
            t_chain = optax.apply_updates(t_chain, u)
            u, s_alone = alone.update(jax.grad(loss)(t_alone), s_alone, t_alone, value_fn=loss)
            t_alone = optax.apply_updates(t_alone, u)
        return t_chain, t_alone, s_chain[0], s_alone

    t_chain, t_alone, s_chain, s_alone = two_steps(theta0)
    np.testing.assert_allclose(t_chain, t_alone, rtol=1e-13)
    assert isinstance(s_chain, DALState) and isinstance(s_alone, DALState)
    assert float(optax.tree.get(tx.init(theta0), "learning_rate")) == 0.0


def test_flax_nnx_optimizer_forwards_the_loss():
    from flax import nnx

    rng = np.random.default_rng(7)
    x, y = jnp.asarray(rng.standard_normal((16, 3))), jnp.asarray(rng.standard_normal((16, 2)))

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(3, 4, param_dtype=jnp.float64, rngs=rngs)
            self.out = nnx.Linear(4, 2, param_dtype=jnp.float64, rngs=rngs)

        def __call__(self, inputs):
            return self.out(jnp.tanh(self.hidden(inputs)))

    model = Model(nnx.Rngs(0))
    graphdef, params0 = nnx.split(model, nnx.Param)
    mse = lambda m: jnp.mean((m(x) - y) ** 2)

    # the same run on a flat vector, as the rest of the library sees it
    flat0, unravel = ravel_pytree(nnx.to_pure_dict(params0))

    def flat_loss(theta):
        state = nnx.clone(params0)
        nnx.replace_by_pure_dict(state, unravel(theta))
        return mse(nnx.merge(graphdef, state))

    _, h_flat, v_flat, loss_flat = run(dal(p=1.0), flat_loss, flat0, steps=5)

    optimizer = nnx.Optimizer(model, dal(p=1.0), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer):
        graph, _, rest = nnx.split(model, nnx.Param, ...)
        value_fn = lambda params: mse(nnx.merge(graph, params, rest))  # params: what the optimizer updates
        loss, grads = nnx.value_and_grad(mse)(model)
        optimizer.update(model, grads, value_fn=value_fn)
        return loss, optimizer.opt_state.learning_rate[...], optimizer.opt_state.v[...]

    records = np.array([[float(a) for a in train_step(model, optimizer)] for _ in range(5)])
    np.testing.assert_allclose(records[:, 0], loss_flat, rtol=1e-10)
    np.testing.assert_allclose(records[:, 1], h_flat, rtol=1e-10)
    np.testing.assert_allclose(records[:, 2], v_flat, rtol=1e-10)


def test_docstring_examples():
    result = doctest.testmod(optim, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ----------------------------------------------------------------------------- the training loop


def test_train_matches_the_step_by_step_loop_with_minibatches():
    """train() with batches takes the same steps as a Python loop of tx.update, and records what it says."""
    rng = np.random.default_rng(3)
    X, y = jnp.asarray(rng.standard_normal((12, 4))), jnp.asarray(rng.standard_normal(12))

    def batch_loss(theta, batch):
        return 0.5 * jnp.mean((jnp.tanh(X[batch] @ theta) - y[batch]) ** 2)

    def full_loss(theta):
        return 0.5 * jnp.mean((jnp.tanh(X @ theta) - y) ** 2)

    batches = jnp.asarray(rng.integers(0, 12, (6, 4)))
    theta0 = jnp.asarray(rng.standard_normal(4))
    tx = dal(p=1.0, h_max=2.0)
    run = optim.train(batch_loss, tx, theta0, batches=batches, objective=full_loss, evaluate=jnp.linalg.norm, every=3)

    theta, state, losses, rates, norms = theta0, tx.init(theta0), [full_loss(theta0)], [], []
    for t, batch in enumerate(batches):
        value_fn = lambda p, batch=batch: batch_loss(p, batch)
        updates, state = tx.update(jax.grad(value_fn)(theta), state, theta, value_fn=value_fn)
        theta = optax.apply_updates(theta, updates)
        losses.append(full_loss(theta))
        rates.append(state.learning_rate)
        if (t + 1) % 3 == 0:
            norms.append(jnp.linalg.norm(theta))
    np.testing.assert_allclose(run.theta, theta, rtol=1e-12)
    np.testing.assert_allclose(run.loss, losses, rtol=1e-12)
    np.testing.assert_allclose(run.learning_rate, rates, rtol=1e-12)
    np.testing.assert_allclose(run.evaluations, norms, rtol=1e-12)
    assert run.loss.shape == (7,) and run.learning_rate.shape == (6,) and run.evaluations.shape == (2,)
    assert not run.diverged


def test_train_stops_at_a_divergence_and_reads_injected_learning_rates():
    """GD at h = 1e200 on E = θ²: θ overflows at step 2; θ stays at the last finite iterate."""
    loss = lambda theta: jnp.sum(theta**2)
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=1e200)
    run = optim.train(loss, tx, jnp.array([1.0]), steps=4, objective=lambda theta: jnp.sum(jnp.abs(theta)))
    assert run.diverged
    assert np.isfinite(run.loss[:2]).all() and np.isinf(run.loss[2:]).all()
    np.testing.assert_allclose(run.theta, [1.0 - 2e200])
    np.testing.assert_array_equal(run.learning_rate[:2], [1e200, 1e200])  # h of the diverging step is kept
    assert np.isnan(run.learning_rate[2:]).all()


def test_train_without_a_learning_rate_in_the_state_records_nan_or_what_it_is_told():
    loss = lambda theta: jnp.sum(theta**2)
    plain = optim.train(loss, optax.sgd(0.1), jnp.array([1.0]), steps=3)
    told = optim.train(loss, optax.sgd(0.1), jnp.array([1.0]), steps=3, learning_rate=lambda state: 0.1)
    np.testing.assert_allclose(plain.loss, [1.0, 0.64, 0.4096, 0.262144])
    assert np.isnan(plain.learning_rate).all() and np.all(np.asarray(told.learning_rate) == 0.1)
    assert plain.evaluations.shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({}, "steps"),
        ({"steps": 0}, "steps"),
        ({"steps": 5, "every": 2}, "every"),
        ({"batches": jnp.zeros((3, 2))}, "objective"),
        ({"batches": jnp.zeros((3, 2)), "steps": 4, "objective": jnp.sum}, "steps"),
    ],
)
def test_train_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        optim.train(lambda theta: jnp.sum(theta**2), optax.sgd(0.1), jnp.array([1.0]), **kwargs)
