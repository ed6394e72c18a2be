"""The shared experiment set-ups of the notebooks (gdflows_book.setups)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gdflows as gf
from gdflows_book import setups


@pytest.mark.parametrize(
    ("size", "parameters", "loss0"),
    [
        # the loss at theta0 that F6 (paper size) and F6 smoke / F7 computed before the set-up moved here
        (setups.DIGITS_NETWORK, 3466, 1.530941053789285),
        (setups.SMOKE_NETWORK, 1482, 1.449574332128747),
    ],
)
def test_digits_network_is_the_f6_network(size, parameters, loss0):
    data, net = setups.digits_network(**size)
    assert data.x_train.shape == (size["n_train"], 64) and data.y_train.shape == (size["n_train"], 10)
    assert net.size == parameters and net.theta0.shape == (parameters,) and net.theta0.dtype == jnp.float64
    assert float(net.loss(net.theta0)) == pytest.approx(loss0, rel=1e-13)
    assert net.holomorphic  # tanh + MSE


def test_digits_network_is_determined_by_its_seed():
    a, b, c = (setups.digits_network(50, [4], seed=seed).net.theta0 for seed in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_diagonal_quadratic():
    loss = setups.diagonal_quadratic([1.0, 0.01])
    theta = jnp.array([-0.35, -0.2])
    assert float(loss(theta)) == pytest.approx(0.35**2 + 0.01 * 0.2**2, rel=1e-15)
    np.testing.assert_allclose(gf.hessian(loss, theta), np.diag([2.0, 0.02]), rtol=1e-14)


def test_flow_lineup_names_and_options():
    loss = setups.diagonal_quadratic([1.0, 0.01])
    flows = setups.flow_lineup(loss, 0.5)
    assert [flow.name for flow in flows] == list(setups.FLOW_NAMES)
    assert all(flow.lr == 0.5 for flow in flows)
    krylov = setups.flow_lineup(loss, 0.5, ["NGF", "PF"], spectrum="krylov", krylov_dim=2)
    assert [flow.name for flow in krylov] == ["NGF", "PF"]
    with pytest.raises(ValueError, match="names"):
        setups.flow_lineup(loss, 0.5, ["PF", "central flow"])


def test_run_lineup_passes_through_gd_on_a_quadratic():
    """On a quadratic the PF meets GD at t_n = nh; the other flows do not (F2's claim, in small)."""
    loss = setups.diagonal_quadratic([1.0, 0.01])
    theta0 = jnp.array([-0.35, -0.2])
    lineup = setups.run_lineup(loss, theta0, lr=1.05, steps=3, names=["PF", "NGF"], rtol=1e-10, atol=1e-30)
    assert list(lineup.runs) == ["GD", "PF", "NGF"] and list(lineup.seconds) == ["PF", "NGF"]
    np.testing.assert_allclose(lineup.runs["PF"].theta, lineup.runs["GD"].theta, atol=1e-8)
    assert np.max(np.abs(lineup.runs["NGF"].theta - lineup.runs["GD"].theta)) > 0.1
