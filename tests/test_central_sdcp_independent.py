"""The central flow for k >= 2 against computations that share no code with ``flows/central.py``.

Two independent references:

* **The defining conditions, in full-matrix form.** With the dense Hessian ``jax.hessian`` and
  NumPy's ``eigh``, the velocity for a given ``X`` is ``-grad E - 1/2 grad <H, U X U^T>`` (the
  gradient of a trace, by ``jax.grad``), and the rate of change of ``U^T H U`` along it is the
  directional derivative of the dense matrix ``U^T H(theta) U`` (``jax.jvp``). The SDCP asks
  ``X >= 0``, ``Z = kappa (2/h - Lambda) - d/dt U^T H U >= 0`` and ``<X, Z> = 0``.
* **A closed form.** ``E(z, w) = z^T M(w) z / 2 - c . w`` with ``M(w) = M0 + sum_l w_l P_l`` and the
  ``P_l`` a basis of symmetric ``k x k`` matrices: at ``z = 0`` the Hessian is ``blockdiag(M(w), 0)``
  and the central flow is a projected gradient flow of ``-c . w`` on ``{M(w) <= 2/h}``. Its rest
  point is ``M(w*) = (2/h) I`` (all ``k`` eigenvalues at the edge, the eigenbasis arbitrary) with
  ``Sigma*`` solving ``tr(P_l Sigma*) = 2 c_l``; we pick ``Sigma*`` (full rank, non-diagonal) and set
  ``c`` from it, so the off-diagonal entries of ``X`` matter.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdflows as gf
from gdflows.flows.central import central_diagnostics, central_flow_run


def _symmetric_basis(k, rng):
    """m = k(k+1)/2 random symmetric k x k matrices spanning all of them (full-rank map w -> M)."""
    m = k * (k + 1) // 2
    while True:
        P = rng.standard_normal((m, k, k))
        P = 0.5 * (P + P.transpose(0, 2, 1))
        i, j = np.triu_indices(k)
        if np.linalg.matrix_rank(P[:, i, j]) == m:
            return P


def edge_model(k, h, seed):
    """The closed-form model: (loss, theta0, w*, Sigma*, P) with all k eigenvalues at 2/h at rest."""
    rng = np.random.default_rng(seed)
    P = _symmetric_basis(k, rng)
    M0 = np.diag(np.linspace(1.2, 0.8, k)) / h  # eigenvalues below 2/h
    i, j = np.triu_indices(k)
    w_star = np.linalg.solve(P[:, i, j].T, (2.0 / h * np.eye(k) - M0)[i, j])
    R = rng.standard_normal((k, k))
    sigma_star = 0.05 * (R @ R.T + 0.5 * np.eye(k))  # full rank, off-diagonal entries of the size of the diagonal
    c = 0.5 * np.einsum("lij,ij->l", P, sigma_star)  # rest point: tr(P_l Sigma*) = 2 c_l
    Pj, M0j, cj = jnp.asarray(P), jnp.asarray(M0), jnp.asarray(c)

    def loss(theta):
        z, w = theta[:k], theta[k:]
        M = M0j + jnp.tensordot(w, Pj, axes=1)
        return 0.5 * z @ M @ z - cj @ w

    theta0 = jnp.zeros(k + P.shape[0])
    return loss, theta0, w_star, sigma_star


def random_cubic(d, seed):
    """A generic smooth loss: quadratic + random symmetric cubic + quartic, no structure to exploit."""
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((d, d))
    A = jnp.asarray(Q @ Q.T / d + np.diag(np.linspace(3.0, 0.0, d)))
    T = rng.standard_normal((d, d, d))
    T = jnp.asarray(sum(T.transpose(p) for p in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))) / 6)
    b = jnp.asarray(rng.standard_normal(d))

    def loss(theta):
        return (
            0.5 * theta @ A @ theta
            + jnp.einsum("ijk,i,j,k", T, theta, theta, theta) / 6
            + b @ theta
            + 0.05 * jnp.sum(theta**4)
        )

    return loss, jnp.asarray(0.3 * rng.standard_normal(d))


def independent_conditions(loss, theta, h, kappa, k, sigma):
    """Velocity and SDCP residuals for a given Sigma, from the dense Hessian alone."""
    H = np.asarray(jax.hessian(loss)(theta))
    lam, V = np.linalg.eigh(H)
    lam, U = lam[::-1][:k], jnp.asarray(V[:, ::-1][:, :k])
    sigma = jnp.asarray(sigma)
    velocity = -jax.grad(loss)(theta) - 0.5 * jax.grad(lambda t: jnp.sum(jax.hessian(loss)(t) * sigma))(theta)
    UHU = lambda t: U.T @ jax.hessian(loss)(t) @ U  # noqa: E731
    D = np.asarray(jax.jvp(UHU, (theta,), (velocity,))[1])
    Z = kappa * np.diag(2.0 / h - lam) - 0.5 * (D + D.T)
    X = np.asarray(U.T @ sigma @ U)
    return velocity, X, Z, lam


@pytest.mark.parametrize("k", [2, 3])
def test_velocity_and_sdcp_conditions_on_a_generic_loss(k):
    """Our velocity equals -grad E - grad<H, Sigma>/2 for our Sigma, and that Sigma satisfies the SDCP.

    Tolerances: the velocity is the same expression evaluated two ways (1e-12 relative); the SDCP
    is solved to a relative KKT residual of 1e-10, so Z >= -1e-8 |Z| and |<X, Z>| <= 1e-8 |X||Z|.
    The old line (off-diagonal entries of alpha sqrt(2) too large) gives min eig Z = -0.05 and
    <X, Z> = -0.97 (k = 2) here.
    """
    loss, theta = random_cubic(6, k)
    lam0 = np.linalg.eigvalsh(np.asarray(jax.hessian(loss)(theta)))[::-1]
    h, restoring = 2.04 / lam0[1], 4.0  # the second eigenvalue above 2/h, the rest below
    flow = gf.central_flow(loss, lr=h, k=k, restoring=restoring)
    ours = flow.vector_field(0.0, flow.init(theta))[0]
    info = central_diagnostics(loss, theta[None], lr=h, k=k, restoring=restoring)
    V, X = np.asarray(info.vectors[0][:, :k]), np.asarray(info.X[0])
    velocity, X_b, Z, lam = independent_conditions(loss, theta, h, restoring / h, k, V @ X @ V.T)
    np.testing.assert_allclose(np.asarray(info.eigenvalues[0, :k]), lam, rtol=1e-12)
    np.testing.assert_allclose(ours, velocity, rtol=1e-12, atol=1e-12 * float(jnp.linalg.norm(velocity)))
    scale = np.linalg.norm(X_b) * np.linalg.norm(Z)
    assert np.linalg.matrix_rank(X_b, tol=1e-8 * np.linalg.norm(X_b)) >= 1
    assert np.linalg.eigvalsh(X_b).min() >= -1e-12 * np.linalg.norm(X_b)
    assert np.linalg.eigvalsh(Z).min() >= -1e-8 * np.linalg.norm(Z)
    assert abs(np.sum(X_b * Z)) <= 1e-8 * scale


@pytest.mark.parametrize(("k", "seed", "steps"), [(2, 2, 300), (3, 4, 500)])
def test_rest_point_has_every_eigenvalue_at_the_edge_and_the_closed_form_sigma(k, seed, steps):
    """The published scheme (Euler, 4 substeps) from below the edge ends at w*, Sigma* of the closed form.

    At the rest point the velocity vanishes, which is exact for the Euler map too, so the only
    errors are the SDCP's tolerance (1e-10 relative) and round-off in the degenerate ``eigh``:
    1e-8 in w and 1e-7 in Sigma hold with a margin of 10 (measured 1e-10 and 1e-8).
    """
    h = 1.0
    loss, theta0, w_star, sigma_star = edge_model(k, h, seed)
    run = central_flow_run(loss, theta0, lr=h, steps=steps, k=k)
    info = central_diagnostics(loss, run.theta[-1:], lr=h, k=k)
    V, X = np.asarray(info.vectors[0][:, :k]), np.asarray(info.X[0])
    np.testing.assert_allclose(np.asarray(info.eigenvalues[0]) * h, 2.0, atol=1e-9)
    np.testing.assert_allclose(run.theta[-1][k:], w_star, atol=1e-8)
    np.testing.assert_allclose(run.theta[-1][:k], 0.0, atol=1e-12)
    sigma = V @ X @ V.T
    np.testing.assert_allclose(sigma[:k, :k], sigma_star, atol=1e-7)
    assert np.abs(sigma_star[np.triu_indices(k, 1)]).min() > 1e-3  # the off-diagonal entries take part


def test_defining_conditions_along_a_solved_trajectory():
    """Solved adaptively from below the edge: Sigma >= 0, lambda <= 2/h, and on the active set the curvature
    moves as the constraint prescribes, d/dt q^T H q = kappa (2/h - q^T H q) for q = U x, x in range(X)
    (so d lambda/dt = 0 once lambda = 2/h).

    The rate is a central difference of the dense q^T H q along the velocity (step 1e-5, error
    1e-10); the bound 1e-6 is set by the solver's drift of lambda off 2/h (rtol 1e-10).
    """
    k, h, restoring = 2, 1.0, 4.0
    loss, theta0, _, _ = edge_model(k, h, 2)
    flow = gf.central_flow(loss, lr=h, k=k, restoring=restoring)
    run = gf.solve(flow, theta0, steps=40, rtol=1e-10, atol=1e-12)
    info = central_diagnostics(loss, run.theta, lr=h, k=k, restoring=restoring)
    hessian = jax.jit(jax.hessian(loss))
    ranks = []
    for n in range(0, 41, 5):
        theta, X, lam = jnp.asarray(run.theta[n]), np.asarray(info.X[n]), np.asarray(info.eigenvalues[n])
        assert np.linalg.eigvalsh(X).min() >= -1e-12 * max(1.0, np.abs(X).max())
        assert np.all(lam * h <= 2.0 + 1e-7)
        velocity = flow.vector_field(0.0, flow.init(theta))[0]
        x_eig, x_vec = np.linalg.eigh(X)
        ranks.append(int(np.sum(x_eig > 1e-9 * max(1.0, x_eig.max()))))
        for weight, x in zip(x_eig, x_vec.T, strict=True):
            if weight <= 1e-9 * max(1.0, x_eig.max()):
                continue
            q = np.asarray(info.vectors[n][:, :k]) @ x
            curvature = lambda t, q=q: float(q @ np.asarray(hessian(t)) @ q)  # noqa: E731
            eps = 1e-5
            rate = (curvature(theta + eps * velocity) - curvature(theta - eps * velocity)) / (2 * eps)
            assert abs(rate - restoring / h * (2.0 / h - curvature(theta))) <= 1e-6, (n, rate)
    assert ranks[0] == 0 and ranks[-1] == 1  # the path crosses from no active direction to one


def test_automatic_critical_set_matches_the_right_fixed_k():
    """k="auto" with 3 tracked eigenpairs (the third is the w-block's 0) runs the flow of k = 2, which the
    closed form says is right: the SDCP leaves the third at X = 0, and the active set grows 0 -> 1 -> 2."""
    h = 1.0
    loss, theta0, w_star, _ = edge_model(2, h, 2)
    fixed = central_flow_run(loss, theta0, lr=h, steps=300, k=2)
    auto = central_flow_run(loss, theta0, lr=h, steps=300, k="auto", tracked=3)
    np.testing.assert_allclose(auto.theta, fixed.theta, atol=1e-10)
    np.testing.assert_allclose(auto.theta[-1][2:], w_star, atol=1e-8)
    active = np.asarray(auto.diagnostics.active)
    assert active[0] == 0 and active[-1] == 2 and set(np.unique(active)) == {0, 1, 2}
    assert auto.third_derivative_products == 300 * 4 * 6  # every tracked pair, every substep


def test_automatic_choice_warns_when_every_tracked_eigenpair_is_critical():
    loss, theta0, _, _ = edge_model(3, 1.0, 4)
    with pytest.warns(RuntimeWarning, match="all 2 tracked eigenpairs are active"):
        central_flow_run(loss, theta0, lr=1.0, steps=200, k="auto", tracked=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": "all"}, "k must be 'auto' or a positive integer"),
        ({"k": 0}, "k must be 'auto' or a positive integer"),
        ({"k": 2, "tracked": 1}, "tracked must be an integer >= 2"),
        ({"tracked": 9}, r"tracked = 9 eigenpairs .* for 5 parameters"),
        ({"vectors0": np.zeros((5, 2)), "tracked": 3}, r"vectors0 must have shape \(d, tracked\) = \(5, 3\)"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, message):
    loss, theta0, _, _ = edge_model(2, 1.0, 2)
    with pytest.raises(ValueError, match=message):
        central_flow_run(loss, theta0, lr=1.0, steps=1, **kwargs)
