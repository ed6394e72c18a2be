"""Parameters as pytrees: gd, solve, every flow and the spectra take any pytree of float arrays and a loss
with extra arguments, and give results in the same structure, equal to the runs on the hand-ravelled loss."""

from __future__ import annotations

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

import gdflows as gf


class GeluNet(nnx.Module):
    """A small MLP with GELU (holomorphic), and no ``activation`` attribute."""

    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(3, 4, rngs=rngs, param_dtype=jnp.float64)
        self.out = nnx.Linear(4, 2, rngs=rngs, param_dtype=jnp.float64)

    def __call__(self, x):
        return self.out(jax.nn.gelu(self.hidden(x)))


X = jnp.linspace(-1.0, 1.0, 15, dtype=jnp.float64).reshape(5, 3)
Y = jnp.cos(X[:, :2])
GRAPHDEF, STATE = nnx.split(GeluNet(nnx.Rngs(0)))


def net_loss(state, x, y):
    return 0.5 * jnp.mean((nnx.merge(GRAPHDEF, state)(x) - y) ** 2)


def tree_loss(p, x, y):
    """Mixed shapes, a tuple, a nested dict and a 0-d leaf; holomorphic."""
    w, (b, scale) = p["layer"]["w"], p["rest"]
    pred = jnp.tanh(x @ w + b) * scale
    return 0.5 * jnp.mean((pred - y) ** 2) + 0.01 * jnp.sum(w**4)


TREE = {
    "layer": {"w": 0.4 * jnp.arange(6.0).reshape(3, 2) / 6 - 0.1},
    "rest": (jnp.array([0.1, -0.2]), jnp.array(1.3)),
}
CASES = {"nnx.State": (net_loss, STATE), "nested": (tree_loss, TREE)}


def by_hand(loss, params):
    """The reference: the loss ravelled with jax.flatten_util, independently of gdflows."""
    flat, unravel = ravel_pytree(params)
    return (lambda theta: loss(unravel(theta), X, Y)), flat


def same_structure(tree, like, lead=None):
    assert jax.tree.structure(tree) == jax.tree.structure(like)
    for leaf, ref in zip(jax.tree.leaves(tree), jax.tree.leaves(like), strict=True):
        assert leaf.shape == ((lead,) if lead is not None else ()) + jnp.shape(ref)


def compiles_during(run) -> int:
    events = []

    def listen(event, duration, **kw):
        if event.endswith("backend_compile_duration"):
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        run()
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    return len(events)


@pytest.mark.parametrize("case", CASES)
def test_gd_on_a_pytree_is_gd_on_the_ravelled_loss(case):
    loss, params = CASES[case]
    run = gf.gd(loss, params, lr=0.3, steps=6, args=(X, Y))
    flat_loss, theta0 = by_hand(loss, params)
    ref = gf.gd(flat_loss, theta0, lr=0.3, steps=6)
    np.testing.assert_allclose(run.theta, ref.theta, rtol=0, atol=1e-15)
    np.testing.assert_allclose(run.loss, ref.loss, rtol=1e-15, atol=0)
    same_structure(run.params, params, lead=7)
    same_structure(run.final_params, params)
    assert run.theta.shape == (7, theta0.shape[0])
    np.testing.assert_array_equal(ravel_pytree(run.final_params)[0], run.theta[-1])


@pytest.mark.parametrize("case", CASES)
def test_solve_on_a_pytree_is_solve_on_the_ravelled_loss(case):
    loss, params = CASES[case]
    flat_loss, theta0 = by_hand(loss, params)
    fixed = dict(solver="rk4", fixed_steps_per_gd_step=2)  # fixed steps: the same steps on both sides
    for make in (gf.gradient_flow, lambda f, **kw: gf.principal_flow(f, space="real", **kw)):
        sol = gf.solve(make(loss, lr=0.3, args=(X, Y)), params, steps=3, **fixed)
        ref = gf.solve(make(flat_loss, lr=0.3), theta0, steps=3, **fixed)
        np.testing.assert_allclose(sol.theta, ref.theta, rtol=0, atol=1e-15)
        same_structure(sol.params, params, lead=4)


