"""The book's reading style sheet (``book/_static/gdflows.css``) on every page: claim-check tables with a failed row
in red, code wrapped at the column's edge, wide tables scrolling in their own box."""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "_static"


def _add_static_path(app, config) -> None:
    config.html_static_path = [*config.html_static_path, str(STATIC)]


def setup(app):
    app.connect("config-inited", _add_static_path)
    app.add_css_file("gdflows.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
