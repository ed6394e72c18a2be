"""Tests of the tests: every test function can fail.

The rule, checked on the syntax tree of every ``tests/*.py``: a function named ``test_*`` (at
module level or in a ``Test*`` class) must contain, anywhere in its body,

* an ``assert`` statement, or
* a call of ``pytest.raises``, ``pytest.warns`` or ``pytest.fail``, or
* a call of a library's function or method whose name starts with ``assert``
  (``np.testing.assert_allclose``, ``chex.assert_trees_all_close``, ...), or
* a call of a function of the same file whose name starts with ``assert_`` or ``check_`` and
  which itself follows this rule (a shared checking helper; one that does not check counts for
  nothing, whatever its name).

A test that only runs code, or whose check became a comment, fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PYTEST_CHECKS = {"raises", "warns", "fail"}
HELPER_PREFIXES = ("assert_", "check_")


def _called_name(call: ast.Call) -> tuple[str | None, str | None]:
    """``(owner, name)`` of a call: ``pytest.raises(x)`` gives ``("pytest", "raises")``, ``f(x)`` ``(None, "f")``."""
    func = call.func
    if isinstance(func, ast.Name):
        return None, func.id
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        return owner, func.attr
    return None, None


def _checks(function: ast.FunctionDef | ast.AsyncFunctionDef, helpers: dict, seen: frozenset = frozenset()) -> bool:
    """Whether ``function``'s body asserts, by the rule of this module."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if not isinstance(node, ast.Call):
            continue
        owner, name = _called_name(node)
        if name is None:
            continue
        if owner == "pytest" and name in PYTEST_CHECKS:
            return True
        if owner is None and name in helpers:  # a helper of this file counts only if it checks
            if name.startswith(HELPER_PREFIXES) and name not in seen and _checks(helpers[name], helpers, seen | {name}):
                return True
        elif name.startswith("assert"):
            return True
    return False


def unchecked_tests(source: str) -> list[str]:
    """The names of the test functions in ``source`` that contain no check."""
    tree = ast.parse(source)
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    helpers = {node.name: node for node in tree.body if isinstance(node, functions)}
    tests = [node for node in tree.body if isinstance(node, functions) and node.name.startswith("test")]
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef) and node.name.startswith("Test")):
        tests += [f for f in cls.body if isinstance(f, functions) and f.name.startswith("test")]
    return [test.name for test in tests if not _checks(test, helpers)]


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda path: path.name)
def test_every_test_function_checks_something(path: Path):
    missing = unchecked_tests(path.read_text(encoding="utf-8"))
    assert not missing, (
        f"{path.name}: test functions without an assert, pytest.raises/warns/fail or assert_* call: {missing}"
    )


SYNTHETIC = """
import numpy as np
import pytest


def check_positive(x):
    assert x > 0


def check_nothing(x):
    print(x)


def assert_recursive(x):
    assert_recursive(x)


def test_plain_assert():
    assert 1 + 1 == 2


def test_raises():
    with pytest.raises(ValueError):
        int("x")


def test_numpy_testing():
    np.testing.assert_allclose(1.0, 1.0)


def test_helper_that_asserts():
    check_positive(1)


def test_assertion_turned_into_a_comment():
    value = 1 + 1
    # assert value == 2


def test_helper_that_only_prints():
    check_nothing(1)


def test_recursive_helper_without_a_check():
    assert_recursive(1)


class TestGroup:
    def test_method_without_a_check(self):
        x = pytest.approx(1.0)


async def test_async_without_a_check():
    pass
"""


def test_rule_flags_tests_that_cannot_fail():
    """On a synthetic file: the four kinds of check pass, the tests without one are named."""
    assert sorted(unchecked_tests(SYNTHETIC)) == [
        "test_assertion_turned_into_a_comment",
        "test_async_without_a_check",
        "test_helper_that_only_prints",
        "test_method_without_a_check",
        "test_recursive_helper_without_a_check",
    ]
