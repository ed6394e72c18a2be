"""The central flow: the SDCP solver, the one-direction closed form, sharpness pinned at 2/h, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdflows as gf
from gdflows.errors import EigenTrackingError, NotSmoothError, SDCPError
from gdflows.flows import EigenOptions, SDCPOptions, central_diagnostics, central_flow_run
from gdflows.sdcp import solve_sdcp
from gdflows.spectral import third_derivative_vv, track_eigenpairs


def toy(theta):
    x, y = theta[0], theta[1]
    return 0.5 * (y + x) * x**2 - 0.01 * (x + y)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sdcp_solution_satisfies_complementarity(seed):
    rng = np.random.default_rng(seed)
    k = 3
    m = k * (k + 1) // 2
    G = rng.standard_normal((m, 8))
    B = jnp.asarray(G @ G.T)
    a = rng.standard_normal((k, k))
    alpha = jnp.asarray(a + a.T - 1.0 * np.eye(k))
    X, residual, _ = solve_sdcp(alpha, B, tol=1e-12, max_iter=20000)
    assert float(residual) <= 1e-12
    i, j = np.triu_indices(k)
    w = np.where(i == j, 1.0, np.sqrt(2.0))
    x = np.asarray(X)[i, j] * w
    z = np.asarray(alpha)[i, j] * w + np.asarray(B) @ x
    Z = np.zeros((k, k))
    Z[i, j] = z / w
    Z[j, i] = z / w
    assert np.linalg.eigvalsh(np.asarray(X)).min() >= -1e-10
    assert np.linalg.eigvalsh(Z).min() >= -1e-8
    assert abs(np.sum(np.asarray(X) * Z)) <= 1e-8 * (1 + np.abs(Z).max() * np.abs(X).max())


def test_sdcp_zero_when_alpha_is_psd():
    X, residual, iterations = solve_sdcp(jnp.eye(2), jnp.eye(3), tol=1e-12)
    np.testing.assert_array_equal(np.asarray(X), 0.0)
    assert float(residual) == 0.0 and int(iterations) == 0


def test_one_direction_closed_form():
    """k = 1, restoring = 0: X = max(0, 2<-grad E, grad S>/|grad S|^2), grad S = grad^3 E[u, u]."""
    theta = jnp.array([-0.1, 6.9])
    h = 0.3
    flow = gf.central_flow(toy, lr=h, k=1, restoring=0.0)
    info = central_diagnostics(toy, theta[None], lr=h, k=1, restoring=0.0)
    w, V = np.linalg.eigh(np.asarray(gf.hessian(toy, theta)))
    u = jnp.asarray(V[:, -1])
    grad_S = third_derivative_vv(toy, theta, u)
    g = jax.grad(toy)(theta)
    sigma2 = max(0.0, float(2 * jnp.dot(-g, grad_S) / jnp.dot(grad_S, grad_S)))
    assert sigma2 > 0
    np.testing.assert_allclose(float(info.X[0, 0, 0]), sigma2, rtol=1e-12)
    velocity = flow.vector_field(0.0, flow.init(theta))[0]
    np.testing.assert_allclose(velocity, -g - 0.5 * sigma2 * grad_S, rtol=1e-12, atol=1e-15)
    # with restoring = 0 the sharpness does not move along the flow: grad S . theta' = 0
    assert abs(float(jnp.dot(grad_S, velocity))) < 1e-12


def test_sharpness_pinned_at_two_over_h_on_the_toy():
    """Solved adaptively, the central flow's sharpness stays within 1% (here 1e-6) of 2/h once unstable."""
    h = 0.3
    theta0 = jnp.array([0.1, 6.0])
    run = gf.solve(gf.central_flow(toy, lr=h), theta0, steps=300, rtol=1e-8, atol=1e-10)
    info = central_diagnostics(toy, run.theta, lr=h)
    sharp = np.asarray(info.eigenvalues[:, 0])
    active = np.asarray(info.X[:, 0, 0]) > 0
    first = int(np.argmax(active))
    assert 0 < first < 250 and active[first:].all()
    assert np.max(np.abs(sharp[first + 10 :] * h / 2 - 1)) < 1e-6
    assert np.max(sharp * h) < 2 * 1.01
    assert float(np.max(info.sdcp_residual)) <= 1e-10


def test_euler_run_matches_the_adaptive_solve_to_first_order():
    h = 0.3
    theta0 = jnp.array([0.1, 6.0])
    euler = central_flow_run(toy, theta0, lr=h, steps=100, substeps=64)
    exact = gf.solve(gf.central_flow(toy, lr=h, restoring=64.0), theta0, steps=100, rtol=1e-9, atol=1e-12)
    assert np.max(np.linalg.norm(euler.theta - exact.theta, axis=1)) < 1e-2
    assert euler.gradients == 6400


