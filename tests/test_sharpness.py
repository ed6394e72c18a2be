"""Sharpness first-class: gd(sharpness_every=...) is gd_with_sharpness, sharpness() is dense or Lanczos by
size (and never silently wrong), and a divergence leaves NaN at every entry the run never reached."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdflows as gf
from gdflows import spectral


def mlp_loss(p, x, y):
    return 0.5 * jnp.mean((jnp.tanh(x @ p["w1"]) @ p["w2"] - y) ** 2)


X = jax.random.normal(jax.random.key(0), (20, 4), dtype=jnp.float64)
Y = jnp.sin(X[:, :1])
PARAMS = {
    "w1": jax.random.normal(jax.random.key(1), (4, 6), dtype=jnp.float64),
    "w2": jax.random.normal(jax.random.key(2), (6, 1), dtype=jnp.float64),
}


def test_gd_with_sharpness_every_is_gd_with_sharpness():
    run = gf.gd(mlp_loss, PARAMS, lr=0.3, steps=25, args=(X, Y), sharpness_every=10, top=2)
    ref = gf.gd_with_sharpness(mlp_loss, PARAMS, lr=0.3, steps=25, args=(X, Y), every=10, top=2)
    assert isinstance(run, gf.SharpnessRun) and run.tracked_steps.tolist() == [0, 10, 20]
    for name in ("times", "loss", "tracked_steps", "eigenvalues", "residuals", "top_vector", "theta", "final_theta"):
        np.testing.assert_array_equal(getattr(run, name), getattr(ref, name), err_msg=name)
    assert run.eigenvalues.shape == (3, 2) and np.all(run.eigenvalues[:, 0] >= run.eigenvalues[:, 1])
    # the tracked spectrum is the dense one at the tracked parameters
    for k, step in enumerate(run.tracked_steps):
        params = jax.tree.map(lambda leaf, k=k: leaf[k], run.params)
        dense = spectral.sharpness(mlp_loss, params, args=(X, Y), method="dense")
        assert run.sharpness[k] == pytest.approx(float(dense), rel=1e-8), step
    assert jax.tree.structure(run.final_params) == jax.tree.structure(PARAMS)


def test_tracking_options_without_tracking_are_refused():
    with pytest.raises(ValueError, match="sharpness_every=k"):
        gf.gd(mlp_loss, PARAMS, lr=0.3, steps=2, args=(X, Y), top=2)
    with pytest.raises(ValueError, match="sharpness_every must be a positive integer"):
        gf.gd(mlp_loss, PARAMS, lr=0.3, steps=2, args=(X, Y), sharpness_every=0)


def random_problem(d: int, seed: int = 0):
    """A quadratic plus a quartic term, with a random symmetric matrix: top eigenvalue 10, the rest in [-2, 6]."""
    key_q, key_l = jax.random.split(jax.random.key(seed))
    Q, _ = jnp.linalg.qr(jax.random.normal(key_q, (d, d), dtype=jnp.float64))
    spectrum = jnp.concatenate([jnp.array([10.0]), jax.random.uniform(key_l, (d - 1,), jnp.float64, -2.0, 6.0)])
    A = (Q * spectrum) @ Q.T
    loss = lambda th: 0.5 * th @ A @ th + 0.01 * jnp.sum(th**4)  # noqa: E731
    return loss, 0.1 * jnp.ones(d, dtype=jnp.float64)


def test_lanczos_and_dense_agree_on_a_random_200_parameter_problem():
    loss, theta = random_problem(200)
    dense = float(spectral.sharpness(loss, theta, method="dense"))
    lanczos = float(spectral.sharpness(loss, theta, method="lanczos"))
    assert abs(lanczos - dense) <= 1e-8 * abs(dense)
    assert float(spectral.sharpness(loss, theta)) == dense  # 200 parameters: "auto" is dense


def test_auto_switches_to_lanczos_above_the_measured_size_and_lanczos_never_guesses():
    d = spectral.DENSE_UP_TO + 1
    loss = lambda th: 0.5 * jnp.sum(jnp.linspace(1.0, 2.0, d) * th**2)  # noqa: E731  # no gap: Lanczos is slow
    theta = jnp.zeros(d, dtype=jnp.float64)
    with pytest.raises(gf.LanczosError, match="did not converge"):
        spectral.sharpness(loss, theta, krylov_dim=4)  # auto -> Lanczos with 4 steps
    small = lambda th: 0.5 * jnp.sum(jnp.linspace(1.0, 2.0, d - 1) * th**2)  # noqa: E731
    assert float(spectral.sharpness(small, jnp.zeros(d - 1), krylov_dim=4)) == pytest.approx(2.0, rel=1e-13)
    assert float(spectral.sharpness(loss, theta, krylov_dim=d)) == pytest.approx(2.0, rel=1e-10)
    with pytest.raises(ValueError, match="method must be"):
        spectral.sharpness(loss, theta, method="eigh")


def test_a_divergence_leaves_nan_at_every_entry_it_never_reached():
    loss = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 1.0]) * p["x"] ** 2) + p["y"] ** 4  # noqa: E731
    params = {"x": jnp.array([1.0, 1.0]), "y": jnp.array(0.5)}
    with pytest.warns(gf.DivergenceWarning, match="NaN; final_theta is the last finite iterate"):
        run = gf.gd(loss, params, lr=0.9, steps=1000, sharpness_every=100, top=2)
    first_bad = int(round(run.stopped_at / 0.9))
    assert 0 < first_bad < 1000
    assert np.all(np.isfinite(run.loss[:first_bad])) and np.all(np.isnan(run.loss[first_bad:]))
    lost = run.tracked_steps >= first_bad
    assert lost.any() and (~lost).any()
    for name in ("eigenvalues", "residuals", "top_vector", "theta"):
        field = getattr(run, name)
        assert np.all(np.isnan(field[lost])), name
        assert np.all(np.isfinite(field[~lost])), name
    assert all(np.all(np.isnan(np.asarray(leaf)[lost])) for leaf in jax.tree.leaves(run.params))
    assert np.all(np.isfinite(run.final_theta)) and np.all(np.isnan(run.sharpness[lost]))
