"""Shared set-up: float64 everywhere (enabled here, not by importing gdflows), and one smoke build of every notebook
(run a few at a time)."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)  # importing gdflows leaves JAX's precision alone

ROOT = Path(__file__).resolve().parents[1]
#: Notebooks executed at once for the smoke build: one per core, at most four. Smoke runs report no
#: timing as a result, so sharing the cores changes nothing a check reads.
SMOKE_JOBS = max(1, min(4, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def smoke_build() -> Path:
    """Execute every notebook in smoke mode (and every benchmark in quick mode) into ``build-smoke/``;
    return the build tree. The execution cache re-runs only what changed since the last session, and
    the paper build in ``build/`` is left alone."""
    from gdflows_book import runner

    build = ROOT / "build-smoke"
    runner.reproduce([], root=ROOT, build=build, smoke=True, jobs=SMOKE_JOBS)
    return build


@pytest.fixture(autouse=True, scope="module")
def _fresh_compilation_caches():
    """Drop JAX's compiled programs after each test module. The suite compiles thousands of programs in one process
    (with host callbacks, in the cost tests); keeping them all for the whole run only grows the process, and one
    full run on a loaded machine ended in a segmentation fault inside XLA's compiler late in the suite."""
    yield
    jax.clear_caches()
