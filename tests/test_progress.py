"""solve's progress display and wall-time limit: output only when asked, a clean stop with an exact prefix."""

import time
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import gdflows as gf

A = jnp.array([1.0, 0.01])
LOSS = lambda th: th @ (A * th)  # noqa: E731
THETA0 = jnp.array([-0.35, -0.2])
# a slow solve: a wavy landscape at a tight tolerance, many GD steps
WAVY = gf.gradient_flow(lambda th: jnp.sum(jnp.cos(3.0 * th) + 0.1 * th**2), lr=0.01)
WAVY_THETA0 = jnp.linspace(-1.0, 1.0, 4)
WAVY_SETTINGS = dict(steps=20_000, rtol=1e-13, atol=1e-15, max_steps=400_000)


def test_progress_true_shows_the_gd_step_and_solver_steps(capsys):
    sol = gf.solve(gf.principal_flow(LOSS, lr=1.05), THETA0, steps=5, progress=True)
    err = capsys.readouterr().err
    assert "PF: GD step 5.00/5" in err
    assert f"{sol.stats.accepted_steps:,} accepted, {sol.stats.rejected_steps:,} rejected" in err


def test_progress_false_and_auto_on_a_quick_toy_print_nothing(capsys):
    quiet = gf.solve(gf.principal_flow(LOSS, lr=1.05), THETA0, steps=5, progress=False)
    auto = gf.solve(gf.principal_flow(LOSS, lr=1.05), THETA0, steps=5)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    np.testing.assert_array_equal(quiet.theta, auto.theta)


def test_watching_does_not_change_the_solution():
    flow = gf.principal_flow(LOSS, lr=0.5)
    plain = gf.solve(flow, THETA0, steps=20, progress=False)
    watched = gf.solve(flow, THETA0, steps=20, progress=False, max_wall_time=1e6)
    np.testing.assert_array_equal(plain.theta, watched.theta)
    assert plain.stats == watched.stats and watched.stop_kind is None


def test_max_wall_time_stops_cleanly_with_an_exact_prefix():
    full = gf.solve(WAVY, WAVY_THETA0, progress=False, **WAVY_SETTINGS)  # also compiles the unwatched solve
    watched = gf.solve(WAVY, WAVY_THETA0, max_wall_time=1e6, progress=False, **WAVY_SETTINGS)  # compiles it
    np.testing.assert_array_equal(watched.theta, full.theta)
    limit = 0.3
    start = time.perf_counter()
    with pytest.warns(gf.WallTimeWarning, match="max_wall_time=0.3") as record:
        part = gf.solve(WAVY, WAVY_THETA0, progress=False, max_wall_time=limit, **WAVY_SETTINGS)
    took = time.perf_counter() - start
    assert not any(issubclass(w.category, gf.DivergenceWarning) for w in record)
    assert part.stop_kind == "wall-time" and "raise max_wall_time" in part.stop_reason
    assert took < 2 * limit + 0.5, took
    n = len(part.times)
    assert 1 < n < len(full.times)
    assert part.stopped_at == full.times[n]
    np.testing.assert_array_equal(part.theta, full.theta[:n])  # to the bit
    np.testing.assert_array_equal(part.loss, full.loss[:n])


def test_bad_progress_and_wall_time_are_refused():
    flow = gf.gradient_flow(LOSS, lr=0.1)
    with pytest.raises(ValueError, match="progress must be 'auto', True or False"):
        gf.solve(flow, THETA0, steps=1, progress="yes")
    with pytest.raises(ValueError, match="max_wall_time"):
        gf.solve(flow, THETA0, steps=1, max_wall_time=0)


def test_central_flow_on_many_parameters_points_to_central_flow_run():
    loss = lambda th: 0.5 * jnp.sum(th**2)  # noqa: E731
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        gf.solve(gf.central_flow(loss, lr=0.1), jnp.ones(400), steps=1, progress=False)
    assert any(issubclass(w.category, gf.CostWarning) and "central_flow_run" in str(w.message) for w in record)
