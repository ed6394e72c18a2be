"""The cost tally counts what a run evaluates: every count against the cost known by construction."""

import jax
import jax.numpy as jnp
import pytest

import gdflows as gf
from gdflows.cost import Cost, CostTally
from gdflows.spectral import hvp_operator, lanczos, third_derivative, top_eigenpairs

jax.config.update("jax_enable_x64", True)

D = 6


def _loss(x):
    a = jnp.arange(1.0, D + 1.0)
    return 0.5 * jnp.sum(a * x * x) + 0.1 * jnp.sum(jnp.tanh(x) ** 4)


X0 = 0.3 * jnp.ones(D)


def _counted(run):
    tally = CostTally()
    loss = tally.wrap(_loss)
    with tally:
        jax.block_until_ready(run(loss))
    return tally.cost


def assert_only(cost: Cost, **expected) -> None:
    assert cost._asdict() == {field: float(expected.get(field, 0)) for field in Cost._fields}


def test_derivative_orders():
    assert_only(_counted(lambda f: jax.jit(f)(X0)), values=1)
    assert_only(_counted(lambda f: jax.jit(jax.grad(f))(X0)), gradients=1)
    assert_only(_counted(lambda f: jax.jit(jax.value_and_grad(f))(X0)), gradients=1)
    assert_only(_counted(lambda f: gf.hvp(f, X0, X0)), hvps=1)
    assert_only(_counted(lambda f: third_derivative(f, X0, X0, X0)), third_derivatives=1)


def test_vmap_multiplies_and_loops_repeat():
    assert_only(_counted(lambda f: jax.vmap(jax.grad(f))(jnp.ones((5, D)))), gradients=5)
    assert_only(_counted(lambda f: gf.hessian(f, X0)), hvps=D, dense_hessians=1)
    assert_only(_counted(lambda f: gf.hessian(f, X0, block=4)), hvps=D, dense_hessians=1)  # lax.map in blocks of 4

    def loop(f):
        return jax.jit(lambda x: jax.lax.fori_loop(0, 7, lambda i, y: y - 0.01 * jax.grad(f)(y), x))(X0)

    assert_only(_counted(loop), gradients=7)
    assert_only(_counted(lambda f: gf.gd(f, X0, lr=0.01, steps=9).theta), gradients=9, values=1)


def test_linearised_operator_and_eigensolvers():
    def apply_three_times(f):
        op = hvp_operator(f, X0)
        return op(op(op(X0)))

    assert_only(_counted(apply_three_times), gradients=1, hvps=3)
    assert_only(_counted(lambda f: lanczos(hvp_operator(f, X0), X0, 4).alpha), gradients=1, hvps=4, lanczos_runs=1)
    pairs = _counted(lambda f: top_eigenpairs(f, X0, 2, m=5, strict=False).values)
    assert_only(pairs, gradients=1, hvps=5 + 2, lanczos_runs=1)  # m for the basis, k for the residuals


@pytest.mark.parametrize(
    ("make", "per_evaluation"),
    [
        (lambda f: gf.gradient_flow(f, lr=0.1), {"gradients": 1}),
        (lambda f: gf.modified_flow(f, lr=0.1, order=1), {"gradients": 1, "hvps": 1}),
        (lambda f: gf.modified_flow(f, lr=0.1, order=2), {"gradients": 1, "hvps": 2, "third_derivatives": 1}),
        (lambda f: gf.principal_flow(f, lr=0.1, spectrum="dense"), {"gradients": 1, "hvps": D, "dense_hessians": 1}),
        (
            lambda f: gf.principal_flow(f, lr=0.1, spectrum="krylov", krylov_dim=4),
            {"gradients": 1, "hvps": 4, "lanczos_runs": 1},
        ),
        (lambda f: gf.rod_flow(f, lr=0.1), {"gradients": 2}),
    ],
)
def test_flow_field_costs(make, per_evaluation):
    """A compiled loop of n field evaluations costs n times the flow's cost per evaluation."""
    n = 5
    tally = CostTally()
    flow = make(tally.wrap(_loss))
    state = flow.init(X0)
    tally.reset()  # building the flow may check the loss (e.g. holomorphy); not part of the loop
    with tally:
        loop = jax.jit(
            lambda s: jax.lax.fori_loop(
                0, n, lambda i, s: jax.tree.map(lambda a, b: a + 1e-9 * b, s, flow.vector_field(0.0, s)), s
            )
        )
        jax.block_until_ready(loop(state))
    assert_only(tally.cost / n, **per_evaluation)


def test_nothing_planted_without_a_tally():
    """Outside ``with tally:`` the eigensolver notes leave the compiled program untouched."""
    jaxpr = jax.make_jaxpr(lambda x: gf.hessian(_loss, x))(X0)
    assert "debug_callback" not in str(jaxpr)
    tally = CostTally()
    with tally:
        jaxpr = jax.make_jaxpr(lambda x: gf.hessian(_loss, x))(X0)
    assert "debug_callback" in str(jaxpr)


def test_cost_arithmetic():
    a = Cost(1, 2, 3, 4, 5, 6, 7)
    assert (a / 2).hvps == 1.5
    assert a.eigensolver_calls == 18


def test_counts_agree_with_the_central_flows_own_bookkeeping():
    """``central_flow_run`` counts its Hessian-vector products (LOBPCG's, which stop early), third-derivative products
    and gradients itself; the tally, counting the compiled run from outside, finds the same numbers."""
    tally = CostTally()
    with tally:
        run = gf.central_flow_run(
            tally.wrap(_loss), X0, lr=0.3, steps=6, tracked=2, eigen=gf.EigenOptions(spectrum="iterative")
        )
    cost = tally.cost
    assert run.hvps > 0 and run.third_derivative_products > 0
    assert (cost.hvps, cost.third_derivatives, cost.gradients) == (
        run.hvps,
        run.third_derivative_products,
        run.gradients,
    )
    assert cost.lobpcg_runs == 6 * run.substeps
