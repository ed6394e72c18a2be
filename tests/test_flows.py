"""NGF, IGR and the third-order flow against their closed forms; the common face of flows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import gdflows as gf


def random_spd(rng, d, scale=1.0):
    m = rng.standard_normal((d, d))
    return scale * (m @ m.T / d + 0.1 * np.eye(d))


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    H = random_spd(rng, 6)
    return H, (lambda theta: 0.5 * theta @ jnp.asarray(H) @ theta), rng.standard_normal(6)


def test_gradient_flow_matches_expm(problem):
    H, loss, theta0 = problem
    h, steps = 0.3, 10
    run = gf.solve(gf.gradient_flow(loss, lr=h), theta0, steps=steps, rtol=1e-12, atol=1e-14)
    expected = np.stack([scipy.linalg.expm(-n * h * H) @ theta0 for n in range(steps + 1)])
    np.testing.assert_allclose(run.theta, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_modified_flows_match_expm_on_quadratics(problem, order):
    """IGR: expm(-t(H + h/2 H^2)); third order adds h^2/3 H^3 (the third derivative vanishes)."""
    H, loss, theta0 = problem
    h, steps = 0.3, 10
    generator = H + h / 2 * H @ H + (h**2 / 3 * H @ H @ H if order == 2 else 0)
    run = gf.solve(gf.modified_flow(loss, lr=h, order=order), theta0, steps=steps, rtol=1e-12, atol=1e-14)
    expected = np.stack([scipy.linalg.expm(-n * h * generator) @ theta0 for n in range(steps + 1)])
    np.testing.assert_allclose(run.theta, expected, rtol=1e-9, atol=1e-12)


def test_third_order_flow_third_derivative_term():
    """On E = sum a_i theta_i^4 the term grad^3 E[g, g] is 24 a_i theta_i g_i^2, g_i = 4 a_i theta_i^3."""
    a = jnp.array([0.5, 1.0, 2.0])
    loss = lambda theta: jnp.sum(a * theta**4)
    theta = jnp.array([0.3, -0.7, 1.1])
    h = 0.1
    g = 4 * a * theta**3
    hess = 12 * a * theta**2
    expected = -(g + h / 2 * hess * g + h**2 * (hess**2 * g / 3 + 24 * a * theta * g**2 / 12))
    field = gf.modified_flow(loss, lr=h, order=2).vector_field(0.0, theta)
    np.testing.assert_allclose(field, expected, rtol=1e-13)


def test_modified_flow_rejects_other_orders():
    with pytest.raises(ValueError, match="order must be one of 1, 2"):
        gf.modified_flow(lambda x: jnp.sum(x**2), lr=0.1, order=3)


def test_igr_is_gradient_of_the_modified_loss(problem):
    """The IGR field is -grad(E + h/4 |grad E|^2), computed independently by autodiff."""
    _, loss, theta0 = problem
    h = 0.2
    modified = lambda th: loss(th) + h / 4 * jnp.sum(jax.grad(loss)(th) ** 2)
    field = gf.modified_flow(loss, lr=h).vector_field(0.0, jnp.asarray(theta0))
    np.testing.assert_allclose(field, -jax.grad(modified)(jnp.asarray(theta0)), rtol=1e-12)


def test_every_flow_has_the_same_face(problem):
    _, loss, theta0 = problem
    for flow in (
        gf.gradient_flow(loss, lr=0.1),
        gf.modified_flow(loss, lr=0.1),
        gf.principal_flow(loss, lr=0.1),
        gf.principal_flow(loss, lr=0.1, space="real"),
    ):
        state = flow.init(jnp.asarray(theta0))
        derivative = flow.vector_field(0.0, state)
        assert jax.tree.structure(derivative) == jax.tree.structure(state)
        np.testing.assert_array_equal(flow.position(state), theta0)
        assert isinstance(flow.name, str) and flow.loss is loss and flow.lr == 0.1
