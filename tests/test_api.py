"""The library's face: no global side effects, precision warnings, the flow's learning rate, typed results."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import gdflows as gf
import gdflows.errors

QUADRATIC = lambda theta: 0.5 * jnp.sum(jnp.array([3.0, 1.0]) * theta**2)  # noqa: E731
THETA0 = jnp.array([1.0, -0.5])


def test_importing_gdflows_leaves_x64_off():
    code = "import jax, gdflows; print(jax.config.jax_enable_x64, jax.numpy.ones(1).dtype)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "float32"]


class TestPrecisionWarning:
    def test_solve_warns_once_on_float32(self):
        flow = gf.principal_flow(QUADRATIC, lr=0.5, space="real")
        with pytest.warns(gf.PrecisionWarning, match="jax_enable_x64") as record:
            gf.solve(flow, THETA0.astype(jnp.float32), steps=1, rtol=1e-5, atol=1e-7)
        assert sum(issubclass(w.category, gf.PrecisionWarning) for w in record) == 1
        assert "solve got float32" in str(record[0].message)

    def test_gd_and_flow_init_warn_on_single_precision(self):
        with pytest.warns(gf.PrecisionWarning, match="gd got float32"):
            gf.gd(QUADRATIC, THETA0.astype(jnp.float32), lr=0.1, steps=2)
        for flow in (gf.rod_flow(QUADRATIC, lr=0.1), gf.gradient_flow(QUADRATIC, lr=0.1)):
            with pytest.warns(gf.PrecisionWarning, match=f"init of {flow.name}"):
                flow.init(THETA0.astype(jnp.float32))

    def test_float64_input_draws_no_warning(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", gf.PrecisionWarning)
            gf.solve(gf.rod_flow(QUADRATIC, lr=0.1), THETA0, steps=1)
            gf.gd(QUADRATIC, THETA0, lr=0.1, steps=1)
        assert not [w for w in caught if issubclass(w.category, gf.PrecisionWarning)], [str(w.message) for w in caught]

    def test_is_a_user_warning_exported_from_both_places(self):
        assert issubclass(gf.PrecisionWarning, UserWarning) and gf.PrecisionWarning is gdflows.errors.PrecisionWarning


class TestLearningRate:
    def test_every_flow_carries_its_lr(self):
        for make in (gf.gradient_flow, gf.modified_flow, gf.principal_flow, gf.rod_flow, gf.central_flow):
            assert make(QUADRATIC, lr=0.25).lr == 0.25
            assert inspect.signature(make).parameters["lr"].kind is inspect.Parameter.KEYWORD_ONLY

    def test_solve_reads_the_flow_lr(self):
        run = gf.solve(gf.gradient_flow(QUADRATIC, lr=0.25), THETA0, steps=4)
        np.testing.assert_allclose(run.times, 0.25 * np.arange(5), atol=1e-15)

    def test_a_disagreeing_lr_is_an_error_naming_both(self):
        flow = gf.principal_flow(QUADRATIC, lr=0.5)
        with pytest.raises(ValueError, match=r"lr=0\.9 disagrees .* flow\.lr=0\.5"):
            gf.solve(flow, THETA0, lr=0.9, steps=2)
        assert gf.solve(flow, THETA0, lr=0.5, steps=2).theta.shape == (3, 2)


class TestTypedResults:
    def test_solution_fields(self):
        run = gf.solve(gf.rod_flow(QUADRATIC, lr=0.1), THETA0, steps=3, solver="rk4", fixed_steps_per_gd_step=4)
        assert isinstance(run, gf.Solution) and isinstance(run.stats, gf.SolverStats)
        assert run.times.shape == (4,) and run.theta.shape == (4, 2) and run.loss.shape == (4,)
        assert run.state[0].shape == run.state[1].shape == (4, 2)
        assert run.solver == "rk4" and run.dt == pytest.approx(0.025) and run.rtol is None
        assert run.stats.accepted_steps == 12 and not run.diverged and run.stop_reason is None

    def test_zero_steps_keeps_the_state_shape(self):
        run = gf.solve(gf.rod_flow(QUADRATIC, lr=0.1), THETA0, steps=0)
        assert run.state[1].shape == (1, 2) and run.stats == gf.SolverStats(0, 0, 0)

    def test_gd_result(self):
        run = gf.gd(QUADRATIC, THETA0, lr=0.1, steps=3)
        assert isinstance(run, gf.GDRun) and run._fields == ("times", "theta", "loss", "stopped_at", "unravel")

    def test_no_result_holds_a_dict(self):
        for result in (gf.GDRun, gf.Solution, gf.SharpnessRun, gf.CentralRun, gf.FlowScan, gf.GDScan):
            hints = " ".join(str(v) for v in result.__annotations__.values())
            assert "dict" not in hints and "info" not in result._fields, result


def test_every_exception_lives_in_errors_and_is_exported():
    names = [n for n, v in vars(gdflows.errors).items() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(names) == 9 and sorted(names) == sorted(gdflows.errors.__all__)
    for name in names:
        assert getattr(gf, name) is getattr(gdflows.errors, name), name


@pytest.mark.parametrize(
    "name", ["data", "models", "optim", "spectral", "sdcp", "problems", "flows", "errors", "analysis", "games", "cost"]
)
def test_public_submodules_import_as_modules(name):
    module = importlib.import_module(f"gdflows.{name}")
    assert inspect.ismodule(module)
    exec(f"import gdflows.{name} as m", (scope := {}))
    assert inspect.ismodule(scope["m"])


def public_modules() -> list[str]:
    """Every module of the package with no private (underscore) component in its name."""
    import pkgutil

    names = [info.name for info in pkgutil.walk_packages(gf.__path__, prefix="gdflows.")]
    return [name for name in names if not any(part.startswith("_") for part in name.split("."))]


@pytest.mark.parametrize("name", public_modules())
def test_every_public_module_imports_by_name_and_no_name_shadows_it(name):
    module = importlib.import_module(name)
    assert inspect.ismodule(module) and module.__name__ == name
    parent, _, child = name.rpartition(".")
    assert getattr(importlib.import_module(parent), child) is module  # not a function of the same name
    exec(f"import {name}", (scope := {}))
    assert inspect.ismodule(scope["gdflows"])


def test_gd_and_solve_are_functions_not_shadowed_modules():
    assert inspect.isfunction(gf.gd) and inspect.isfunction(gf.solve)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("gdflows.gd")


@pytest.mark.parametrize(
    "make",
    [
        lambda lr: gf.rod_flow(QUADRATIC, lr=lr),
        lambda lr: gf.principal_flow(QUADRATIC, lr=lr),
        lambda lr: gf.modified_flow(QUADRATIC, lr=lr, order=2),
        lambda lr: gf.gradient_flow(QUADRATIC, lr=lr),
    ],
    ids=["rod", "PF", "MF3", "NGF"],
)
def test_a_new_flow_on_the_same_loss_does_not_recompile(make):
    """Flows bind their loss and options to module-level functions, with lr as an array leaf."""
    import jax.monitoring

    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiles.append(event) if event.endswith("backend_compile_duration") else None
    )
    gf.solve(make(0.1), THETA0, steps=2)
    before = len(compiles)
    gf.solve(make(0.1), THETA0, steps=2)  # (a) a new flow, the same lr
    gf.solve(make(0.2), THETA0, steps=2)  # (b) a new flow, another lr
    assert len(compiles) == before
