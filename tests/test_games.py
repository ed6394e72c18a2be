"""Two-player games: the modified flows' local error order, pytrees, the regulariser, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdflows as gf
from gdflows import games as gm
from gdflows.flows._base import bind, parameter_flow

HS = (0.1, 0.05, 0.025, 0.0125)


def _loss1(p, t):
    return jnp.sum(jnp.sin(p) * t) + 0.3 * jnp.sum(p**2 * jnp.cos(t)) + 0.1 * jnp.sum(p**4)


def _loss2(p, t):
    return -jnp.sum(jnp.sin(p) * t) + 0.2 * jnp.sum(jnp.tanh(t) ** 2 * p) + 0.1 * jnp.sum(t**4)


@pytest.fixture(scope="module")
def nonlinear():
    """A smooth non-quadratic, non-zero-sum game, two parameters per player."""
    return gm.game(_loss1, _loss2, jnp.array([0.7, -0.4]), jnp.array([0.3, 0.9]))


def _slope(G, flow_of, step_of):
    errors = []
    for h in HS:
        discrete = step_of(h).theta[1]
        errors.append(np.linalg.norm(gf.solve(flow_of(h), G.z0, steps=1).theta[1] - discrete))
    return np.polyfit(np.log(HS), np.log(errors), 1)[0], errors


@pytest.mark.parametrize("alpha, lam", [(1.0, 1.0), (1.0, 0.6)])
def test_simultaneous_modified_flow_is_third_order_and_plain_second(nonlinear, alpha, lam):
    G = nonlinear
    step = lambda h: gm.simultaneous_gd(G, lr=h, steps=1, alpha=alpha, lam=lam)  # noqa: E731
    modified, errors = _slope(G, lambda h: gm.simultaneous_flow(G, lr=h, alpha=alpha, lam=lam), step)
    plain, _ = _slope(G, lambda h: gm.game_flow(G, lr=h, alpha=alpha, lam=lam), step)
    assert abs(modified - 3) < 0.3, (modified, errors)
    assert abs(plain - 2) < 0.3, plain


@pytest.mark.parametrize("m, k", [(1, 1), (2, 3), (4, 1)])
def test_alternating_modified_flow_is_third_order_and_plain_second(nonlinear, m, k):
    G = nonlinear
    step = lambda h: gm.alternating_gd(G, lr=h, steps=1, alpha=1.0, lam=0.6, m=m, k=k)  # noqa: E731
    modified, errors = _slope(G, lambda h: gm.alternating_flow(G, lr=h, alpha=1.0, lam=0.6, m=m, k=k), step)
    plain, _ = _slope(G, lambda h: gm.game_flow(G, lr=h, alpha=1.0, lam=0.6), step)
    assert abs(modified - 3) < 0.3, (modified, errors)
    assert abs(plain - 2) < 0.3, plain


def _released_alternating(loss1, loss2, players, alpha, lam, h, z):
    """The released code's alternating flow (m = k = 1), each player's equation in its own time, times its rate."""
    field = jax.tree_util.Partial(gm._field, loss1, loss2, players)
    F = field(z)
    is_phi = jnp.arange(z.size) < players.d_phi
    _, J_phi = jax.jvp(field, (z,), (F,))  # f_phi f + f_theta g
    _, J_theta = jax.jvp(field, (z,), (jnp.where(is_phi, -(2 * alpha / lam - 1), 1.0) * F,))
    drift = jnp.where(is_phi, alpha * J_phi, lam * J_theta)
    return jnp.where(is_phi, alpha, lam) * (F - 0.5 * h * drift)


def test_released_alternating_form_agrees_only_for_equal_rates(nonlinear):
    """With alpha != lambda the released coefficients leave an O(h^2) error; with alpha = lambda they are ours."""
    G = nonlinear

    def released(h, alpha, lam):
        field = bind(_released_alternating, G.loss1, G.loss2, G.players, *map(jnp.asarray, (alpha, lam, h)))
        return parameter_flow("released", G.loss1, field, lr=h)

    for (alpha, lam), order in (((1.0, 1.0), 3), ((1.0, 0.5), 2)):
        step = lambda h, a=alpha, b=lam: gm.alternating_gd(G, lr=h, steps=1, alpha=a, lam=b)  # noqa: E731
        slope, _ = _slope(G, lambda h, a=alpha, b=lam: released(h, a, b), step)
        assert abs(slope - order) < 0.3, (alpha, lam, slope)


def test_pytree_players_give_the_flat_results():
    flat = gm.game(_loss1, _loss2, jnp.array([0.7, -0.4]), jnp.array([0.3, 0.9]))
    tree = gm.game(
        lambda p, t: _loss1(jnp.stack([p["a"], p["b"]]), t[0]),
        lambda p, t: _loss2(jnp.stack([p["a"], p["b"]]), t[0]),
        {"a": jnp.array(0.7), "b": jnp.array(-0.4)},
        (jnp.array([0.3, 0.9]),),
    )
    np.testing.assert_array_equal(flat.z0, tree.z0)
    run = gm.alternating_gd(tree, lr=0.1, steps=5, m=2)
    np.testing.assert_allclose(run.theta, gm.alternating_gd(flat, lr=0.1, steps=5, m=2).theta, rtol=1e-14)
    phi, theta = run.params
    assert phi["a"].shape == (6,) and theta[0].shape == (6, 2)
    sol = gf.solve(gm.simultaneous_flow(tree, lr=0.1), tree.z0, steps=3)
    np.testing.assert_allclose(sol.theta, gf.solve(gm.simultaneous_flow(flat, lr=0.1), flat.z0, steps=3).theta)


def test_simultaneous_gd_is_the_euler_map_and_alternating_uses_the_new_phi():
    G = gm.linear_game(0.0, 0.0, [1.0], [0.0])  # f = theta, g = -phi
    sim = gm.simultaneous_gd(G, lr=0.5, steps=1, alpha=2.0)
    np.testing.assert_allclose(sim.theta[1], [1.0, -0.5])
    alt = gm.alternating_gd(G, lr=0.5, steps=1, alpha=2.0)
    np.testing.assert_allclose(alt.theta[1], [1.0, -0.5])  # phi moves by alpha h theta = 0
    alt = gm.alternating_gd(gm.linear_game(0.0, 0.0, [1.0], [1.0]), lr=0.5, steps=1)
    np.testing.assert_allclose(alt.theta[1], [1.5, 1 - 0.5 * 1.5])
    assert alt.loss[0] == pytest.approx(-1.0)  # L1 = -phi theta


def test_dirac_gan_flow_conserves_the_radius_and_simultaneous_gd_spirals_out():
    G = gm.dirac_gan(1.0, 1.0)
    sol = gf.solve(gm.game_flow(G, lr=0.1), G.z0, steps=200)
    radius = np.linalg.norm(sol.theta, axis=1)
    np.testing.assert_allclose(radius, np.sqrt(2), rtol=1e-9)
    sim = gm.simultaneous_gd(G, lr=0.1, steps=200)
    assert np.linalg.norm(sim.theta[-1]) > 1.05 * np.sqrt(2)


def test_regulariser_removes_the_radius_growth_on_the_dirac_gan():
    G = gm.dirac_gan(1.0, 1.0)
    h, steps = 0.1, 500
    plain = np.log(np.linalg.norm(gm.simultaneous_gd(G, lr=h, steps=steps).theta, axis=1))
    reg = np.log(np.linalg.norm(gm.simultaneous_gd(gm.drift_regularised(G, lr=h), lr=h, steps=steps).theta, axis=1))
    growth_plain = (plain[-1] - plain[0]) / steps
    growth_reg = (reg[-1] - reg[0]) / steps
    assert growth_plain > 5e-4, growth_plain
    assert growth_reg < 0.05 * growth_plain, (growth_reg, growth_plain)


def test_regulariser_has_the_stated_losses():
    G = gm.linear_game(0.2, 0.3, [0.5], [-0.7])
    R = gm.drift_regularised(G, lr=0.2, alpha=2.0, lam=0.5)
    phi, theta = 0.5, -0.7
    g_norm = (phi + 0.3 * theta) ** 2  # |grad_theta L2|^2
    f_norm = (0.2 * phi - theta) ** 2  # |grad_phi L1|^2
    assert float(R.loss1(G.z0)) == pytest.approx(float(G.loss1(G.z0)) + 0.5 * 0.2 / 4 * g_norm)
    assert float(R.loss2(G.z0)) == pytest.approx(float(G.loss2(G.z0)) + 2.0 * 0.2 / 4 * f_norm)


def test_bad_input_names_the_parameter():
    G = gm.dirac_gan()
    with pytest.raises(ValueError, match="alpha"):
        gm.simultaneous_gd(G, lr=0.1, steps=2, alpha=-1.0)
    with pytest.raises(ValueError, match="m"):
        gm.alternating_flow(G, lr=0.1, m=0)
    with pytest.raises(TypeError, match="Game"):
        gm.game_flow(lambda z: z, lr=0.1)
    with pytest.raises(ValueError, match="loss1 must return a real scalar"):
        gm.game(lambda p, t: p * t, lambda p, t: jnp.sum(p), jnp.ones(2), jnp.ones(2))
    with pytest.raises(ValueError, match="both players"):
        gm.game(lambda p, t: 0.0, lambda p, t: 0.0, {}, jnp.ones(2))


def test_linear_game_fields_are_the_closed_form_matrices():
    """On f = -eps phi + theta, g = -phi - eps theta with rates alpha, lambda: the flows are z' = M z with
    M = B - h/2 B^2 (simultaneous, B = D A) and, alternating, the theta-row's g_phi f term flipped."""
    eps, h, alpha, lam, m, k = 0.09, 0.2, 1.5, 0.7, 2, 3
    G = gm.linear_game(eps, eps, [0.3], [-0.4])
    A = np.array([[-eps, 1.0], [-1.0, -eps]])
    D = np.diag([alpha, lam])
    f_phi, f_theta, g_phi, g_theta = A[0, 0], A[0, 1], A[1, 0], A[1, 1]
    sim = D @ A - h / 2 * D @ A @ D @ A
    alt = D @ A - h / 2 * D @ np.array(
        [
            [alpha / m * f_phi * f_phi + lam * f_theta * g_phi, alpha / m * f_phi * f_theta + lam * f_theta * g_theta],
            [lam / k * g_theta * g_phi - alpha * g_phi * f_phi, lam / k * g_theta * g_theta - alpha * g_phi * f_theta],
        ]
    )
    for flow, M in (
        (gm.game_flow(G, lr=h, alpha=alpha, lam=lam), D @ A),
        (gm.simultaneous_flow(G, lr=h, alpha=alpha, lam=lam), sim),
        (gm.alternating_flow(G, lr=h, alpha=alpha, lam=lam, m=m, k=k), alt),
    ):
        for z in (np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.3, -0.4])):
            np.testing.assert_allclose(flow.vector_field(0.0, jnp.asarray(z)), M @ z, rtol=1e-13, atol=1e-15)
