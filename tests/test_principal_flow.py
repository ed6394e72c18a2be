"""The principal flow against closed forms: GD's iterates on quadratics, logm, the coefficient c."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import gdflows as gf
from gdflows.flows.principal import _coefficient

REGIMES = {"saddle": (-1.6, -0.05), "fast": (0.05, 0.9), "damped": (1.1, 1.95), "growing": (2.05, 2.6)}


def quadratic(H):
    H = jnp.asarray(H)
    return lambda theta: 0.5 * theta @ H @ theta


def random_orthogonal(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def hessian_with_regimes(rng, d, h, regimes):
    """A random symmetric matrix whose eigenvalues x = h lambda fall in the given regimes, in turn."""
    names = [regimes[i % len(regimes)] for i in range(d)]
    x = np.array([rng.uniform(*REGIMES[name]) for name in names])
    u = random_orthogonal(rng, d)
    return (u * (x / h)) @ u.T


def gd_iterates(H, theta0, h, steps):
    step = np.eye(len(theta0)) - h * H
    out = [np.asarray(theta0)]
    for _ in range(steps):
        out.append(step @ out[-1])
    return np.stack(out)


def relative_error(flow_theta, gd_theta):
    return np.max(np.linalg.norm(flow_theta - gd_theta, axis=1) / np.linalg.norm(gd_theta, axis=1))


@pytest.mark.parametrize(
    "d, regimes, seed",
    [
        (2, ["damped", "fast"], 0),
        (4, ["growing", "fast", "damped", "saddle"], 1),  # indefinite, every regime
        (7, ["fast", "damped"], 2),  # definite
        (12, ["saddle", "growing", "fast", "damped"], 3),
        (20, ["growing", "damped", "fast", "saddle"], 4),
    ],
)
def test_pf_passes_through_gd_iterates_on_quadratics(d, regimes, seed):
    """PF(nh) = (I - hH)^n theta0 to 1e-10 relative, in every regime of h lambda."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.05, 1.5)
    H = hessian_with_regimes(rng, d, h, regimes)
    theta0 = rng.standard_normal(d)
    steps = 8
    flow = gf.principal_flow(quadratic(H), lr=h)
    run = gf.solve(flow, theta0, steps=steps, rtol=1e-13, atol=1e-15, solver="dopri8")
    assert relative_error(run.theta, gd_iterates(H, theta0, h, steps)) < 1e-10


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_pf_on_random_symmetric_matrices(seed):
    """Unstructured random symmetric matrices; h puts the top eigenvalue beyond 2/h."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(3, 16))
    M = rng.standard_normal((d, d))
    H = (M + M.T) / 2
    eigenvalues = np.linalg.eigvalsh(H)
    assert eigenvalues[0] < 0 < eigenvalues[-1]  # indefinite
    h = 2.2 / eigenvalues[-1]
    x = h * eigenvalues
    if np.min(np.abs(x - 1.0)) < 0.02:  # keep clear of the log singularity at h lambda = 1
        h *= 1.03
    theta0 = rng.standard_normal(d)
    run = gf.solve(gf.principal_flow(quadratic(H), lr=h), theta0, steps=6, rtol=1e-13, atol=1e-15, solver="dopri8")
    assert relative_error(run.theta, gd_iterates(H, theta0, h, 6)) < 1e-10


def test_real_part_pf_is_re_c_flow_on_quadratics():
    """The real-part PF multiplies each eigen-component by |1 - h lambda| per step, without the sign flip."""
    rng = np.random.default_rng(5)
    h, d = 0.4, 6
    H = hessian_with_regimes(rng, d, h, ["growing", "damped", "fast", "saddle"])
    lam, U = np.linalg.eigh(H)
    theta0 = rng.standard_normal(d)
    run = gf.solve(gf.principal_flow(quadratic(H), lr=h, space="real"), theta0, steps=5, rtol=1e-12, atol=1e-30)
    factors = np.abs(1 - h * lam)
    expected = np.stack([U @ (factors**n * (U.T @ theta0)) for n in range(6)])
    assert relative_error(run.theta, expected) < 1e-9


def test_pf_vector_field_equals_matrix_logarithm():
    """F(theta) = log(I - hH) (hH)^{-1} grad E, with scipy's principal logm as the independent reference."""
    rng = np.random.default_rng(6)
    d, h = 5, 0.7
    H = hessian_with_regimes(rng, d, h, ["growing", "fast", "damped", "saddle", "fast"])
    theta = rng.standard_normal(d)
    flow = gf.principal_flow(quadratic(H), lr=h)
    re, im = flow.vector_field(0.0, flow.init(jnp.asarray(theta)))
    reference = scipy.linalg.logm(np.eye(d) - h * H) @ np.linalg.solve(h * H, H @ theta)
    np.testing.assert_allclose(np.asarray(re) + 1j * np.asarray(im), reference, rtol=1e-10, atol=1e-12)


