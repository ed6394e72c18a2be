"""Shared set-up: float64 everywhere (enabled here, not by importing gdflows), and one smoke build of every notebook."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)  # importing gdflows leaves JAX's precision alone

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smoke_build() -> Path:
    """Execute every notebook in smoke mode into ``build/`` once; return the build tree.

    Set ``GDFLOWS_REUSE_BUILD=1`` to reuse an existing smoke build while iterating locally.
    """
    from gdflows import reproduce

    build = ROOT / "build"
    if os.environ.get("GDFLOWS_REUSE_BUILD") == "1" and (build / "status.md").exists():
        return build
    reproduce.reproduce([], smoke=True, build=build)
    return build
