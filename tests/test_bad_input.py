"""Bad input, as a new user tries it (issue 12): each wrong call gets an error or a warning that names the
argument and the fix, or a result that says where and why it stopped; never a silent wrong result."""

from __future__ import annotations

import math
import pickle
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

import gdflows as gf
from gdflows import _checks
from gdflows.analysis import classify_endpoints, escape_rate
from gdflows.data import load
from gdflows.models import CNN, MLP, flatten
from gdflows.optim import dal, scale_by_dal
from gdflows.problems import find_critical_point, saddle_2d, two_minima_1d, two_minima_2d

QUAD = lambda theta: 0.5 * jnp.sum(theta**2)  # noqa: E731


# ----------------------------------------------------------------------------- one rule for numbers


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: gf.gd(QUAD, jnp.ones(2), lr=True, steps=3), "lr"),
        (lambda: gf.gd(QUAD, jnp.ones(2), lr="0.5", steps=3), "lr"),
        (lambda: gf.gradient_flow(QUAD, lr=True), "lr"),
        (lambda: gf.gd(QUAD, jnp.ones(2), lr=0.5, steps=True), "steps"),
        (lambda: dal(p=True), "p"),
        (lambda: dal(p="1"), "p"),
        (lambda: dal(h_max="5"), "h_max"),
        (lambda: gf.solve(gf.gradient_flow(QUAD, lr=0.5), jnp.ones(2), steps=2, max_steps=2.5), "max_steps"),
        (lambda: gf.solve(gf.gradient_flow(QUAD, lr=0.5), jnp.ones(2), steps=2, rtol=True), "rtol"),
        (lambda: gf.gd_with_sharpness(QUAD, jnp.ones(3), lr=0.5, steps=2, top=True), "top"),
    ],
)
def test_bools_and_strings_are_refused_as_numbers(call, name):
    with pytest.raises(TypeError, match=rf"^{name} must be .*bool|^{name} must be .*str|^{name} must be .*got {name}="):
        call()


@pytest.mark.parametrize("max_steps", [0, -5, 2.5])
def test_solve_max_steps_must_be_a_positive_integer(max_steps):
    flow = gf.gradient_flow(QUAD, lr=0.5)
    with pytest.raises((TypeError, ValueError), match=r"max_steps must be a positive integer.*max_steps=100_000"):
        gf.solve(flow, jnp.ones(2), steps=2, max_steps=max_steps)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (dict(dtmin=0.0), r"dtmin must be a positive finite number, got dtmin=0.0; pass e.g. dtmin=1e-4 \* h"),
        (dict(dtmin=-1e-5), r"dtmin must be a positive finite number"),
        (dict(dtmin=1e-5, solver="euler", fixed_steps_per_gd_step=4), r"dtmin is a floor on an adaptive solver's step"),
        (dict(dtmin=1e-5, solver="exponential"), r"dtmin .*solver='exponential'; drop dtmin or use solver='tsit5'"),
    ],
)
def test_dtmin_is_a_positive_floor_for_the_adaptive_solvers(settings, match):
    flow = gf.principal_flow(QUAD, lr=0.5)
    with pytest.raises(ValueError, match=match):
        gf.solve(flow, jnp.ones(2), steps=2, **settings)
    with pytest.raises(ValueError, match=match):
        gf.solve_scan(
            flow,
            flow.init(jnp.ones(2)),
            ts=jnp.arange(3.0),
            **{("fixed_steps_per_interval" if k == "fixed_steps_per_gd_step" else k): v for k, v in settings.items()},
        )


finite_positive = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)


@given(finite_positive)
def test_check_number_accepts_every_positive_float_unchanged(x):
    assert _checks.check_number("lr", x) == x
    assert _checks.check_number("lr", np.float64(x)) == x


@given(st.one_of(st.booleans(), st.text(max_size=5), st.none(), st.lists(st.floats(), max_size=2)))
def test_check_number_refuses_non_numbers_naming_the_parameter(value):
    with pytest.raises(TypeError, match=r"^rate must be a positive finite number .*rate="):
        _checks.check_number("rate", value)