class TestCoefficient:
    def test_near_zero_matches_log1p(self):
        x = np.array([-1e-2, -1e-3, -1e-6, -1e-12, 1e-12, 1e-6, 9.99e-4, 1e-3, 1e-2])
        expected = np.log1p(-x) / x
        np.testing.assert_allclose(np.asarray(gf.pf_coefficient(x)).real, expected, rtol=1e-14)
        assert complex(gf.pf_coefficient(0.0)) == -1.0

    def test_negative_x(self):
        x = np.linspace(-5, -0.01, 50)
        c = np.asarray(gf.pf_coefficient(x))
        np.testing.assert_allclose(c.real, np.log1p(-x) / x, rtol=1e-14)
        assert np.all(c.imag == 0)
        np.testing.assert_allclose(x * c.real, np.log(1 + np.abs(x)), rtol=1e-14)  # saddle growth rate

    def test_at_and_near_one(self):
        assert complex(gf.pf_coefficient(1.0)) == complex(-np.inf, 0)
        for eps in (1e-3, 1e-8, 1e-12):
            x = np.array([1 - eps, 1 + eps])  # 1 - x and x - 1 are exact in floating point here
            below, above = np.asarray(gf.pf_coefficient(x))
            np.testing.assert_allclose(below.real, np.log(1 - x[0]) / x[0], rtol=1e-14)
            np.testing.assert_allclose(above.real, np.log(x[1] - 1) / x[1], rtol=1e-14)
            np.testing.assert_allclose(above.imag, np.pi / x[1], rtol=1e-14)
        # the vector field floors |1 - x| at the machine epsilon: a finite, very negative rate
        floored = complex(_coefficient(1.0, np.finfo(float).eps))
        assert np.isclose(floored.real, np.log(np.finfo(float).eps))

    def test_beyond_two(self):
        x = np.linspace(2.0, 40.0, 200)
        c = np.asarray(gf.pf_coefficient(x))
        np.testing.assert_allclose(c.real, np.log(x - 1) / x, rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(c.imag, np.pi / x, rtol=1e-14)
        assert abs(complex(gf.pf_coefficient(2.0)).real) < 1e-16
        assert np.all(c.real[1:] > 0)

    def test_no_branch_flip_near_the_real_axis(self):
        """Round-off in Im(h lambda) must not flip Im c between +pi/x and -pi/x."""
        for x in (1.3, 2.5, 7.0):
            values = np.asarray(gf.pf_coefficient(np.array([x - 1e-13j, x + 0j, x + 1e-13j])))
            np.testing.assert_allclose(values, values[1], rtol=1e-10)

    def test_growth_identity_on_a_grid(self):
        x = np.linspace(-1, 4, 2001)
        c = np.asarray(gf.pf_coefficient(x))
        np.testing.assert_allclose(np.exp(x * c.real), np.abs(1 - x), rtol=1e-12, atol=1e-12)


def test_principal_branch_rotates_the_other_way_on_a_diagonal_quadratic():
    """With exactly real eigenvalues (a diagonal H) the principal log takes Im log(1 - h lambda) = -pi where the
    shifted one takes +pi: the complex state is the conjugate, its real part the same GD iterates."""
    h = 0.5
    H = np.diag([5.0, 3.0, 0.4])  # h lambda = 2.5 (growing), 1.5 (damped), 0.2 (fast)
    theta0 = np.array([0.3, -0.2, 1.0])
    runs = {
        branch: gf.solve(
            gf.principal_flow(quadratic(H), lr=h, branch=branch),
            theta0,
            steps=5,
            rtol=1e-12,
            atol=1e-14,
            saves_per_step=4,
        )
        for branch in ("shifted", "principal")
    }
    shifted, principal = runs["shifted"], runs["principal"]
    assert gf.principal_flow(quadratic(H), lr=h, branch="principal").name == "PF (principal log)"
    assert relative_error(principal.theta[::4], gd_iterates(H, theta0, h, 5)) < 1e-9
    np.testing.assert_allclose(principal.theta, shifted.theta, rtol=1e-9, atol=1e-12)
    im_shifted, im_principal = np.asarray(shifted.state[1]), np.asarray(principal.state[1])
    assert np.max(np.abs(im_shifted[:, :2])) > 0.1  # the two components with h lambda > 1 do rotate
    np.testing.assert_allclose(im_principal, -im_shifted, rtol=1e-9, atol=1e-12)


def test_branch_option_is_checked():
    with pytest.raises(ValueError, match="branch must be 'shifted', 'continued' or 'principal'"):
        gf.principal_flow(quadratic(np.eye(2)), lr=0.1, branch="continuous")
    with pytest.raises(ValueError, match="applies to space='complex' only"):
        gf.principal_flow(quadratic(np.eye(2)), lr=0.1, space="real", branch="principal")


@pytest.mark.parametrize("spectrum", ["dense", "krylov"])
def test_complex_pf_field_has_a_jacobian(spectrum):
    """The complex PF's field is differentiable (``spectral.eig`` enables eigenvector derivatives), as diffrax's
    implicit solvers need: ``jax.jacfwd`` at a complex point of a quartic loss agrees with central differences
    (step 1e-6: truncation about 1e-12 times the third derivative, round-off about 1e-10, so 1e-6 relative)."""
    import jax

    rng = np.random.default_rng(3)
    d = 6
    A = hessian_with_regimes(rng, d, 0.5, ["fast", "damped", "growing"])
    loss = lambda theta: 0.5 * theta @ A @ theta + 0.05 * jnp.sum(theta**4)  # noqa: E731 (holomorphic)
    flow = gf.principal_flow(loss, lr=0.5, spectrum=spectrum, krylov_dim=d)
    state = (jnp.asarray(rng.standard_normal(d)), jnp.asarray(0.1 * rng.standard_normal(d)))
    flat = jax.jit(lambda y: jnp.concatenate(flow.vector_field(0.0, (y[:d], y[d:]))))
    y = jnp.concatenate(state)
    jacobian = np.asarray(jax.jacfwd(flat)(y))
    step = 1e-6
    columns = [(flat(y + step * e) - flat(y - step * e)) / (2 * step) for e in np.eye(2 * d)]
    differences = np.stack([np.asarray(c) for c in columns], axis=1)
    assert np.all(np.isfinite(jacobian))
    np.testing.assert_allclose(jacobian, differences, rtol=1e-6, atol=1e-6 * np.max(np.abs(differences)))


def test_eig_is_numpys_eig():
    """``spectral.eig`` is LAPACK's geev as ``jnp.linalg.eig`` calls it: the same eigenvalues and vectors."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((5, 5)) + 1j * rng.standard_normal((5, 5))
    a = jnp.asarray(a + a.T)  # complex symmetric, like the Hessian at a complex point
    values, vectors = gf.spectral.eig(a)
    reference_values, reference_vectors = jnp.linalg.eig(a)
    np.testing.assert_array_equal(np.asarray(values), np.asarray(reference_values))
    np.testing.assert_array_equal(np.asarray(vectors), np.asarray(reference_vectors))