def test_iterative_eigenpairs_match_eigh():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((60, 60))
    A = jnp.asarray(m @ m.T / 60 + np.diag(np.linspace(0, 5, 60)))
    start = jnp.asarray(rng.standard_normal((60, 4)))
    lam, V, HV, count, residual = track_eigenpairs(lambda X: A @ X, start, tol=1e-9, max_iter=2000)
    expected = np.linalg.eigvalsh(np.asarray(A))[::-1][:4]
    np.testing.assert_allclose(lam, expected, rtol=1e-10)
    assert float(residual) <= 1e-9 and int(count) >= 4


def test_relu_loss_is_refused():
    loss = lambda th: jnp.sum(jax.nn.relu(th) ** 2)  # noqa: E731
    with pytest.raises(NotSmoothError, match="third derivatives"):
        gf.central_flow(loss, lr=0.1).init(jnp.ones(3))
    with pytest.raises(NotSmoothError, match="max"):
        central_flow_run(loss, jnp.ones(3), lr=0.1, steps=1)


def test_unsolvable_sdcp_is_reported_with_step_and_residual():
    """At the symmetric point of the quartic grad S = 0: the sharpness S > 2/h cannot be lowered."""
    loss = lambda w: 0.5 * 10.0 * w[0] ** 2 - 0.25 * w[0] ** 4  # noqa: E731
    with pytest.raises(SDCPError, match=r"GD step 0 .*residual 1"):
        central_flow_run(loss, jnp.zeros(1), lr=0.25, steps=3)


def test_lost_eigenvector_is_reported():
    rng = np.random.default_rng(1)
    m = rng.standard_normal((40, 40))
    A = jnp.asarray(m @ m.T / 40)
    loss = lambda th: 0.5 * th @ A @ th + 0.01 * jnp.sum(th**4)  # noqa: E731
    with pytest.raises(EigenTrackingError, match="GD step 0"):
        eigen = EigenOptions(spectrum="iterative", max_iter=0, tol=1e-12)
        central_flow_run(loss, jnp.ones(40), lr=0.1, steps=2, eigen=eigen)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: EigenOptions(spectrum="lobpcg"), "EigenOptions.spectrum must be 'auto', 'dense' or 'iterative'"),
        (lambda: EigenOptions(tol=0.0), r"EigenOptions.tol must be a positive finite number.*EigenOptions\(tol="),
        (lambda: EigenOptions(tol="tight"), "EigenOptions.tol must be a positive finite number"),
        (lambda: EigenOptions(max_iter=2.5), r"EigenOptions.max_iter must be a non-negative integer"),
        (lambda: SDCPOptions(tol=float("nan")), "SDCPOptions.tol must be a positive finite number"),
        (lambda: SDCPOptions(max_iter=-1), r"SDCPOptions.max_iter must be a non-negative integer.*SDCPOptions\("),
    ],
)
def test_bad_options_name_the_field_and_the_fix(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_options_are_values_passed_once():
    """Equal options are equal and hashable (the compiled run is cached on them); a wrong type is refused."""
    assert EigenOptions(spectrum="iterative", tol=1e-8) == EigenOptions(spectrum="iterative")
    assert hash(SDCPOptions(tol=1e-10)) == hash(SDCPOptions())
    with pytest.raises(TypeError, match=r"eigen must be an EigenOptions.*EigenOptions\(spectrum='iterative'\)"):
        gf.central_flow(toy, lr=0.3, eigen="iterative")
    with pytest.raises(TypeError, match="sdcp must be an SDCPOptions"):
        central_flow_run(toy, jnp.array([0.1, 6.0]), lr=0.3, steps=1, sdcp={"tol": 1e-9})


@pytest.mark.parametrize("d, dense", [(gf.spectral.DENSE_UP_TO, True), (gf.spectral.DENSE_UP_TO + 1, False)])
def test_auto_spectrum_is_dense_on_toys_and_iterative_on_networks(d, dense):
    """EigenOptions() finds the eigenpairs from the dense Hessian (d products) up to DENSE_UP_TO
    parameters and by LOBPCG above (far fewer products: a network never forms its Hessian by default)."""
    scales = jnp.linspace(1.0, 3.0, d)
    loss = lambda th: 0.5 * jnp.sum(scales * th**2) + 0.01 * jnp.sum(th**4)  # noqa: E731
    info = central_diagnostics(loss, jnp.full((1, d), 0.1), lr=0.5, eigen=EigenOptions())
    assert (int(info.hvps[0]) == d) is dense
    np.testing.assert_allclose(info.eigenvalues[0, 0], 3.0 + 0.12 * 0.01, rtol=1e-6)
