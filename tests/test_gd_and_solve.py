"""GD, the solver's accuracy and bookkeeping, and clear errors for bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import io_callback

import gdflows as gf

QUADRATIC = lambda theta: 0.5 * jnp.sum(jnp.array([3.0, 1.0, 0.2]) * theta**2)
THETA0 = jnp.array([1.0, -2.0, 0.5])


class TestGD:
    def test_matches_the_update_rule(self):
        run = gf.gd(QUADRATIC, THETA0, lr=0.1, steps=7)
        expected = [np.asarray(THETA0)]
        for _ in range(7):
            expected.append(expected[-1] - 0.1 * np.array([3.0, 1.0, 0.2]) * expected[-1])
        np.testing.assert_allclose(run.theta, np.stack(expected), rtol=1e-15)
        np.testing.assert_allclose(run.loss, [float(QUADRATIC(jnp.asarray(t))) for t in expected], rtol=1e-14)
        np.testing.assert_allclose(run.times, 0.1 * np.arange(8))
        assert not run.diverged

    def test_zero_steps(self):
        run = gf.gd(QUADRATIC, THETA0, lr=0.1, steps=0)
        assert run.theta.shape == (1, 3) and run.loss.shape == (1,)

    def test_divergence_is_data_not_a_crash(self):
        """Loss -x^4 sends GD to infinity; the finite part is returned and the step is named."""
        loss = lambda theta: -jnp.sum(theta**4)
        with pytest.warns(gf.DivergenceWarning, match="non-finite loss at step"):
            run = gf.gd(loss, jnp.array([1.0]), lr=0.5, steps=50)
        assert run.diverged and np.all(np.isfinite(run.theta)) and np.all(np.isfinite(run.loss))
        assert run.stopped_at == pytest.approx(0.5 * len(run.times))
        assert 3 <= len(run.times) < 50

    def test_gd_scan_vmaps_over_diverging_and_converging_runs(self):
        loss = lambda theta: 0.5 * jnp.sum(theta**2) - 0.25 * jnp.sum(theta**4)
        starts = jnp.array([[0.1], [5.0]])
        out = jax.vmap(lambda th: gf.gd_scan(loss, th, 0.1, 40))(starts)
        assert int(out.finite_steps[0]) == 40 and int(out.finite_steps[1]) < 40
        assert np.all(np.isinf(np.asarray(out.loss[1, -1])))


class TestSolve:
    @pytest.mark.parametrize("solver", ["tsit5", "dopri5", "dopri8"])
    def test_error_follows_the_tolerance(self, solver):
        """On NGF of a quadratic (exact: exp(-t a) theta0) the global error stays within a small multiple
        of rtol times the solution size, and shrinks as rtol does."""
        exact = lambda t: np.exp(-np.outer(t, [3.0, 1.0, 0.2])) * np.asarray(THETA0)
        errors = []
        for rtol in (1e-3, 1e-5, 1e-7):
            run = gf.solve(
                gf.gradient_flow(QUADRATIC, lr=1.0), THETA0, steps=4, rtol=rtol, atol=rtol * 1e-3, solver=solver
            )
            errors.append(np.max(np.abs(run.theta - exact(run.times))))
            assert errors[-1] < 20 * rtol * np.max(np.abs(THETA0)), (rtol, errors[-1])
        assert errors[2] < errors[0] / 100

    @pytest.mark.parametrize("solver", ["tsit5", "dopri5", "dopri8"])
    def test_evaluation_count_is_exact(self, solver):
        """The reported vector-field evaluations equal a counter run inside the compiled solve when no
        step is rejected, and fall short of it by at most the number of rejected steps otherwise."""
        calls = [0]

        def bump(_):
            calls[0] += 1
            return np.int32(0)

        A = jnp.diag(jnp.array([1.0, 0.01]))
        base = gf.principal_flow(lambda th: th @ A @ th, lr=1.05)

        def counted(t, state):
            token = io_callback(bump, jax.ShapeDtypeStruct((), jnp.int32), state, ordered=True)
            return jax.tree.map(lambda leaf: leaf + 0 * token, base.vector_field(t, state))

        flow = base._replace(vector_field=counted)
        rejections = 0
        for rtol, atol in ((1e-4, 1e-4), (1e-10, 1e-12), (1e-12, 1e-12)):
            calls[0] = 0
            run = gf.solve(flow, jnp.array([-0.35, -0.2]), steps=5, solver=solver, rtol=rtol, atol=atol)
            stats = run.stats
            assert 0 <= calls[0] - stats.vector_field_evaluations <= stats.rejected_steps, (solver, rtol)
            if stats.rejected_steps == 0:
                assert stats.vector_field_evaluations == calls[0]
            rejections += stats.rejected_steps
        assert rejections > 0

    def test_saves_between_steps(self):
        run = gf.solve(gf.gradient_flow(QUADRATIC, lr=0.1), THETA0, steps=4, saves_per_step=5)
        np.testing.assert_allclose(run.times[::5], 0.1 * np.arange(5), atol=1e-15)

    def test_blow_up_is_stopped_and_reported(self):
        """NGF on -x^4 blows up at t = 1/8 from x = 1; the solve stops there and says so."""
        with pytest.warns(gf.DivergenceWarning, match="stopped before t"):
            run = gf.solve(
                gf.gradient_flow(lambda x: -jnp.sum(x**4), lr=0.05), jnp.array([1.0]), steps=10, max_steps=4000
            )
        assert run.diverged and run.stopped_at <= 0.15 + 1e-12 and run.times[-1] < 0.125
        assert np.all(np.isfinite(run.theta))


class TestFixedStep:
    """The fixed-step schemes: their order against exact solutions, their bookkeeping, and their input checks."""

    @staticmethod
    def _orders(errors):
        return np.log2(np.asarray(errors[:-1]) / np.asarray(errors[1:]))

    @pytest.mark.parametrize(("solver", "ms", "order"), [("euler", (40, 80, 160), 1), ("rk4", (10, 20, 40), 4)])
    def test_order_on_a_linear_ode(self, solver, ms, order):
        """NGF of a quadratic, theta(t) = exp(-a t) theta0: halving dt divides the error by 2**order."""
        exact = lambda t: np.exp(-np.outer(t, [3.0, 1.0, 0.2])) * np.asarray(THETA0)
        errors = []
        for m in ms:
            run = gf.solve(
                gf.gradient_flow(QUADRATIC, lr=0.5), THETA0, steps=4, solver=solver, fixed_steps_per_gd_step=m
            )
            errors.append(np.max(np.abs(run.theta - exact(run.times))))
        np.testing.assert_allclose(self._orders(errors), order, atol=0.15 * order)

    @pytest.mark.parametrize(("solver", "ms", "order"), [("euler", (40, 80, 160), 1), ("rk4", (10, 20, 40), 4)])
    def test_order_on_the_principal_flow_of_a_quadratic(self, solver, ms, order):
        """The complex PF of a quadratic passes through GD's iterates at t = nh (here h lambda = 1.5 and 0.1,
        so the state leaves the real axis); the fixed-step error against GD falls at the scheme's order."""
        h = 0.5
        gd = gf.gd(QUADRATIC, THETA0, lr=h, steps=6)
        errors = []
        for m in ms:
            flow = gf.principal_flow(QUADRATIC, lr=h)
            run = gf.solve(flow, THETA0, steps=6, solver=solver, fixed_steps_per_gd_step=m)
            errors.append(np.max(np.abs(run.theta - gd.theta)))
        np.testing.assert_allclose(self._orders(errors), order, atol=0.15 * order)
        assert errors[-1] < (5e-2 if solver == "euler" else 1e-6)

    @pytest.mark.parametrize(("solver", "stages"), [("euler", 1), ("rk4", 4)])
    def test_steps_saves_and_evaluations(self, solver, stages):
        """m steps per GD step, saved on step times, and exactly stages * steps vector-field evaluations."""
        calls = [0]

        def bump(_):
            calls[0] += 1
            return np.int32(0)

        base = gf.gradient_flow(QUADRATIC, lr=0.1)

        def counted(t, state):
            token = io_callback(bump, jax.ShapeDtypeStruct((), jnp.int32), state, ordered=True)
            return base.vector_field(t, state) + 0 * token

        flow = base._replace(vector_field=counted)
        run = gf.solve(flow, THETA0, steps=3, solver=solver, fixed_steps_per_gd_step=6, saves_per_step=2)
        np.testing.assert_allclose(run.times, 0.05 * np.arange(7), atol=1e-15)
        stats = run.stats
        assert stats.accepted_steps == 18 and stats.rejected_steps == 0
        assert stats.vector_field_evaluations == stages * 18 == calls[0]
        assert run.dt == pytest.approx(0.1 / 6) and run.rtol is None

    def test_solve_scan_matches_solve_under_vmap(self):
        """solve_scan with fixed steps over one long interval (as the basin maps call it) gives solve's end point."""
        flow = gf.principal_flow(QUADRATIC, lr=0.5)
        starts = jnp.stack([THETA0, -2.0 * THETA0])
        ts = jnp.asarray([0.0, 3 * 0.5])
        scan = lambda s: gf.solve_scan(flow, s, ts=ts, solver="rk4", fixed_steps_per_interval=3 * 20)  # noqa: E731
        ends = jax.vmap(lambda s: scan(s).theta[-1])(jax.vmap(flow.init)(starts))
        for start, end in zip(starts, ends, strict=True):
            run = gf.solve(flow, start, steps=3, solver="rk4", fixed_steps_per_gd_step=20)
            np.testing.assert_allclose(end, run.theta[-1], rtol=1e-12, atol=1e-14)

    def test_blow_up_is_stopped_and_reported(self):
        """Euler on NGF of -x^4 overflows after the exact blow-up time 1/8; the finite part is returned."""
        with pytest.warns(gf.DivergenceWarning, match="the state became non-finite"):
            run = gf.solve(
                gf.gradient_flow(lambda x: -jnp.sum(x**4), lr=0.05),
                jnp.array([1.0]),
                steps=20,
                solver="euler",
                fixed_steps_per_gd_step=50,
            )
        assert run.diverged and run.stopped_at > 0.125 and np.all(np.isfinite(run.theta))
        assert run.stop_kind == "non-finite"

    @pytest.mark.parametrize("m", [0, -3, 2.5, True, "50"])
    def test_bad_step_count(self, m):
        with pytest.raises((TypeError, ValueError), match="fixed_steps_per_gd_step must be a positive integer"):
            gf.solve(gf.gradient_flow(QUADRATIC, lr=0.1), THETA0, steps=3, solver="euler", fixed_steps_per_gd_step=m)

    def test_bad_combinations(self):
        with pytest.raises(ValueError, match="needs fixed_steps_per_gd_step"):
            gf.solve(gf.gradient_flow(QUADRATIC, lr=0.1), THETA0, steps=3, solver="rk4")
        with pytest.raises(ValueError, match="fixed_steps_per_gd_step is only for the fixed-step solvers"):
            gf.solve(gf.gradient_flow(QUADRATIC, lr=0.1), THETA0, steps=3, fixed_steps_per_gd_step=10)
        with pytest.raises(ValueError, match="fixed_steps_per_gd_step must be a multiple of saves_per_step"):
            gf.solve(
                gf.gradient_flow(QUADRATIC, lr=0.1),
                THETA0,
                steps=3,
                solver="euler",
                fixed_steps_per_gd_step=10,
                saves_per_step=3,
            )


