"""Normalized GD, GD on √loss and their limiting flows on the manifold of minimisers (Arora, Li & Panigrahi 2022)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import gdflows as gf
import gdflows.problems as gp
from gdflows.flows import normalized_gd_flow, project_to_manifold, sqrt_loss_flow

VALLEY = gp.valley_2d()


def _valley_drift(algorithm, eta):
    """Measured drift of y per step over an even number of steps after the approach, and its relative error
    against the closed form averaged over the same iterates."""
    n0, m = int(2 / eta), 2 * int(0.05 / eta**2)
    run = algorithm(VALLEY.loss, jnp.asarray(VALLEY.start), lr=eta, steps=n0 + m)
    y = run.theta[n0 : n0 + m + 1, 1]
    lam, dlam = 1 + y[:-1] ** 2, 2 * y[:-1]
    predicted = -(eta**2) / 4 * dlam / lam if algorithm is gf.normalized_gd else -(eta**2) / 8 * dlam
    measured = (y[-1] - y[0]) / m
    return abs(measured / predicted.mean() - 1)


@pytest.mark.parametrize("algorithm", [gf.normalized_gd, gf.sqrt_loss_gd])
def test_valley_drift_matches_the_closed_form(algorithm):
    # The relative error divided by eta^2, measured at eta = 0.2, 0.1, 0.05, 0.025, 0.0125:
    # normalized GD 0.060, 0.22, 0.12, 0.11, 0.096; GD on sqrt E 0.054, 0.24, 1.4e-4, 1.0e-3, 6.6e-3.
    # So the error is O(eta^2), not the O(eta) the theory guarantees, and its constant depends on the
    # phase a of the 2-cycle {a, a - eta ...}, which the approach sets: it does not halve regularly with
    # eta (for sqrt E it jumps by 10^3), so the assertion is the O(eta^2) envelope, not a ratio.
    etas = (0.1, 0.05, 0.025)
    errors = [_valley_drift(algorithm, eta) for eta in etas]
    for eta, error in zip(etas, errors, strict=True):
        assert error < 0.3 * eta**2, errors
    assert errors[-1] < errors[0] / 4, errors


def test_valley_two_cycle_amplitudes():
    eta = 0.05
    run = gf.normalized_gd(VALLEY.loss, jnp.asarray(VALLEY.start), lr=eta, steps=400)
    x = run.theta[-2:, 0]
    assert abs(abs(x[0] - x[1]) - eta) < 1e-3 * eta  # x alternates between a and a - eta
    run = gf.sqrt_loss_gd(VALLEY.loss, jnp.asarray(VALLEY.start), lr=eta, steps=400)
    x, y = run.theta[-2:, 0], run.theta[-1, 1]
    assert abs(abs(x[0] - x[1]) - eta * np.sqrt((1 + y**2) / 2)) < 1e-2 * eta  # the step eta sqrt(lambda / 2)


def test_constant_step_gd_does_not_drift():
    run = gf.gd(VALLEY.loss, jnp.asarray(VALLEY.start), lr=0.5, steps=2000)  # stable: 0.5 * lambda_1 < 2
    y = run.theta[:, 1]
    assert abs(y[-1] - y[1000]) < 1e-12  # converged onto Gamma: no motion along it


def _factorisation_closed_form(a0, tau, normalized):
    """Both flows on ab = 1 parametrised by a (the book page derives da/dtau)."""

    def rate(_, a):
        a4 = a**4
        return -0.5 * a**3 * (a4 - 1) / (a4 + 1) ** 2 if normalized else -0.125 * a * (a4 - 1) / (a4 + 1)

    return solve_ivp(rate, (0, tau[-1]), [a0], t_eval=tau, rtol=1e-12, atol=1e-14).y[0]


@pytest.mark.parametrize("factory", [normalized_gd_flow, sqrt_loss_flow])
def test_factorisation_flow_against_its_closed_form(factory):
    problem = gp.scalar_factorisation()
    x0 = jnp.array([2.0, 0.5])
    sol = gf.solve(factory(problem.loss, lr=1.0), x0, steps=20)  # lr = 1: the save times are tau itself
    a = _factorisation_closed_form(2.0, sol.times, factory is normalized_gd_flow)
    assert np.max(np.abs(sol.theta[:, 0] - a)) < 1e-8
    assert np.max(sol.loss) < 1e-24  # stays on ab = 1
    lam = 0.5 * np.sum(sol.theta**2, axis=1)
    assert np.all(np.diff(lam) <= 1e-12) and lam[-1] < lam[0]
    if factory is normalized_gd_flow:  # the faster one reaches the balanced point a = b = 1
        assert np.max(np.abs(sol.theta[-1] - 1)) < 1e-3


def test_flow_time_is_eta_squared_times_steps():
    problem = gp.scalar_factorisation()
    x0 = jnp.array([2.0, 0.5])
    tau = gf.solve(normalized_gd_flow(problem.loss, lr=1.0), x0, steps=1).theta[-1]
    steps = gf.solve(normalized_gd_flow(problem.loss, lr=0.1), x0, steps=100).theta[-1]  # tau = 0.01 * 100
    assert np.max(np.abs(tau - steps)) < 1e-9


def test_diagonal_network_flow_reduces_sharpness_on_the_manifold():
    problem = gp.diagonal_network()
    # lr = 0.5: tau = 0.25 n, so 4 steps are tau = 1. Near tau = 1.12 the top two eigenvalues meet, lambda_1 stops
    # being differentiable and the solver's steps collapse (measured): the flow is defined while lambda_1 is simple.
    flow = sqrt_loss_flow(problem.loss, lr=0.5, codim=problem.codim)
    sol = gf.solve(flow, jnp.asarray(problem.start), steps=4, solver="tsit5", rtol=1e-9, atol=1e-11, max_steps=5000)
    assert not sol.diverged, sol.stop_reason
    assert sol.stats.rejected_steps < sol.stats.accepted_steps, sol.stats  # a smooth field
    lam = np.array([problem.sharpness(x) for x in sol.theta])
    dense = np.array([gf.sharpness(problem.loss, x) for x in sol.theta])
    assert np.max(np.abs(lam - dense) / dense) < 1e-9  # the closed form of lambda_1 on Gamma
    assert np.all(np.diff(lam) < 0) and lam[-1] < 0.9 * lam[0], lam
    assert np.max(sol.loss) < 1e-20  # on Gamma to round-off (the retraction's residual)


def test_lanczos_field_matches_the_dense_one():
    problem = gp.diagonal_network()
    x = project_to_manifold(problem.loss, jnp.asarray(problem.start)).theta
    dense = sqrt_loss_flow(problem.loss, lr=1.0, codim=5).vector_field(0.0, x)
    assert np.max(np.abs(sqrt_loss_flow(problem.loss, lr=1.0).vector_field(0.0, x) - dense)) < 1e-10  # by null_tol
    lanczos = sqrt_loss_flow(problem.loss, lr=1.0, spectrum="lanczos", codim=5, krylov_dim=40)
    assert np.max(np.abs(lanczos.vector_field(0.0, x) - dense)) < 1e-8 * np.max(np.abs(dense))


def test_projection_is_the_gradient_flow_limit():
    # E = (ab - 1)^2 / 4: the gradient flow conserves a^2 - b^2, so Phi(a, b) solves ab = 1 with it.
    loss = gp.scalar_factorisation().loss
    a, b = 2.0, 0.3
    p = project_to_manifold(loss, jnp.array([a, b]))
    c = a**2 - b**2
    a_inf = np.sqrt((c + np.sqrt(c**2 + 4)) / 2)
    assert np.max(np.abs(p.theta - np.array([a_inf, 1 / a_inf]))) < 1e-10
    assert p.loss < 1e-25 and p.grad_norm < 1e-12


def test_guards_at_a_minimum_and_sharpness_tracking():
    loss = lambda th: 0.5 * jnp.sum(th**2)  # noqa: E731
    assert np.all(gf.normalized_gd(loss, jnp.zeros(2), lr=0.1, steps=3).theta == 0)
    assert np.all(gf.sqrt_loss_gd(loss, jnp.zeros(2), lr=0.1, steps=3).theta == 0)
    run = gf.normalized_gd(VALLEY.loss, jnp.asarray(VALLEY.start), lr=0.05, steps=100, sharpness_every=10)
    dense = [gf.sharpness(VALLEY.loss, x) for x in run.theta]
    assert np.max(np.abs(run.sharpness - dense)) < 1e-10
    plain = gf.normalized_gd(VALLEY.loss, jnp.asarray(VALLEY.start), lr=0.05, steps=100)
    assert np.max(np.abs(run.final_theta - plain.theta[-1])) == 0


def test_bad_options_name_the_parameter():
    with pytest.raises(ValueError, match="eps"):
        gf.normalized_gd(VALLEY.loss, jnp.asarray(VALLEY.start), lr=0.1, steps=3, eps=-1.0)
    with pytest.raises(ValueError, match="codim"):
        sqrt_loss_flow(VALLEY.loss, lr=0.1, spectrum="lanczos")
    with pytest.raises(ValueError, match="spectrum"):
        sqrt_loss_flow(VALLEY.loss, lr=0.1, spectrum="krylov")
    with pytest.raises(ValueError, match="examples"):
        gp.diagonal_network(features=5, examples=5)


def test_sqrt_gd_is_gd_on_the_root():
    loss = gp.scalar_factorisation().loss
    root = lambda th: jnp.sqrt(loss(th))  # noqa: E731
    x0 = jnp.array([2.0, 0.3])
    ours = gf.sqrt_loss_gd(loss, x0, lr=0.05, steps=50).theta
    plain = gf.gd(root, x0, lr=0.05, steps=50).theta
    assert np.max(np.abs(ours - plain)) < 1e-12
    assert jax.numpy.isfinite(ours).all()