def test_complex_pf_on_a_pytree_keeps_the_imaginary_part():
    flat_loss, theta0 = by_hand(tree_loss, TREE)
    fixed = dict(solver="rk4", fixed_steps_per_gd_step=4)  # h lambda_max = 1.65: complex from the start
    sol = gf.solve(gf.principal_flow(tree_loss, lr=1.5, args=(X, Y)), TREE, steps=2, **fixed)
    ref = gf.solve(gf.principal_flow(flat_loss, lr=1.5), theta0, steps=2, **fixed)
    # eig of the complex-symmetric Hessian turns round-off in H (another fusion of the same sums) into ~1e-13
    np.testing.assert_allclose(sol.theta, ref.theta, rtol=0, atol=1e-12)
    imaginary = np.asarray(sol.state[1])
    assert np.abs(imaginary[-1]).max() > 1e-6  # the complex PF left the real space
    np.testing.assert_allclose(imaginary, np.asarray(ref.state[1]), rtol=0, atol=1e-12)
    # the map back keeps the imaginary part, leaf by leaf
    z = jnp.asarray(sol.state[0][-1]) + 1j * jnp.asarray(imaginary[-1])
    _, unravel = gf.ravel(TREE)
    tree = unravel(z)
    assert all(jnp.iscomplexobj(leaf) for leaf in jax.tree.leaves(tree))
    np.testing.assert_array_equal(ravel_pytree(jax.tree.map(jnp.imag, tree))[0], imaginary[-1])


def test_rod_and_central_flow_runs_on_a_pytree():
    flat_loss, theta0 = by_hand(tree_loss, TREE)
    run = gf.central_flow_run(tree_loss, TREE, lr=0.3, steps=3, args=(X, Y))
    ref = gf.central_flow_run(flat_loss, theta0, lr=0.3, steps=3)
    np.testing.assert_allclose(run.theta, ref.theta, rtol=0, atol=1e-15)
    same_structure(run.params, TREE, lead=4)
    rod = gf.solve(gf.rod_flow(tree_loss, lr=0.3, args=(X, Y)), TREE, steps=2)
    c, delta = rod.state
    assert c.shape == delta.shape == (3, theta0.shape[0])  # the state stays flat
    same_structure(rod.params, TREE, lead=3)


def test_a_batch_through_args_reuses_the_compilation():
    gf.gd(tree_loss, TREE, lr=0.1, steps=4, args=(X, Y))
    other, batch = jax.tree.map(lambda leaf: leaf + 0.05, TREE), X + 0.1
    assert compiles_during(lambda: gf.gd(tree_loss, other, lr=0.1, steps=4, args=(batch, Y))) == 0
    run = gf.gd(tree_loss, TREE, lr=0.1, steps=4, args=(batch, Y))
    assert run.loss[0] == pytest.approx(float(tree_loss(TREE, batch, Y)), rel=1e-15)


def test_a_second_solve_on_the_same_structure_does_not_recompile():
    flow = gf.principal_flow(tree_loss, lr=0.3, space="real", args=(X, Y))
    gf.solve(flow, TREE, steps=2)
    other, batch = jax.tree.map(lambda leaf: 0.9 * leaf, TREE), X - 0.1
    assert compiles_during(lambda: gf.solve(flow, other, steps=2)) == 0
    again = gf.principal_flow(tree_loss, lr=0.3, space="real", args=(batch, Y))  # a new flow and batch
    assert compiles_during(lambda: gf.solve(again, other, steps=2)) == 0


def test_a_flat_array_without_args_passes_through():
    theta0 = jnp.array([0.5, -1.0])
    loss = lambda th: jnp.sum(th**2)  # noqa: E731
    run = gf.gd(loss, theta0, lr=0.1, steps=2)
    assert run.unravel is None and run.params is run.theta
    assert gf.solve(gf.gradient_flow(loss, lr=0.1), theta0, steps=1).unravel is None


