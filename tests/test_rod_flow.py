"""The rod flow: exact one-step map, stability threshold, quartic fixed point, cost per evaluation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdflows as gf
from gdflows.flows import rod_ends, rod_length


def quartic_loss(S, Q):
    """E(w) = sum_i (S/2) w_i^2 - (Q/4) w_i^4."""

    def loss(w):
        return jnp.sum(0.5 * S * w**2 - 0.25 * Q * w**4)

    return loss


def random_spd(rng, d):
    m = rng.standard_normal((d, d))
    return m @ m.T / d + 0.1 * np.eye(d)


def test_one_euler_step_of_size_h_is_the_gd_map():
    """From GD's rod with its + end the later one, state + h F(state) is GD's next rod, turned over."""
    rng = np.random.default_rng(1)
    H = jnp.asarray(random_spd(rng, 5))
    loss = lambda th: 0.5 * th @ H @ th + 0.1 * jnp.sum(th**4)  # noqa: E731
    h = 0.7
    run = gf.gd(loss, rng.standard_normal(5), lr=h, steps=4)
    flow = gf.rod_flow(loss, lr=h)
    for n in range(3):
        state = (0.5 * (run.theta[n] + run.theta[n + 1]), 0.5 * (run.theta[n + 1] - run.theta[n]))
        field = flow.vector_field(0.0, jax.tree.map(jnp.asarray, state))
        c, delta = jax.tree.map(lambda s, f: s + h * f, state, field)
        np.testing.assert_allclose(c + delta, run.theta[n + 1], atol=1e-13)  # turned over: + is now the earlier end
        np.testing.assert_allclose(c - delta, run.theta[n + 2], atol=1e-13)


def test_gd_rods_are_rest_points_of_the_rod_equation():
    """With + the earlier end (flow.init's orientation), delta' = 0 exactly on GD's rods; c' h is GD's centre step."""
    rng = np.random.default_rng(2)
    H = jnp.asarray(random_spd(rng, 4) * 3)
    loss = lambda th: 0.5 * th @ H @ th + 0.2 * jnp.sum(jnp.cos(th))  # noqa: E731
    h = 0.45
    run = gf.gd(loss, rng.standard_normal(4), lr=h, steps=6)
    flow = gf.rod_flow(loss, lr=h)
    state = flow.init(jnp.asarray(run.theta[0]))
    lo, hi = rod_ends(state)
    np.testing.assert_allclose(hi, run.theta[0], atol=1e-14)
    np.testing.assert_allclose(lo, run.theta[1], atol=1e-14)
    for n in range(5):
        state = (0.5 * (run.theta[n] + run.theta[n + 1]), 0.5 * (run.theta[n] - run.theta[n + 1]))
        dc, ddelta = flow.vector_field(0.0, jax.tree.map(jnp.asarray, state))
        np.testing.assert_allclose(ddelta, 0.0, atol=1e-14)
        np.testing.assert_allclose(state[0] + h * dc, 0.5 * (run.theta[n + 1] + run.theta[n + 2]), atol=1e-14)
    # off GD's rods the rod is re-created: a point rod away from a critical point gets length h/2 grad E
    c = jnp.asarray(run.theta[0])
    np.testing.assert_allclose(flow.vector_field(0.0, (c, jnp.zeros(4)))[1], 0.5 * jax.grad(loss)(c), atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linearisation_at_a_minimum_is_half_of_H_minus_2_over_h(seed):
    """d(delta')/d(delta) at delta = 0 equals (H(c) - (2/h) I)/2: unstable exactly when h lambda > 2."""
    rng = np.random.default_rng(seed)
    d = 6
    H = jnp.asarray(random_spd(rng, d) * 5)
    loss = lambda th: 0.5 * th @ H @ th + 0.3 * jnp.sum(th**4)  # noqa: E731  (minimum at 0, Hessian H)
    h = float(rng.uniform(0.1, 1.0))
    flow = gf.rod_flow(loss, lr=h)
    c = jnp.zeros(d)
    jac = jax.jacobian(lambda delta: flow.vector_field(0.0, (c, delta))[1])(jnp.zeros(d))
    np.testing.assert_allclose(jac, 0.5 * (H - (2.0 / h) * jnp.eye(d)), atol=1e-12)
    lam = np.linalg.eigvalsh(np.asarray(jac))
    expected = 0.5 * (np.linalg.eigvalsh(np.asarray(H)) - 2.0 / h)
    np.testing.assert_allclose(lam, expected, atol=1e-10)
    # the centre does not feel delta to first order: dc'/d(delta) = 0 at delta = 0
    cross = jax.jacobian(lambda delta: flow.vector_field(0.0, (c, delta))[0])(jnp.zeros(d))
    np.testing.assert_allclose(cross, 0.0, atol=1e-12)


@pytest.mark.parametrize("h_lambda, grows", [(2.0 - 1e-6, False), (2.0 + 1e-6, True), (1.5, False), (2.5, True)])
def test_threshold_at_h_lambda_equal_two(h_lambda, grows):
    """Integrated on a quadratic, a small rod along the eigenvector grows iff h lambda > 2."""
    lam = 4.0
    h = h_lambda / lam
    loss = lambda th: 0.5 * lam * th[0] ** 2 + 0.5 * th[1] ** 2  # noqa: E731
    flow = gf.rod_flow(loss, lr=h)
    state0 = (jnp.zeros(2), jnp.array([1e-3, 0.0]))
    out = gf.solve_scan(flow, state0, ts=h * jnp.arange(0.0, 21.0, 5.0), rtol=1e-12, atol=1e-30, solver="tsit5")
    delta = np.asarray(out.state[1][:, 0])
    rate = np.log(np.abs(delta[-1] / delta[0])) / (20 * h)
    np.testing.assert_allclose(rate, 0.5 * (lam - 2.0 / h), rtol=1e-6, atol=1e-9)  # exact exponential rate
    assert (delta[-1] > delta[0]) == grows


@pytest.mark.parametrize("S, Q, h", [(10.0, 1.0, 0.25), (3.0, 0.5, 0.8), (1.0, 2.0, 2.2)])
def test_quartic_fixed_point_is_gd_period_two_orbit(S, Q, h):
    """E = S w^2/2 - Q w^4/4: the rod (0, delta) with delta^2 = (S - 2/h)/Q is a fixed point, GD's 2-cycle."""
    flow = gf.rod_flow(quartic_loss(S, Q), lr=h)
    delta_star = np.sqrt((S - 2.0 / h) / Q)
    field = flow.vector_field(0.0, (jnp.zeros(1), jnp.array([delta_star])))
    np.testing.assert_allclose(np.concatenate(field), 0.0, atol=1e-12)
    # GD's period-2 orbit: w -> -w with |w| = delta_star
    w = delta_star
    assert abs((w - h * (S * w - Q * w**3)) + w) < 1e-12


def test_quartic_rod_flow_converges_to_the_closed_form():
    """From GD's first rod the integrated rod flow settles at delta^2 = (S - 2/h)/Q to 1e-8; so does GD."""
    S, Q, h = 10.0, 1.0, 0.25  # h S = 2.5: the 2-cycle is stable for 2 < h S < 3
    loss = quartic_loss(S, Q)
    steps = 200
    run = gf.solve(gf.rod_flow(loss, lr=h), jnp.array([0.1]), steps=steps, rtol=1e-12, atol=1e-14)
    state = run.state
    closed = (S - 2.0 / h) / Q
    assert abs(float(rod_length(state)[-1]) ** 2 - closed) < 1e-8
    assert abs(float(run.theta[-1, 0])) < 1e-8
    gd = gf.gd(loss, jnp.array([0.1]), lr=h, steps=steps)
    assert abs(gd.theta[-1, 0] ** 2 - closed) < 1e-8


def test_cost_two_gradients_no_eigensolver():
    """One field evaluation traces the loss's gradient exactly twice and calls no eigensolver."""
    calls = []

    def loss(th):
        calls.append(1)
        return jnp.sum(jnp.cosh(th)) + 0.5 * th @ th

    flow = gf.rod_flow(loss, lr=0.3)
    state = (jnp.ones(4), 0.1 * jnp.ones(4))
    jaxpr = str(jax.make_jaxpr(lambda s: flow.vector_field(0.0, s))(state))
    assert len(calls) == 2
    assert "eigh" not in jaxpr and "eig" not in jaxpr.replace("eight", "")


def test_rod_flow_rejects_bad_lr():
    with pytest.raises(ValueError, match="lr must be"):
        gf.rod_flow(lambda x: jnp.sum(x**2), lr=-1.0)
