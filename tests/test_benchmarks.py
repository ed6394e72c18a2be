"""benchmarks/pf_released_scheme.py and benchmarks/flow_cost.py, run in --quick mode by the smoke build, write
well-formed results (no timing is asserted); the markdown table writer they share."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from gdflows_book.benchmarks import table
from gdflows_book.setups import FLOW_NAMES as FLOWS


@pytest.fixture(scope="module")
def quick_run(smoke_build) -> Path:
    """The smoke build runs every benchmark script in --quick mode (``gdflows_book.runner``)."""
    return smoke_build


def _positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_files_written(quick_run: Path):
    for relative in (
        "benchmarks/pf_released_scheme.json",
        "benchmarks/pf_released_scheme.md",
        "benchmarks/flow_cost.json",
        "benchmarks/flow_cost.md",
        "figures/benchmark_flow_cost.png",
        "figures/benchmark_flow_cost.pdf",
    ):
        path = quick_run / relative
        assert path.is_file() and path.stat().st_size > 0, f"missing or empty: {relative}"
    assert (quick_run / "figures/benchmark_flow_cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _results(quick_run: Path, name: str) -> dict:
    results = json.loads((quick_run / f"benchmarks/{name}.json").read_text())
    assert results["mode"] == "quick"
    for key in ("parameters", "git_revision", "packages", "python", "machine"):
        assert key in results["provenance"]
    return results


def test_pf_released_scheme_json(quick_run: Path):
    results = _results(quick_run, "pf_released_scheme")
    assert results["provenance"]["parameters"]["f2"]["euler_steps"] == 525_000  # the reference is never shortened

    f2 = results["f2"]
    euler, ours, tsit5 = f2["authors_scheme"], f2["gdflows"], f2["gdflows_tsit5"]
    assert euler["euler_steps"] == 525_000
    for record in (euler, ours, tsit5):
        assert _positive(record["first_call_s"]) and _positive(record["warm"]["median_s"])
        assert record["warm"]["repeats"] >= 1
    # the numbers the book reports are the ones measured here: Euler's error is about 7e-4,
    # the adaptive solve's is at the level of its tolerances
    assert 1e-4 < euler["error_final"] < 1e-2
    assert ours["error_final"] < 1e-8 and ours["error_all_iterates"] < 1e-8
    assert ours["accepted_steps"] > 0 and ours["vector_field_evaluations"] > ours["accepted_steps"]
    assert _positive(f2["speedup_warm"])
    assert f2["error_ratio"] is None or f2["error_ratio"] > 1e3
    assert isinstance(f2["target_met"], bool) and isinstance(f2["tsit5"]["target_met"], bool)
    assert tsit5["solver"] == "tsit5" and tsit5["error_final"] < 1e-8


def test_flow_cost_json(quick_run: Path):
    results = _results(quick_run, "flow_cost")
    rows = results["flow_cost"]["rows"]
    assert [row["d"] for row in rows] == results["settings"]["dims"]
    for row in rows:
        assert set(row["flows"]) == set(FLOWS)
        assert all(_positive(row["flows"][name]["median_s"]) for name in FLOWS)
        assert _positive(row["gd"]["steps_per_second"])
    assert set(results["flow_cost"]["exponents"]) == {*FLOWS, "GD"}

    solver = results["solver_steps"]
    for name in FLOWS:
        record = solver["flows"][name]
        assert record["reached_gd_step"] == solver["gd_steps"], f"{name} did not reach the last GD step"
        assert record["accepted_steps"] > 0 and math.isfinite(record["max_distance_to_gd"])


@pytest.mark.parametrize(
    ("name", "heading"),
    [("pf_released_scheme", "### F2"), ("flow_cost", "### Time per vector-field evaluation")],
)
def test_results_markdown(quick_run: Path, name: str, heading: str):
    text = (quick_run / f"benchmarks/{name}.md").read_text()
    assert heading in text
    assert not re.search(r"\bnan\b|\binf\b", text, flags=re.IGNORECASE), "a non-finite number in the tables"
    # every table row has as many cells as its header
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1]) <= set("|-: "):
            width = line.count("|")
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert lines[j].count("|") == width, f"ragged table row: {lines[j]!r}"
                j += 1


def test_table_rows_and_alignment():
    assert table(["a", "b"], [["1", "2"]], "lr") == ["| a | b |", "|---|---:|", "| 1 | 2 |"]
    assert table(["a", "b"], [], "r")[1] == "|---:|---:|"
    with pytest.raises(ValueError, match="has 1 cells; the header has 2"):
        table(["a", "b"], [["1"]])
    with pytest.raises(ValueError, match="align="):
        table(["a", "b"], [], "lrr")


def test_pf_solvers_json(quick_run: Path):
    """benchmarks/pf_solvers.py: every explicit row counted, the implicit rows' evaluations marked uncounted, the
    exponential solve exact on the F2 quadratic (one step per GD step, error at Dopri8's reference level) where
    diffrax's Kvaerno5 needs many steps per GD step, and the table in the page."""
    results = _results(quick_run, "pf_solvers")
    rows = results["rows"]
    assert {r["solver"] for r in rows} >= {"dopri8", "exponential", "kvaerno5"}
    for r in rows:
        assert _positive(r["first_call_s"])
        if r["solver"] == "kvaerno5":  # diffrax's Jacobians are not seen by the tally: not counted, not guessed
            assert r["evaluations_per_gd_step"] is None and r["hvps_per_gd_step"] is None
        else:
            assert _positive(r["evaluations_per_gd_step"])
    f2 = {r["solver"]: r for r in rows if r["problem"] == "F2 quadratic" and r["space"] == "complex"}
    assert f2["exponential"]["accepted_per_gd_step"] == 1.0 and f2["exponential"]["rejected_per_gd_step"] == 0.0
    assert f2["exponential"]["max_error"] < 1e-9
    assert f2["kvaerno5"]["gd_steps_reached"] == 5 and f2["kvaerno5"]["max_error"] < 1e-6
    assert f2["kvaerno5"]["accepted_per_gd_step"] > 10  # order 5, steps set by accuracy, not stability
    krylov = [r for r in rows if r["spectrum"].startswith("Krylov")]
    assert {r["solver"] for r in krylov} >= {"exponential"} and all(r["hvps_per_gd_step"] > 0 for r in krylov)
    network = [r for r in krylov if r["problem"].startswith("F7 network") and r["gd_steps_reached"] == r["gd_steps"]]
    assert {r["solver"] for r in network} == {"dopri8", "exponential"}  # quick mode: both reach the end
    page = (quick_run / "benchmarks/pf_solvers.md").read_text()
    assert "`exponential`" in page and "`kvaerno5`" in page and "HVPs / GD step" in page and "Krylov m = 8" in page
    near = results["mlp_spectrum"]  # h = 2.2 / lambda_max puts the top eigenvalue of hH at 2.2
    assert near["above_one"] >= 1 and 0 <= near["nearest_to_one"] < 1.2
    assert f"MLP at its start: {near['above_one']} eigenvalues of $hH$ above 1" in page