def test_spectra_on_a_pytree():
    flat_loss, theta0 = by_hand(tree_loss, TREE)
    v = jax.tree.map(lambda leaf: jnp.ones_like(leaf) * 0.3, TREE)
    product = gf.hvp(tree_loss, TREE, v, args=(X, Y))
    same_structure(product, TREE)
    np.testing.assert_allclose(
        ravel_pytree(product)[0], gf.hvp(flat_loss, theta0, ravel_pytree(v)[0]), rtol=0, atol=1e-15
    )
    H = gf.hessian(tree_loss, TREE, args=(X, Y))
    np.testing.assert_allclose(H, gf.hessian(flat_loss, theta0), rtol=0, atol=1e-15)
    assert H.shape == (theta0.shape[0],) * 2
    pairs = gf.spectral.top_eigenpairs(tree_loss, TREE, 2, args=(X, Y))
    assert pairs.vectors.shape == (2, theta0.shape[0])  # flat view
    np.testing.assert_allclose(pairs.values, jnp.linalg.eigvalsh(H)[::-1][:2], rtol=1e-10)


def test_bad_pytrees_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"leaf \['count'\] of dtype int"):
        gf.gd(tree_loss, {"w": jnp.ones(2), "count": jnp.array(3)}, lr=0.1, steps=1)
    with pytest.raises(TypeError, match="args must be a tuple"):
        gf.gd(tree_loss, TREE, lr=0.1, steps=1, args=X)
    flow = gf.gradient_flow(tree_loss, lr=0.1, args=(X, Y))
    with pytest.raises(TypeError, match=r"init of NGF takes the flat parameter vector.*gdflows\.solve"):
        flow.init(TREE)
    handmade = flow._replace(factory=None)
    with pytest.raises(TypeError, match="not built by a gdflows flow factory"):
        gf.solve(handmade, TREE, steps=1)


@pytest.mark.parametrize(
    "make",
    [
        lambda loss, **kw: gf.gradient_flow(loss, lr=0.3, **kw),
        lambda loss, **kw: gf.modified_flow(loss, lr=0.3, order=2, **kw),
        lambda loss, **kw: gf.principal_flow(loss, lr=0.3, space="real", spectrum="krylov", krylov_dim=5, **kw),
        lambda loss, **kw: gf.rod_flow(loss, lr=0.3, **kw),
        lambda loss, **kw: gf.central_flow(loss, lr=0.3, k=1, **kw),
    ],
    ids=["NGF", "MF3", "PF-krylov", "rod", "central"],
)
def test_every_factory_rebuilds_its_flow_with_its_options(make):
    flat_loss, theta0 = by_hand(tree_loss, TREE)
    flow = make(tree_loss, args=(X, Y))
    rebuilt, ref = flow.factory(flat_loss), make(flat_loss)
    assert (rebuilt.name, rebuilt.lr) == (ref.name, ref.lr) and rebuilt.factory is not None
    field, expected = (f.vector_field(0.0, f.init(theta0)) for f in (rebuilt, ref))
    for a, b in zip(jax.tree.leaves(field), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)
    assert flow.loss(TREE) == pytest.approx(float(flat_loss(theta0)), rel=1e-15)  # flow.loss: args bound


def test_a_list_of_numbers_is_a_vector_and_a_list_of_arrays_a_pytree():
    """A start written as ``[-0.35, -0.2]`` (a notebook's parameter cell) is the vector it always was."""
    quadratic = lambda th: 0.5 * jnp.sum(jnp.array([3.0, 1.0]) * th**2)  # noqa: E731
    from_list = gf.gd(quadratic, [1.0, -2.0], lr=0.1, steps=3)
    from_array = gf.gd(quadratic, jnp.array([1.0, -2.0]), lr=0.1, steps=3)
    assert from_list.unravel is None
    np.testing.assert_array_equal(from_list.theta, from_array.theta)
    pair = gf.gd(lambda p: 0.5 * (3.0 * p[0] ** 2 + p[1] ** 2), [jnp.array(1.0), jnp.array(-2.0)], lr=0.1, steps=3)
    assert isinstance(pair.final_params, list) and len(pair.final_params) == 2
    np.testing.assert_allclose(pair.theta, from_array.theta, rtol=0, atol=1e-15)
