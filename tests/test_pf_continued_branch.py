"""The PF's continued logarithm (branch="continued") and how solve reports a solve that stops early (stop_kind)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdflows as gf
import gdflows.problems as gp
from gdflows.flows.principal import BranchReference, _coefficient, _log_one_minus, _windings

STEPS = 150  # F5b's GD steps
BUDGET = 20 * STEPS  # a step budget proportional to the GD steps
TOLERANCES = dict(rtol=1e-6, atol=1e-9, solver="tsit5")  # F5b's


def f5b_grid(points=12):
    """F5b's starts on [1.3, 2.7] x [-0.7, 0.7], row by row."""
    x, y = np.meshgrid(np.linspace(1.3, 2.7, points), np.linspace(-0.7, 0.7, points))
    return np.stack([x.ravel(), y.ravel()], axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_continued_branch_passes_through_gd_iterates_on_quadratics(seed):
    """On a quadratic the spectrum is fixed, so the continued log is the shifted one: PF(nh) = (I - hA)^n theta0."""
    rng = np.random.default_rng(seed)
    d, h = 5, 0.4
    x = np.array([-0.6, 0.3, 0.97, 1.5, 2.3])  # h lambda: negative, below 1, near 1, damped, growing
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    A = (q * (x / h)) @ q.T
    theta0 = rng.standard_normal(d)
    flow = gf.principal_flow(lambda th: 0.5 * th @ A @ th, lr=h, branch="continued")
    sol = gf.solve(flow, jnp.asarray(theta0), steps=6)
    gd = np.stack([np.linalg.matrix_power(np.eye(d) - h * A, n) @ theta0 for n in range(7)])
    assert sol.stop_kind is None
    np.testing.assert_allclose(sol.theta, gd, rtol=1e-9, atol=1e-10 * np.abs(gd).max())


def test_windings_follow_the_reference_across_the_cut():
    """An eigenvalue just past the cut {1 + is} from a reference on its left keeps that side's branch (+2 pi i away)."""
    left, right = jnp.array([0.999 + 0.5j]), jnp.array([1.001 + 0.5j])
    log_left = _log_one_minus(left)
    reference = BranchReference(jnp.real(left), jnp.imag(left), jnp.imag(log_left))
    n = _windings(right, _log_one_minus(right), reference)
    assert float(n[0]) == -1.0  # the shifted branch jumped by +2 pi; the continued one does not
    continued = _log_one_minus(right) + 2j * jnp.pi * n
    assert abs(complex(continued[0] - log_left[0])) < 0.01
    c = _coefficient(right, winding=n)
    np.testing.assert_allclose(complex(c[0]), complex(continued[0] / right[0]), rtol=1e-14)
    # a tie (the real-axis crossing of h lambda = 1: 0 against pi) keeps the shifted branch
    on_axis = jnp.array([1.5 + 0.0j])
    tie = BranchReference(jnp.array([0.5]), jnp.array([0.0]), jnp.array([0.0]))
    assert float(_windings(on_axis, _log_one_minus(on_axis), tie)[0]) == 0.0


@pytest.mark.parametrize("start", [55, 57])  # F5b's 12 x 12 grid at h = 0.12: starts that stall on the fixed cut
def test_continued_branch_finishes_where_the_fixed_cut_stalls(start):
    land = gp.two_minima_2d()
    theta0 = jnp.asarray(f5b_grid()[start])
    with pytest.warns(gf.DivergenceWarning, match="stalled"):
        fixed = gf.solve(gf.principal_flow(land.loss, lr=0.12), theta0, steps=STEPS, max_steps=BUDGET, **TOLERANCES)
    assert fixed.stop_kind == "step-collapse" and "nearest the cut 1 + is" in fixed.stop_reason
    continued = gf.solve(
        gf.principal_flow(land.loss, lr=0.12, branch="continued"), theta0, steps=STEPS, max_steps=BUDGET, **TOLERANCES
    )
    assert continued.stop_kind is None and continued.times[-1] == pytest.approx(STEPS * 0.12)
    assert continued.stats.accepted_steps + continued.stats.rejected_steps < BUDGET / 4


def test_every_start_of_the_f5b_grid_ends_at_the_final_time_or_a_blow_up():
    """Issue 13's criterion at h = 0.12, 12 x 12 grid: no start exhausts the budget or stalls at a finite field."""
    land = gp.two_minima_2d()
    h = 0.12
    flow = gf.principal_flow(land.loss, lr=h, branch="continued")
    starts = jnp.asarray(f5b_grid())
    flow.init(starts[0])
    ts = h * jnp.arange(STEPS + 1.0)  # GD's times: the save interval of the stall test is h
    run = jax.jit(jax.vmap(lambda s: gf.solve_scan(flow, s, ts=ts, max_steps=BUDGET, diagnose=True, **TOLERANCES)))
    kinds = np.asarray(run(jax.vmap(flow.init)(starts)).stop_kind)
    counts = {gf.STOP_KINDS[k]: int(np.sum(kinds == k)) for k in np.unique(kinds)}
    assert np.mean(kinds == 0) > 0.9, counts
    assert set(counts) <= {None, "blow-up", "non-finite"}, counts


# F5b's 40 x 40 grid at h = 0.08: a start whose continued PF crosses h lambda = 1 on the real axis at GD step 22.49
CROSSING_START = (2.6641025641025644, -0.2692307692307692)


def test_a_floor_on_the_step_carries_the_solve_across_the_real_crossing_of_one():
    """Where an eigenvalue of hH crosses 1 on the real axis the field jumps by about i pi/h times that direction's
    gradient (11 here): without a floor Tsit5 creeps at steps of ~2e-7 until its budget is spent; with dtmin it
    crosses in a few unchecked steps, and where it ends does not depend on the floor."""
    land = gp.two_minima_2d()
    h = 0.08
    flow = gf.principal_flow(land.loss, lr=h, branch="continued")
    theta0 = jnp.asarray(CROSSING_START)
    creep = r"budget .* creeping on steps of median length .* between GD steps 22\.4\d* and 22\.4\d* .*dtmin=8e-06"
    with pytest.warns(gf.DivergenceWarning, match=creep):
        creeping = gf.solve(flow, theta0, steps=STEPS, max_steps=BUDGET, **TOLERANCES)
    assert creeping.stop_kind == "budget" and creeping.stats.floor_steps == 0 and creeping.dtmin is None
    ends = {}
    for fraction in (1e-3, 1e-4, 1e-5):
        sol = gf.solve(flow, theta0, steps=STEPS, max_steps=BUDGET, dtmin=fraction * h, **TOLERANCES)
        assert sol.stop_kind is None and sol.dtmin == fraction * h
        assert 1 <= sol.stats.floor_steps <= 20, sol.stats
        assert sol.stats.accepted_steps + sol.stats.rejected_steps < BUDGET / 4
        ends[fraction] = sol.theta[-1]
    gd_end = np.asarray(gf.gd_scan(land.loss, theta0, h, STEPS).theta[-1])
    sharp = land.critical_points()["narrow"].point
    for end in ends.values():  # GD and the PF both settle in the sharp minimum, at any floor
        np.testing.assert_allclose(end, sharp, atol=1e-6)
    np.testing.assert_allclose(gd_end, sharp, atol=1e-6)


def test_floor_steps_are_the_accepted_steps_no_longer_than_dtmin():
    """The controller's count against the recorded step times of the same solve."""
    from gdflows._solve import _integrate_flow

    land = gp.two_minima_2d()
    h = 0.08
    flow = gf.principal_flow(land.loss, lr=h, branch="continued")
    ts = h * jnp.arange(STEPS + 1.0)
    dtmin = 1e-4 * h
    scan, ending = _integrate_flow(
        flow,
        flow.init(jnp.asarray(CROSSING_START)),
        ts=ts,
        rtol=1e-6,
        atol=1e-9,
        solver_name="tsit5",
        max_steps=BUDGET,
        record_steps=True,
        dtmin=dtmin,
    )
    ends = np.asarray(ending.step_times)
    ends = ends[np.isfinite(ends)]
    lengths = np.diff(np.concatenate([[0.0], ends]))
    assert int(scan.floor_steps) == int(np.sum(lengths <= dtmin * (1 + 1e-6))) > 0
    short = lengths < dtmin * (1 - 1e-9)  # only a step clipped onto a save time (a GD time) is shorter than the floor
    np.testing.assert_allclose(ends[short] / h, np.round(ends[short] / h), atol=1e-9)


class TestStopKind:
    def test_budget_names_the_gd_step_and_max_steps(self):
        flow = gf.gradient_flow(lambda th: 0.5 * jnp.sum(jnp.array([100.0, 1.0]) * th**2), lr=0.1)
        with pytest.warns(gf.DivergenceWarning, match=r"budget of max_steps=20.*GD step .* of 50.*max_steps=80"):
            sol = gf.solve(flow, jnp.array([1.0, 1.0]), steps=50, max_steps=20)
        assert sol.stop_kind == "budget"

    def test_blow_up(self):
        """NGF on -x^4 blows up at t = 1/8: the steps collapse at an unbounded field."""
        with pytest.warns(gf.DivergenceWarning, match="a blow-up"):
            sol = gf.solve(
                gf.gradient_flow(lambda x: -jnp.sum(x**4), lr=0.05), jnp.array([1.0]), steps=10, max_steps=4000
            )
        assert sol.stop_kind == "blow-up" and sol.stopped_at <= 0.15 + 1e-12

    def test_finished_solve_has_no_kind(self):
        sol = gf.solve(gf.gradient_flow(lambda x: jnp.sum(x**2), lr=0.1), jnp.array([1.0]), steps=3)
        assert sol.stop_kind is None and sol.stop_reason is None


@pytest.mark.parametrize(("d", "same_as"), [(30, "dense"), (120, "krylov")])
def test_auto_spectrum_switches_to_krylov_above_the_crossover(d, same_as):
    from gdflows.flows.principal import KRYLOV_ABOVE

    assert (d > KRYLOV_ABOVE) == (same_as == "krylov")
    rng = np.random.default_rng(d)
    a = rng.standard_normal((d, d)) / np.sqrt(d)
    loss = lambda th: 0.5 * th @ jnp.asarray(a @ a.T) @ th + 0.1 * jnp.sum(jnp.tanh(th) ** 4)  # noqa: E731
    theta = jnp.asarray(rng.standard_normal(d))
    auto = gf.principal_flow(loss, lr=0.3, space="real", spectrum="auto", krylov_dim=8)
    other = gf.principal_flow(loss, lr=0.3, space="real", spectrum=same_as, krylov_dim=8)
    np.testing.assert_array_equal(auto.vector_field(0.0, theta), other.vector_field(0.0, theta))
