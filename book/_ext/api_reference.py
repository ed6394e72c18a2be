"""The API reference page, generated from the docstrings (a local Sphinx extension of this book).

``book/api.md`` runs ``automodule`` with ``:members:`` on :mod:`gdflows` (the names of its
``__all__``) and on each public submodule, so the page follows the code. Three rules keep it
readable:

* Every object is documented once. A submodule's member that is also a top-level name of
  ``gdflows.__all__`` (``gdflows.flows.principal_flow`` is ``gdflows.principal_flow``) is
  described at the top level; the submodule's section lists it with a link.
* The fields of a result ``NamedTuple`` carry their meaning in a comment on their line in the
  source (``times: np.ndarray  # (N+1,) t_n = n h``); that comment becomes the field's
  description instead of Python's "Alias for field number 0". A field without such a comment is
  left to the class docstring (e.g. :class:`gdflows.Flow`'s ``Attributes`` section).
"""

from __future__ import annotations

import ast
import collections
import importlib
import inspect
import re
import textwrap
from functools import cache

TOP = "gdflows"
_TUPLEGETTER = type(collections.namedtuple("_Probe", "x").x)


def _top_level() -> dict[int, str]:
    """``{id(object): name}`` for every name of ``gdflows.__all__``."""
    top = importlib.import_module(TOP)
    return {id(getattr(top, name)): name for name in top.__all__}


def _resolve(dotted: str):
    """The object named ``dotted`` (``gdflows.GDRun``): the longest importable module, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(dotted)


@cache
def _field_comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` from the trailing comments of a class's annotated fields."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    comments = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = lines[node.end_lineno - 1]
            if "#" in line:
                comments[node.target.id] = line.split("#", 1)[1].strip()
    return comments


def _comment_of(name: str) -> str | None:
    owner, field = name.rsplit(".", 1)
    try:
        cls = _resolve(owner)
    except (ImportError, AttributeError):
        return None
    return _field_comments(cls).get(field) if isinstance(cls, type) else None


def _skip_member(app, what, name, obj, skip, options):
    if skip:
        return None
    documenting = app.env.temp_data.get("autodoc:module")
    if what == "module" and documenting != TOP and id(obj) in _top_level():
        return True  # documented at the top level
    if isinstance(obj, _TUPLEGETTER):
        owner = app.env.temp_data.get("autodoc:class")
        cls = _resolve(f"{documenting}.{owner}") if documenting and owner else None
        if cls is None or name not in _field_comments(cls):
            return True  # no comment: the class docstring describes the field
    return None


def _public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
        ]
    return list(names)


def _process_docstring(app, what, name, obj, options, lines):
    if isinstance(obj, _TUPLEGETTER):
        comment = _comment_of(name)
        if comment:  # plain text: escape what reST would read as markup (|a|, *, `, trailing _)
            lines[:] = [re.sub(r"([\\`*_|])", r"\\\1", comment)]
    elif what == "module" and name != TOP:
        module = importlib.import_module(name)
        top = _top_level()
        shared = [top[id(getattr(module, n))] for n in _public_names(module) if id(getattr(module, n)) in top]
        if shared:
            links = ", ".join(f":obj:`~{TOP}.{n}`" for n in shared)
            lines.extend(["", f"Also here, and documented with the top-level names: {links}."])


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.napoleon")
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-docstring", _process_docstring)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