BAD_LRS = [0.0, -0.1, float("nan"), float("inf")]


class TestBadInput:
    @pytest.mark.parametrize("lr", BAD_LRS)
    def test_learning_rate(self, lr):
        for call in (
            lambda: gf.gd(QUADRATIC, THETA0, lr=lr, steps=3),
            lambda: gf.principal_flow(QUADRATIC, lr=lr),
            lambda: gf.modified_flow(QUADRATIC, lr=lr),
            lambda: gf.solve(gf.gradient_flow(QUADRATIC, lr=lr), THETA0, steps=3),
        ):
            with pytest.raises(ValueError, match=r"lr must be a positive finite number.*pass e\.g\. lr=0\.1"):
                call()

    def test_learning_rate_type(self):
        with pytest.raises(TypeError, match="lr must be"):
            gf.gd(QUADRATIC, THETA0, lr="fast", steps=3)

    @pytest.mark.parametrize("steps", [-1, 2.5, True])
    def test_steps(self, steps):
        with pytest.raises((ValueError, TypeError), match="steps must be a non-negative integer"):
            gf.gd(QUADRATIC, THETA0, lr=0.1, steps=steps)

    @pytest.mark.parametrize("theta0", [jnp.array([1, 2, 3]), jnp.array([True, False])])
    def test_theta0(self, theta0):
        with pytest.raises(ValueError, match="theta0 must be a 1-D float array.*gdflows.ravel"):
            gf.gd(QUADRATIC, theta0, lr=0.1, steps=3)
        with pytest.raises(ValueError, match="theta0 must be a 1-D float array"):
            gf.solve(gf.gradient_flow(QUADRATIC, lr=0.1), theta0, steps=3)

    @pytest.mark.parametrize("theta0", [jnp.ones((2, 2)), 1.0])
    def test_a_float_array_of_any_shape_is_a_pytree_of_one_leaf(self, theta0):
        run = gf.gd(lambda p: jnp.sum(p**2), theta0, lr=0.1, steps=3)
        np.testing.assert_allclose(run.final_params, 0.8**3 * np.asarray(theta0), rtol=1e-15)
        assert run.theta.shape == (4, np.size(theta0)) and run.final_params.shape == np.shape(theta0)
        np.testing.assert_array_equal(run.params[0], theta0)

    def test_solver_options(self):
        with pytest.raises(ValueError, match="solver must be one of"):
            gf.solve(gf.gradient_flow(QUADRATIC, lr=0.1), THETA0, steps=3, solver="leapfrog")
        with pytest.raises(ValueError, match="rtol must be a positive finite number"):
            gf.solve(gf.gradient_flow(QUADRATIC, lr=0.1), THETA0, steps=3, rtol=-1.0)
        with pytest.raises(ValueError, match="saves_per_step must be a positive integer"):
            gf.solve(gf.gradient_flow(QUADRATIC, lr=0.1), THETA0, steps=3, saves_per_step=0)

    def test_space(self):
        with pytest.raises(ValueError, match="space must be 'complex' or 'real'"):
            gf.principal_flow(QUADRATIC, lr=0.1, space="imaginary")


class TestHolomorphy:
    @pytest.mark.parametrize(
        "loss",
        [
            lambda th: jnp.sum(jnp.abs(th) ** 2),  # real output at complex input
            lambda th: jnp.sum(th * jnp.conj(th)),  # conjugation
            lambda th: jnp.sum(jnp.real(th) ** 2 + jnp.tanh(th)),  # real part
        ],
    )
    def test_non_holomorphic_losses_are_refused(self, loss):
        flow = gf.principal_flow(loss, lr=0.5)
        with pytest.raises(gf.NotHolomorphicError, match="space='real'"):
            gf.solve(flow, jnp.array([0.3, -0.2]), steps=2)
        # the real-part PF needs no holomorphy
        gf.solve(gf.principal_flow(loss, lr=0.5, space="real"), jnp.array([0.3, -0.2]), steps=2)

    def test_holomorphic_losses_pass(self):
        for loss in (
            lambda th: jnp.sum(jnp.tanh(th) ** 2) + jnp.exp(-jnp.sum(th**2)),
            lambda th: jnp.sum(jax.nn.softplus(th)) + jnp.sum(th**4),
        ):
            assert gf.check_holomorphic(loss, jnp.array([0.3, -0.2, 1.5])) is None  # no NotHolomorphicError
