"""The examples in the library's docstrings run, and print what they say (64-bit mode from conftest).

Every module of ``gdflows`` (private ones included: ``gdflows._gd`` holds :func:`gdflows.gd`) is
searched by :mod:`doctest`; each docstring's examples run in a copy of its module's namespace.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import gdflows

MODULES = ["gdflows"] + [info.name for info in pkgutil.walk_packages(gdflows.__path__, prefix="gdflows.")]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# The main entry points: each must carry a runnable example.
WITH_EXAMPLES = [
    "gdflows.gd",
    "gdflows.solve",
    "gdflows.gradient_flow",
    "gdflows.modified_flow",
    "gdflows.principal_flow",
    "gdflows.rod_flow",
    "gdflows.dal",
    "gdflows.data.load",
    "gdflows.models.MLP",
    "gdflows.models.flatten",
    "gdflows.problems.two_minima_1d",
    "gdflows.problems.two_minima_2d",
    "gdflows.problems.saddle_2d",
    "gdflows.problems.saddle_quadratic",
    "gdflows.problems.find_critical_point",
]


def _tests(module_name: str) -> list[doctest.DocTest]:
    """The module's docstring examples, each once (a ``jax.jit`` wrapper repeats its function's docstring)."""
    module = importlib.import_module(module_name)
    found = {}
    tests = sorted(doctest.DocTestFinder().find(module), key=lambda test: test.name.rsplit(".", 1)[-1].startswith("_"))
    for test in tests:  # a public name first: gd_scan, not _gd_scan_jit
        if test.examples:
            found.setdefault((test.filename, test.lineno), test)
    return list(found.values())


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name: str):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    for test in _tests(module_name):
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name}:\n" + "".join(
        report
    )


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_main_entry_points_have_examples(name: str):
    module_name, attribute = name.rsplit(".", 1)
    obj = getattr(importlib.import_module(module_name), attribute)
    examples = doctest.DocTestParser().get_examples(obj.__doc__ or "")
    assert examples, f"{name} has no example in its docstring; add an 'Example:' section with >>> lines"