@given(st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (math.isfinite(x) and x > 0)))
def test_check_number_refuses_non_positive_and_non_finite(x):
    with pytest.raises(ValueError, match=r"^lr must be a positive finite number, got lr="):
        _checks.check_number("lr", x, example="lr=0.1")


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_check_integer_splits_at_its_minimum(n):
    if n >= 1:
        assert _checks.check_integer("k", n, minimum=1) == n
    else:
        with pytest.raises(ValueError, match=rf"k must be a positive integer, got k={n}"):
            _checks.check_integer("k", n, minimum=1)


@given(st.one_of(st.booleans(), st.floats(), st.text(max_size=3)))
def test_check_integer_refuses_bools_floats_and_strings(value):
    with pytest.raises(TypeError, match=r"^steps must be a non-negative integer, got steps="):
        _checks.check_integer("steps", value)


def test_check_choice_does_not_take_true_for_one():
    assert _checks.check_choice("order", 2, (1, 2)) == 2
    with pytest.raises(ValueError, match=r"order must be one of 1, 2, got order=True"):
        _checks.check_choice("order", True, (1, 2))


# ----------------------------------------------------------------------------- DAL


def test_dal_nan_curvature_gives_a_nan_step_not_h_max():
    loss = lambda t: jnp.sum(t**2)  # noqa: E731
    theta = jnp.array([1.0, 2.0])
    tx = scale_by_dal(p=1.0, h_max=5.0)
    updates, state = tx.update(jax.grad(loss)(theta), tx.init(theta), theta, value_fn=lambda t: loss(t) * jnp.nan)
    assert np.isnan(float(state.learning_rate)) and np.isnan(float(state.v))
    assert np.all(np.isnan(np.asarray(updates)))


def test_dal_nan_update_is_not_recorded_as_zero_curvature():
    theta = jnp.array([1.0, 2.0])
    tx = dal(p=1.0)
    _, state = tx.update(jnp.array([jnp.nan, 1.0]), tx.init(theta), theta, value_fn=QUAD)
    assert np.isnan(float(state.v)) and np.isnan(float(state.learning_rate))


def test_dal_grad_fn_of_the_wrong_structure_is_named():
    params = {"w": jnp.array([1.0, 2.0])}
    tx = dal(p=1.0)
    with pytest.raises(ValueError, match=r"grad_fn must return the gradient as a pytree of the same structure"):
        tx.update({"w": jnp.ones(2)}, tx.init(params), params, grad_fn=lambda p: p["w"] * 2.0)


# ----------------------------------------------------------------------------- solve


def test_blow_up_at_a_save_time_is_not_reached():
    """NGF on E = -sum(theta^4)/4 from theta_1 = 1 blows up at t = 0.5, a save time of lr = 0.1."""
    flow = gf.gradient_flow(lambda t: -jnp.sum(t**4) / 4.0, lr=0.1)
    with pytest.warns(gf.DivergenceWarning, match="step size collapsed"):
        sol = gf.solve(flow, jnp.array([1.0, 0.0]), steps=7, max_steps=5000)
    assert sol.stopped_at == pytest.approx(0.5) and sol.times[-1] == pytest.approx(0.4)
    np.testing.assert_allclose(sol.theta[:, 0], 1.0 / np.sqrt(1.0 - 2.0 * sol.times), rtol=1e-8)
    assert "collapsed" in sol.stop_reason


def test_solve_wants_a_flow_and_names_the_factories():
    with pytest.raises(TypeError, match=r"flow must be a gdflows Flow.*gradient_flow.*principal_flow"):
        gf.solve(QUAD, jnp.ones(2), steps=2)
    with pytest.raises(TypeError, match=r"flow must be a gdflows Flow"):
        gf.solve_scan(QUAD, jnp.ones(2), ts=jnp.arange(3.0))


