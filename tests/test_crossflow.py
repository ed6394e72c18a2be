"""F15's measurement: distances in each flow's own notion, counted costs, the table and the figure."""

import jax
import numpy as np
import pytest

from gdflows_book import crossflow

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="module")
def quadratic_and_valley():
    cases = crossflow.cases(
        ["quadratic", "valley"],
        horizons=[10],
        network={},
        network_lrs=[],
        network_steps=0,
        network_max_steps=0,
        pf_network_steps=0,
        pf_krylov_dim=0,
        pf_max_steps=0,
        manifold_eta=0.05,
        approach=3.0,
        limiting_steps=10,
    )
    entries = [crossflow.measure(case, name, slow_s=0.0) for case in cases for name in case.horizons]
    references = {case.key: crossflow.reference_cost(case) for case in cases}
    return cases, entries, references


def test_unknown_problem_is_named():
    counts = dict.fromkeys(
        ("network_steps", "network_max_steps", "pf_network_steps", "pf_krylov_dim", "pf_max_steps"), 0
    )
    with pytest.raises(ValueError, match="unknown.*'cube'"):
        crossflow.cases(
            ["cube"],
            horizons=[],
            network={},
            network_lrs=[],
            manifold_eta=0.1,
            approach=1.0,
            limiting_steps=1,
            **counts,
        )


def test_each_flow_is_measured_in_its_own_notion(quadratic_and_valley):
    cases, entries, references = quadratic_and_valley
    by = {(e.case, e.flow): e for e in entries}
    assert [c.key for c in cases] == ["quadratic", "valley"]
    assert {e.flow for e in entries if e.case == "quadratic"} == set(crossflow.GD_FLOWS)
    pf = by[("quadratic", "PF")]
    assert pf.distance_to == "iterates" and pf.reached == 10 and pf.relative[0] < 1e-8  # exact on quadratics
    assert pf.cost["dense_hessians"] >= 1 and pf.cost["hvps"] == 2 * pf.cost["dense_hessians"]  # d = 2 columns each
    rod = by[("quadratic", "rod flow")]
    assert rod.distance_to == "centre" and rod.cost["hvps"] == 0 and rod.cost["eigensolver_calls"] == 0
    assert by[("valley", "normalized GD flow")].distance_to == "projection"
    assert by[("valley", "normalized GD flow")].relative[0] < 1e-2
    assert references["quadratic"]["gradients"] == 1.0 and references["valley"]["gradients"] == 1.0
    assert all(e.timing == "first call, counted" for e in entries)  # slow_s=0: no warm rerun


def test_centre_distance_is_to_the_midpoint_of_consecutive_iterates(quadratic_and_valley):
    """The rod flow starts at GD's first centre, so its distance there is zero."""
    cases, _, _ = quadratic_and_valley
    start = crossflow._reference(cases[0], "rod flow", 3)
    import gdflows as gf

    gd = np.asarray(gf.gd(cases[0].loss, cases[0].theta0, lr=cases[0].lr, steps=4).theta)
    np.testing.assert_allclose(start.targets, 0.5 * (gd[:-1] + gd[1:]), rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.asarray(start.theta0), start.targets[0], rtol=0, atol=1e-15)


def test_table_and_figure_show_every_entry(quadratic_and_valley):
    cases, entries, references = quadratic_and_valley
    text = crossflow.table(entries, cases, references)
    rows = [line for line in text.splitlines() if line.startswith("| |")]
    assert len(rows) == len(entries)
    assert "normalized GD flow | projection" in text and "rod flow | centre" in text
    fig = crossflow.plot(entries, references, horizons=[10])
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == len(entries)
