"""A notebook's parameters: paper defaults, smoke values and the user's ``-p NAME=VALUE``.

The cell tagged ``parameters`` holds the paper defaults, and a raw cell tagged
``smoke-parameters`` the values a smoke run changes; both are plain assignments of literals,
read with :func:`ast.literal_eval` and never executed by the runner. The parameters of a run are
paper defaults, overridden by the smoke values (with ``--smoke``), overridden by the user's
values; the full dict is injected by papermill, so the kernel runs what is recorded.
"""

from __future__ import annotations

import ast
import json

PARAMETERS_TAG = "parameters"
SMOKE_TAG = "smoke-parameters"


class ParameterError(ValueError):
    """A parameter cell or value that the runner cannot use."""


def tagged_cell(notebook, tag: str):
    """The one cell carrying ``tag``, or ``None``; two such cells are an error."""
    cells = [cell for cell in notebook.cells if tag in cell.get("metadata", {}).get("tags", [])]
    if len(cells) > 1:
        raise ParameterError(f"{len(cells)} cells are tagged {tag!r}; a notebook has at most one")
    return cells[0] if cells else None


def assignments(source: str, what: str) -> dict:
    """``{name: value}`` of a cell of literal assignments (``a = 1``, ``a, b = 1, 2``)."""
    values = {}
    for statement in ast.parse(source).body:
        if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
            raise ParameterError(f"{what}: line {statement.lineno} is not a plain assignment")
        target = statement.targets[0]
        try:
            value = ast.literal_eval(statement.value)
        except ValueError:
            raise ParameterError(f"{what}: line {statement.lineno} does not assign a literal value") from None
        if isinstance(target, ast.Name):
            values[target.id] = value
        elif isinstance(target, ast.Tuple) and all(isinstance(t, ast.Name) for t in target.elts):
            if not isinstance(value, tuple) or len(value) != len(target.elts):
                raise ParameterError(f"{what}: line {statement.lineno} unpacks a value of another length")
            values.update({t.id: v for t, v in zip(target.elts, value, strict=True)})
        else:
            raise ParameterError(f"{what}: line {statement.lineno} assigns to something other than names")
    return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}


def declared(notebook) -> dict:
    """The paper defaults: the cell tagged ``parameters``."""
    cell = tagged_cell(notebook, PARAMETERS_TAG)
    if cell is None:
        raise ParameterError(f"no cell is tagged {PARAMETERS_TAG!r}")
    return assignments(cell.source, "the parameters cell")


def smoke(notebook, defaults: dict) -> dict:
    """The smoke values: the cell tagged ``smoke-parameters`` (empty without one); each must be a parameter."""
    cell = tagged_cell(notebook, SMOKE_TAG)
    if cell is None:
        return {}
    values = assignments(cell.source, "the smoke-parameters cell")
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ParameterError(f"the smoke-parameters cell sets {', '.join(unknown)}, which are not parameters")
    return values


def parse(pairs: list[str]) -> dict:
    """``["steps=10", 'hvp="exact"']`` → ``{"steps": 10, "hvp": "exact"}``: every value is JSON."""
    parsed = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ParameterError(f"parameter {pair!r} must look like name=value")
        try:
            parsed[name] = json.loads(raw)
        except json.JSONDecodeError:
            raise ParameterError(
                f"parameter {name}: {raw!r} is not JSON; a number, true/false, a list such as [0.1, 0.2], "
                f"or a quoted string: -p {name}='\"{raw}\"'"
            ) from None
    return parsed


def _same_type(default, value) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def check(defaults: dict, values: dict, notebook: str) -> None:
    """Every value names a parameter and has its default's type (an int may stand for a float)."""
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ParameterError(
            f"{notebook} has no parameter {', '.join(map(repr, unknown))}; its parameters are: {', '.join(defaults)}"
        )
    for name, value in values.items():
        if not _same_type(defaults[name], value):
            raise ParameterError(
                f"parameter {name} of {notebook}: {json.dumps(value)} is a {type(value).__name__}, "
                f"the default {defaults[name]!r} a {type(defaults[name]).__name__}"
            )


def resolve(defaults: dict, smoke_values: dict, user: dict, *, use_smoke: bool) -> tuple[dict, str]:
    """``(parameters, mode)``: defaults < smoke values (with ``use_smoke``) < user values; the mode is
    ``"custom"`` with user values, else ``"smoke"`` or ``"paper"``."""
    parameters = {**defaults, **(smoke_values if use_smoke else {}), **user}
    mode = "custom" if user else ("smoke" if use_smoke else "paper")
    return parameters, mode
