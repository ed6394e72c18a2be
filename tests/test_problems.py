"""The toy landscapes of gdflows.problems and the measurements of gdflows.analysis."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdflows as gf
import gdflows.analysis as ga
import gdflows.problems as gp

LANDSCAPES = [
    gp.two_minima_1d(),
    gp.two_minima_2d(),
    gp.quartic_two_minima(),
    gp.saddle_2d(),
    gp.saddle_quadratic(stable=2.0, unstable=0.5),
]
EXPECTED_KINDS = {
    "two minima (1-D)": {"wide": "minimum", "narrow": "minimum", "barrier": "maximum"},
    "two minima (2-D)": {"wide": "minimum", "narrow": "minimum", "saddle": "saddle"},
    "quartic two minima (1-D)": {"wide": "minimum", "barrier": "maximum", "sharp": "minimum"},
    "strict saddle": {"saddle": "saddle", "minimum +": "minimum", "minimum -": "minimum"},
    "quadratic saddle": {"saddle": "saddle"},
}


@pytest.mark.parametrize("land", LANDSCAPES, ids=lambda land: land.name)
def test_critical_points_are_critical_with_the_stated_eigenvalues(land):
    grad = jax.grad(land.loss)
    for key, point in land.critical_points().items():
        assert point.kind == EXPECTED_KINDS[land.name][key], (key, point)
        assert float(jnp.linalg.norm(grad(jnp.asarray(point.point)))) < 1e-10
        np.testing.assert_allclose(
            point.eigenvalues,
            np.linalg.eigvalsh(np.asarray(gf.hessian(land.loss, jnp.asarray(point.point)))),
            rtol=1e-12,
        )


def test_saddle_eigenvalues_match_the_formula():
    points = gp.saddle_2d(stable=3.0, unstable=2.0, quartic=2.0).critical_points()
    np.testing.assert_allclose(points["saddle"].eigenvalues, [-2.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(points["minimum +"].point, [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(points["minimum +"].eigenvalues, [3.0, 4.0], atol=1e-12)


def test_two_minima_settings_straddle_the_stability_threshold():
    points = gp.two_minima_1d().critical_points()
    lam_s, lam_w = points["narrow"].eigenvalues[0], points["wide"].eigenvalues[0]
    assert 0.5 * lam_w < 2 < 0.5 * lam_s  # the learning rate of F4
    assert 0.15 * lam_s < 2  # F4's control


@pytest.mark.parametrize("land", LANDSCAPES, ids=lambda land: land.name)
def test_losses_are_holomorphic(land):
    """Complex step: Im E(x + i eps v) / eps equals the real directional derivative."""
    rng = np.random.default_rng(0)
    d = len(next(iter(land.guesses.values())))
    eps = 1e-20
    for _ in range(3):
        x = jnp.asarray(rng.normal(size=d) + 1.5)
        v = jnp.asarray(rng.normal(size=d))
        complex_step = float(jnp.imag(land.loss(x + 1j * eps * v))) / eps
        real = float(jax.grad(land.loss)(x) @ v)
        assert complex_step == pytest.approx(real, rel=1e-12, abs=1e-14)
        gf.check_holomorphic(land.loss, x)


def test_pf_reproduces_gd_near_a_quadratic_minimum():
    """Close to a minimum the loss is quadratic to O(offset^3), and there the PF is exact."""
    land = gp.two_minima_2d()
    minimum = land.critical_points()["narrow"].point
    h = 0.5  # h lambda_s > 2: GD oscillates away from the minimum, the PF with it
    theta0 = jnp.asarray(minimum + np.array([1e-7, -2e-7]))
    gd = gf.gd(land.loss, theta0, lr=h, steps=3)
    pf = gf.solve(gf.principal_flow(land.loss, lr=h), theta0, steps=3, rtol=1e-12, atol=1e-20)
    offsets = np.linalg.norm(gd.theta - minimum, axis=1)
    assert offsets[-1] > 50 * offsets[0]  # the instability is really at work
    error = np.linalg.norm(pf.theta - gd.theta, axis=1)
    assert np.all(error <= 1e-3 * offsets + 1e-15), (error, offsets)


@pytest.mark.parametrize("x0", [0.0, 1.0])
def test_escape_rate_is_exact_on_a_pure_saddle(x0):
    a, b, h = 2.0, 0.5, 0.3
    land = gp.saddle_quadratic(stable=a, unstable=b)
    run = gf.gd(land.loss, jnp.asarray([x0, 1e-12]), lr=h, steps=120)
    distance = np.linalg.norm(run.theta, axis=1)
    fit = ga.escape_rate(run.times, distance, low=1e-9, high=1e-2)
    assert fit.rate == pytest.approx(np.log1p(h * b) / h, rel=1e-10)
    assert fit.points >= 3


def test_escape_rate_recovers_an_exponential_and_refuses_a_short_window():
    t = np.linspace(0.0, 10.0, 101)
    fit = ga.escape_rate(t, 1e-8 * np.exp(1.7 * t), low=1e-8, high=1.0)
    assert fit.rate == pytest.approx(1.7, rel=1e-12)
    with pytest.raises(ValueError, match="samples"):
        ga.escape_rate(t, 1e-8 * np.exp(1.7 * t), low=0.5, high=0.6)


def test_classify_endpoints_marks_divergence():
    centres = np.array([[0.0, 0.0], [2.0, 0.0]])
    points = np.array([[0.001, 0.0], [2.0, 0.01], [1.0, 1.0], [np.nan, 0.0], [np.inf, 1.0], [50.0, 0.0]])
    labels = ga.classify_endpoints(points, centres, [0.1, 0.1], bound=10.0)
    assert labels.tolist() == [0, 1, 2, 3, 3, 3]
    assert ga.exit_time([0.0, 1.0, 2.0], [True, True, False]) == 2.0
    assert ga.exit_time([0.0, 1.0], [True, True]) is None


def test_quartic_two_minima_has_the_closed_form_critical_points():
    # E'(x) = s x (x - b)(x - 1): minima at 0 and 1, barrier at b; E'' = s b, -s b (1 - b), s (1 - b) there
    points = gp.quartic_two_minima().critical_points()
    expected = {
        "wide": ("minimum", 0.0, 1.0),
        "barrier": ("maximum", 1.0 / 9.0, -8.0 / 9.0),
        "sharp": ("minimum", 1.0, 8.0),
    }
    for name, (kind, x, curvature) in expected.items():
        assert points[name].kind == kind
        np.testing.assert_allclose(points[name].point, [x], atol=1e-14)
        np.testing.assert_allclose(points[name].eigenvalues, [curvature], rtol=1e-13)
    b, s = 0.25, 4.0
    other = gp.quartic_two_minima(barrier=b, scale=s)
    for x, curvature in ((0.0, s * b), (b, -s * b * (1 - b)), (1.0, s * (1 - b))):
        assert float(jax.grad(other.loss)(jnp.array([x]))[0]) == pytest.approx(0.0, abs=1e-15)
        assert float(gf.hessian(other.loss, jnp.array([x]))[0, 0]) == pytest.approx(curvature, rel=1e-13)
    # the defaults are the loss of the escape figure, 9 (x^4/4 - (10/9) x^3/3 + x^2/18)
    x = jnp.array([0.7])
    assert float(gp.quartic_two_minima().loss(x)) == pytest.approx(
        9 * (0.7**4 / 4 - (10 / 9) * 0.7**3 / 3 + 0.7**2 / 18)
    )


@pytest.mark.parametrize("kwargs", [{"barrier": 1.0}, {"barrier": 0.0}, {"scale": -1.0}, {"barrier": True}])
def test_quartic_two_minima_refuses_a_barrier_outside_the_minima(kwargs):
    with pytest.raises((ValueError, TypeError), match="barrier|scale"):
        gp.quartic_two_minima(**kwargs)