def test_solve_stops_at_once_on_a_nan_loss():
    flow = gf.gradient_flow(lambda t: jnp.sum(t**2) * jnp.nan, lr=0.1)
    with pytest.warns(gf.DivergenceWarning, match="loss is nan at theta0"):
        sol = gf.solve(flow, jnp.ones(2), steps=3)
    assert sol.stopped_at == 0.0 and len(sol.times) == 0 and sol.stats.accepted_steps == 0
    assert "theta0" in sol.stop_reason


def test_nan_theta0_is_refused_by_gd_and_solve():
    theta0 = jnp.array([1.0, jnp.nan])
    with pytest.raises(ValueError, match=r"theta0 has non-finite entries.*\[1\]"):
        gf.gd(QUAD, theta0, lr=0.1, steps=3)
    with pytest.raises(ValueError, match=r"theta0 has non-finite entries"):
        gf.solve(gf.gradient_flow(QUAD, lr=0.1), theta0, steps=3)


# ----------------------------------------------------------------------------- gd


def test_gd_nan_loss_at_step_0_does_not_blame_lr():
    with pytest.warns(gf.DivergenceWarning) as record:
        run = gf.gd(lambda t: jnp.sum(t**2) * jnp.nan, jnp.ones(2), lr=0.1, steps=3)
    message = str(record[0].message)
    assert "0..-1" not in message and "Lower lr" not in message
    assert "at theta0" in message and run.stopped_at == 0.0 and len(run.times) == 0


def _nan_gradient_loss(t):
    return jnp.sum(t**2) + jnp.sqrt(jnp.abs(t[1]))  # finite at t[1] = 0, its gradient is not


def test_gd_reports_a_nan_gradient_as_such():
    with pytest.warns(gf.DivergenceWarning, match=r"the gradient at step 0 .* non-finite entries \(at indices \[1\]\)"):
        run = gf.gd(_nan_gradient_loss, jnp.array([1.0, 0.0]), lr=0.1, steps=3)
    assert run.stopped_at == pytest.approx(0.1) and len(run.times) == 1


def test_gd_with_sharpness_marks_unreached_tracked_steps_nan():
    quartic = lambda t: 0.25 * jnp.sum(t**4)  # noqa: E731  (overflows within a few steps from 2 at lr = 1)
    with pytest.warns(gf.DivergenceWarning, match="overflowed|non-finite loss"):
        run = gf.gd_with_sharpness(quartic, jnp.array([2.0, 0.5]), lr=1.0, steps=12, every=2)
    first_bad = int(round(run.stopped_at / 1.0))
    lost = run.tracked_steps >= first_bad
    assert lost.any() and (~lost).any()
    for field in (run.eigenvalues, run.residuals, run.top_vector, run.theta):
        assert np.all(np.isnan(field[lost])) and np.all(np.isfinite(field[~lost]))


# ----------------------------------------------------------------------------- data


def _write_batch(path, data, labels):
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels}))


def test_empty_test_splits_are_valid():
    data = load("digits", n_train=1797)
    assert data.x_test.shape == (0, 64) and data.y_test.shape == (0, 10) and data.labels_test.shape == (0,)
    with pytest.raises(ValueError, match=r"n_train must be a positive integer, got n_train=0"):
        load("digits", n_train=0)


def test_cifar10_n_test_0_and_checked_batches(tmp_path):
    rng = np.random.default_rng(0)
    _write_batch(tmp_path / "data_batch_1", rng.integers(0, 256, (4, 3072), dtype=np.uint8), [0, 1, 2, 3])
    data = load("cifar10", root=tmp_path, n_train=4, n_test=0)
    assert data.x_test.shape == (0, 3072) and data.x_train.shape == (4, 3072)
    cases = [
        (np.full((4, 3072), 300.5), [0, 1, 2, 3], r"data_batch_1: b'data' has dtype float64"),
        (np.full((4, 3072), -3, np.int16), [0, 1, 2, 3], r"data_batch_1: b'data' has values in -3..-3"),
        (np.zeros((4, 3072), np.uint8), [0, 1.7, 2, 3], r"data_batch_1: b'labels' has dtype float64"),
        (np.zeros((4, 3072), np.uint8), [0, 1, 2, 12], r"data_batch_1: b'labels' has values in 0..12"),
    ]
    for pixels, labels, message in cases:
        _write_batch(tmp_path / "data_batch_1", pixels, labels)
        with pytest.raises(ValueError, match=message):
            load("cifar10", root=tmp_path, n_train=4, n_test=0)


