"""Keep the built book readable without a network (a local Sphinx extension of this book).

Two things in Jupyter Book 1's defaults get in the way of an offline, error-free site:

* Sphinx adds MathJax only to pages whose body contains mathematics, but a page title
  with mathematics is also shown in the navigation sidebar of *every* page. On a page
  without MathJax that title would show raw TeX. The assets policy ``"always"`` makes
  Sphinx load (the local copy of) MathJax on every page.
* sphinx-thebe, which Jupyter Book always loads, writes a script that points at a CDN
  (unpkg) into every page, and with Sphinx 7 it can write that script twice, which
  browsers report as a page error ("THEBE_JS_URL has already been declared"). The book
  has no live-code buttons, so its script-adding handler is disconnected here.
"""

from __future__ import annotations


def _disconnect_thebe_scripts(app) -> None:
    for listeners in app.events.listeners.values():
        for listener in list(listeners):
            handler = listener.handler
            if getattr(handler, "__module__", "").startswith("sphinx_thebe") and handler.__name__ == "init_thebe_core":
                app.disconnect(listener.id)


def setup(app):
    app.set_html_assets_policy("always")
    _disconnect_thebe_scripts(app)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