# ----------------------------------------------------------------------------- models


def test_mlp_widths_must_be_positive_integers():
    with pytest.raises(ValueError, match=r"sizes\[1\] must be a positive integer, got sizes\[1\]=0"):
        MLP([4, 0, 3], rngs=nnx.Rngs(0))


def test_flatten_names_an_unknown_activation_attribute():
    model = MLP([4, 5, 3], rngs=nnx.Rngs(0))
    model.activation = "swish"
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; valid names: tanh, gelu, softplus, relu"):
        flatten(model, jnp.ones((2, 4)), jnp.zeros((2, 3)))


def test_activations_as_functions():
    x, y = jnp.ones((2, 4)), jnp.zeros((2, 3))
    for function, name in ((jnp.tanh, "tanh"), (nnx.gelu, "gelu")):
        model = MLP([4, 5, 3], activation=function, rngs=nnx.Rngs(0))
        by_name = MLP([4, 5, 3], activation=name, rngs=nnx.Rngs(0))
        flat, reference = flatten(model, x, y), flatten(by_name, x, y)
        assert model.activation == name and flat.holomorphic is True
        assert float(flat.loss(flat.theta0)) == float(reference.loss(reference.theta0))
    model = MLP([4, 5, 3], activation=lambda z: z / (1.0 + z**2), rngs=nnx.Rngs(0))
    flat = flatten(model, x, y)  # an unknown function: holomorphy decided by testing the loss
    assert flat.holomorphic is True and np.isfinite(float(flat.loss(flat.theta0)))


def test_cross_entropy_labels_take_classes_from_the_model():
    model = MLP([4, 5, 3], rngs=nnx.Rngs(0))
    x = jnp.linspace(0.0, 1.0, 8).reshape(2, 4)
    labels = jnp.array([0, 1])  # class 2 absent
    flat = flatten(model, x, labels, loss="cross_entropy")
    one_hot = flatten(model, x, jax.nn.one_hot(labels, 3), loss="cross_entropy")
    assert float(flat.loss(flat.theta0)) == pytest.approx(float(one_hot.loss(one_hot.theta0)), rel=1e-14)
    with pytest.raises(ValueError, match=r"labels in y must lie in 0\.\.2"):
        flatten(model, x, jnp.array([0, 3]), loss="cross_entropy")
    with pytest.raises(ValueError, match=r"loss='mse' needs one-hot targets"):
        flatten(model, x, labels, loss="mse")


def test_cnn_without_a_channel_axis_is_refused():
    with pytest.raises(ValueError, match=r"input_shape=\(8, 8\), which has no channel axis.*\(8, 8, 1\)"):
        CNN((8, 8), 10, rngs=nnx.Rngs(0))
    CNN((40, 1), 10, rngs=nnx.Rngs(0))  # a signal of 40 samples, one channel: fine


def test_no_warning_leaks_from_good_input():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = gf.gd(QUAD, jnp.ones(2), lr=0.1, steps=2)
        tx = optax.chain(dal(p=1.0))
        updates, _ = tx.update(jnp.ones(2), tx.init(jnp.ones(2)), jnp.ones(2), value_fn=QUAD)
    assert not [str(w.message) for w in caught]
    assert np.all(np.isfinite(run.theta)) and np.all(np.isfinite(updates))


# ----------------------------------------------------------------------------- problems and analysis (found looking)


def test_newton_refuses_a_singular_hessian_instead_of_a_nan_saddle():
    with pytest.raises(ValueError, match=r"singular or non-finite Hessian.*another guess"):
        find_critical_point(lambda t: jnp.sum(t**4), [0.0])


def test_landscape_constants_are_checked():
    with pytest.raises(ValueError, match=r"quartic must be a positive finite number, got quartic=0"):
        saddle_2d(quartic=0.0)
    with pytest.raises(ValueError, match=r"narrow_width must be a positive finite number"):
        two_minima_1d(narrow_width=0.0)
    with pytest.raises(TypeError, match=r"confinement must be a finite number"):
        two_minima_2d(confinement="0.05")


def test_analysis_shapes_and_windows_are_checked():
    t = np.arange(5.0)
    with pytest.raises(ValueError, match=r"t and distance must be 1-D of the same length"):
        escape_rate(t, np.exp(t[:4]), low=1.0, high=10.0)
    with pytest.raises(ValueError, match=r"low must be below high"):
        escape_rate(t, np.exp(t), low=10.0, high=1.0)
    with pytest.raises(ValueError, match=r"centres \(k, d\) and radii \(k,\)"):
        classify_endpoints(np.zeros((3, 2)), np.zeros((2, 2)), np.ones(3), bound=10.0)


def test_gd_wants_a_scalar_loss_function():
    with pytest.raises(TypeError, match=r"loss must be a function"):
        gf.gd(3.0, jnp.ones(2), lr=0.1, steps=2)
    with pytest.raises(ValueError, match=r"loss must return a real scalar, got shape \(2,\).*jnp\.sum"):
        gf.gd(lambda t: t**2, jnp.ones(2), lr=0.1, steps=2)
    with pytest.raises(ValueError, match=r"loss must return a real scalar"):
        gf.gd_with_sharpness(lambda t: t**2, jnp.ones(2), lr=0.1, steps=2)


# ----------------------------------------------------------------------------- the flows


def test_complex_pf_refuses_a_relu_loss_that_passes_the_probe():
    """The issue's example: GD moves theta_1 to -0.05, the complex PF (had it run) to -8e-12, silently."""
    loss = lambda t: jnp.sum(jax.nn.relu(t) ** 2) + 0.1 * jnp.sum(t**2)  # noqa: E731
    theta0 = jnp.array([0.5, 0.3])
    with pytest.raises(gf.NotHolomorphicError, match=r"uses relu .*space=.real."):
        gf.principal_flow(loss, lr=0.5).init(theta0)
    with pytest.raises(gf.NotHolomorphicError, match=r"uses abs"):
        gf.check_holomorphic(lambda t: jnp.sum(jnp.abs(t) ** 3), theta0)
    real = gf.solve(gf.principal_flow(loss, lr=0.5, space="real"), theta0, steps=1)  # the real-part PF runs
    assert np.all(np.isfinite(real.theta))


@pytest.mark.parametrize("order", [True, "1", 3, None])
def test_modified_flow_order_is_one_or_two_and_never_a_bool(order):
    with pytest.raises((TypeError, ValueError), match="order"):
        gf.modified_flow(lambda t: jnp.sum(t**2), lr=0.1, order=order)


@pytest.mark.parametrize("restoring", ["4", None, True, -1.0, float("nan")])
def test_central_flow_restoring_rate_is_a_number(restoring):
    with pytest.raises((TypeError, ValueError), match="restoring"):
        gf.central_flow(lambda t: jnp.sum(t**4), lr=0.1, restoring=restoring)


@pytest.mark.parametrize(("steps", "every"), [(True, 1), (2.5, 1), (4, True)])
def test_train_refuses_bools_and_fractions(steps, every):
    with pytest.raises(ValueError, match="steps|every"):
        gf.optim.train(lambda t: jnp.sum(t**2), optax.sgd(0.1), jnp.ones(2), steps=steps, every=every)
