"""The built book, read the way a reader reads it: every page of the table of contents in headless Chromium.

The book is built from the smoke execution of the notebooks with warnings as errors,
served from a local HTTP server, and each page is checked for:

* typeset mathematics (every Sphinx math element holds MathJax output, and no TeX
  delimiters or commands are left in the visible text);
* images that loaded (``complete`` and ``naturalWidth > 0``);
* no console errors, page errors, failed requests or HTTP errors;
* no request to anything but the local server: a page that needs a CDN fails here,
  which is what makes the site readable offline;

and for what a reader sees, at a desktop (1280 px) and a phone (400 px) window width:

* on every figure page a ``<table>`` holding the claim checks, above the first figure, and that
  figure's top on the first screen (desktop) of the page as it opens (code folded);
* no paragraph anywhere that starts with ``|`` and holds a rule row (a Markdown table printed as
  text; a norm such as ``|∇E|`` at the start of a line is not one);
* no horizontal overflow: no code box that scrolls or clips sideways, no image past the
  article's edge, no page wider than the window;
* every image at least as many pixels wide as it is shown;

and a screenshot of the first screen of every page at both widths is saved under
``<build>/screenshots/`` (the status page of the next book build links them).

Chromium is Debian's (``scripts/install-chromium.sh`` installs it); Playwright drives
it through its own bundled driver, without downloading a browser.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import threading
from collections import Counter
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
INERT_SCHEMES = {"data", "blob", "about"}

pytestmark = pytest.mark.book


def toc_pages(toc: Path = ROOT / "_toc.yml") -> list[str]:
    """Every document of the table of contents (without suffix), in reading order."""
    data = yaml.safe_load(toc.read_text())
    pages = [data["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))

    for part in data.get("parts", []):
        walk(part.get("chapters"))
    walk(data.get("chapters"))
    return [str(Path(page).with_suffix("")) if Path(page).suffix in {".md", ".ipynb"} else page for page in pages]


PAGES = toc_pages()


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(smoke_build: Path) -> Path:
    """Build the book from the smoke build; any Sphinx warning fails the build."""
    from gdflows_book.book import build_book

    html = build_book(root=ROOT, build=smoke_build, strict=True)
    assert (html / "index.html").exists(), f"no index.html in {html}"
    return html


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def server(site: Path):
    """Serve the built site on an ephemeral localhost port for the module's tests."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; install it with scripts/install-chromium.sh (Debian's chromium package).")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


# --- what a page must satisfy -----------------------------------------------------------

# Waits for MathJax (loaded with `defer`) to finish typesetting, and for every image,
# including lazily loaded ones, to load or fail.
_SETTLE = """
async () => {
  if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
    await window.MathJax.startup.promise;
  }
  const images = Array.from(document.images);
  images.forEach((img) => { img.loading = "eager"; });
  await Promise.all(images.map((img) => img.complete ? null :
    new Promise((done) => { img.addEventListener("load", done); img.addEventListener("error", done);
                            setTimeout(done, 15000); })));
  return true;
}
"""

_INSPECT = """
() => {
  const math = Array.from(document.querySelectorAll("span.math, div.math"));
  const untypeset = math.filter((el) => !el.querySelector("mjx-container")).map((el) => el.textContent.slice(0, 80));
  const images = Array.from(document.images).map((img) => ({
    src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth }));
  const skip = "pre, code, script, style, textarea, mjx-container, .highlight";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const visible = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip)) continue;
    if (parent.checkVisibility && !parent.checkVisibility()) continue;
    if (node.textContent.trim()) visible.push(node.textContent);
  }
  return { mathCount: math.length, mjxCount: document.querySelectorAll("mjx-container").length,
           untypeset, images, text: visible.join(" "), mathjax: !!(window.MathJax && window.MathJax.version) };
}
"""

# Leftover TeX in visible text: delimiters, environments and common commands.
RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\end\{|"
    r"\\(?:frac|tfrac|theta|nabla|lambda|sum|log|mathbb|operatorname|left|right|cdot|infty)\b|"
    r"\$[^$\s][^$]*[\\^_][^$]*\$"
)


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in INERT_SCHEMES or parts.scheme == "file":
        return True
    return parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname in LOCAL_HOSTS


def _is_favicon_probe(url: str) -> bool:
    return urlsplit(url).path == "/favicon.ico"


# What a reader sees: tables, raw Markdown tables, sideways overflow, image sizes and positions.
_LAYOUT = r"""
() => {
  const article = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const edge = article.getBoundingClientRect().right;
  const shown = (el) => !el.checkVisibility || el.checkVisibility();
  const top = (el) => el.getBoundingClientRect().top + window.scrollY;
  const scrolling = Array.from(document.querySelectorAll("pre")).filter(shown)
    .filter((el) => el.scrollWidth > el.clientWidth + 1).map((el) => el.textContent.trim().slice(0, 60));
  const images = Array.from(article.querySelectorAll("img")).filter(shown).map((img) => {
    const box = img.getBoundingClientRect();
    return { src: img.getAttribute("src"), natural: img.naturalWidth, width: box.width, right: box.right,
             top: top(img) };
  }).filter((img) => img.width > 0);
  const tables = Array.from(article.querySelectorAll("table")).filter(shown).map((table) => ({
    head: Array.from(table.querySelectorAll("th")).map((th) => th.textContent.trim().toLowerCase()),
    top: top(table) }));
  // a Markdown table left as text: a paragraph that starts with a bar and holds a rule row (|---| or |—|)
  const bars = Array.from(document.querySelectorAll("p")).map((p) => p.textContent.trim())
    .filter((text) => text.startsWith("|") && /\|\s*:?[-—–]+:?\s*\|/.test(text)).map((text) => text.slice(0, 80));
  return { scrolling, images, tables, bars, edge, pageWidth: document.documentElement.scrollWidth,
           viewWidth: window.innerWidth, viewHeight: window.innerHeight };
}
"""

#: Window sizes a reader uses: a desktop and a phone (the height is the first screen, the "fold").
WINDOWS = {"desktop": (1280, 900), "phone": (400, 860)}


def _wait_until_quiet(page, in_flight: Counter) -> None:
    """Wait for the page's network to fall quiet ("networkidle"). On book/api, the largest page, Playwright's
    "networkidle" sometimes never came although every request the page made had finished (1 visit in 5 to 8 on
    2026-12-01, with nothing in flight), so a timeout passes when nothing is in flight and fails, naming the
    requests, when something is."""
    try:
        page.wait_for_load_state("networkidle", timeout=30_000)
    except Exception as error:  # playwright's TimeoutError (the module is imported only where a browser is)
        if type(error).__name__ != "TimeoutError":
            raise
        pending = sorted(url for url, count in in_flight.items() if count > 0)
        assert not pending, f"requests still in flight after 30 s: {pending[:5]}"


def _visit(
    browser, url: str, *, window: tuple[int, int] = (1200, 1600), screenshot: Path | None = None, interact=None
) -> dict:
    """Open ``url`` in a fresh context of the ``window`` size; return what the page showed and every
    problem seen (and save the first screen to ``screenshot``, as the page opens). ``interact(page)``, if given,
    acts on the settled page like a reader and returns a dict of what it saw, kept under ``"interaction"``;
    problems it causes (console errors) are collected with the rest."""
    width, height = window
    context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
    page = context.new_page()
    problems: list[str] = []
    remote: list[str] = []

    in_flight: Counter = Counter()  # the page's requests that have neither finished nor failed, by URL

    def on_request(request):
        in_flight.update([request.url])
        if not _is_local(request.url):
            remote.append(request.url)

    page.on("request", on_request)
    page.on("requestfinished", lambda request: in_flight.subtract([request.url]))
    page.on("requestfailed", lambda request: in_flight.subtract([request.url]))

    def on_console(message):
        # The browser probes /favicon.ico by itself when a page declares no icon; that probe
        # is not something the page asked for, and a missing icon hides nothing from a reader.
        if message.type == "error" and not _is_favicon_probe(message.location.get("url", "")):
            problems.append(f"console error: {message.text} ({message.location.get('url')})")

    def on_response(response):
        if response.status >= 400 and not _is_favicon_probe(response.url):
            problems.append(f"HTTP {response.status}: {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url} ({req.failure})"))
    page.on("response", on_response)
    try:
        response = page.goto(url, wait_until="load", timeout=60_000)
        assert response is not None and response.ok, f"{url} answered {response.status if response else None}"
        page.evaluate(_SETTLE)
        _wait_until_quiet(page, in_flight)
        seen = page.evaluate(_INSPECT) | {"layout": page.evaluate(_LAYOUT)}
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
        if interact is not None:
            seen["interaction"] = interact(page)
    finally:
        context.close()
    seen["problems"] = problems
    seen["remote"] = remote
    return seen


# --- tests ------------------------------------------------------------------------------


def test_toc_lists_the_prose_and_the_figures():
    assert PAGES[0] == "book/intro"
    assert {"book/theory", "book/references"} <= set(PAGES)
    assert any(page.startswith("build/notebooks/") for page in PAGES)


def test_mathjax_is_served_from_the_site(site: Path):
    """MathJax is a local file of the site, and no built page links a script or stylesheet on the web."""
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax was not copied into _static/mathjax"
    remote_asset = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["'](?:https?:)?//[^"']*""", re.I)
    for page in PAGES:
        html = (site / f"{page}.html").read_text(encoding="utf-8")
        assert "_static/mathjax/tex-chtml.js" in html, f"{page}.html does not load the local MathJax"
        found = [match.group(0) for match in remote_asset.finditer(html)]
        assert not found, f"{page}.html loads assets from the web: {found}"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline(page: str, site: Path, server: str, browser):
    seen = _visit(browser, f"{server}/{page}.html")

    assert not seen["remote"], f"{page}: requests left the local server: {seen['remote']}"
    assert not seen["problems"], f"{page}: " + "; ".join(seen["problems"])

    if seen["mathCount"]:
        assert seen["mathjax"], f"{page}: has {seen['mathCount']} math elements but MathJax did not load"
        assert not seen["untypeset"], f"{page}: math left untypeset: {seen['untypeset'][:5]}"
        assert seen["mjxCount"] >= seen["mathCount"], (
            f"{page}: {seen['mathCount']} math elements but {seen['mjxCount']} MathJax outputs"
        )
    leftover = RAW_TEX.findall(seen["text"])
    assert not leftover, f"{page}: raw TeX in the visible text: {leftover[:5]}"

    broken = [img["src"] for img in seen["images"] if not (img["complete"] and img["width"] > 0)]
    assert not broken, f"{page}: images that did not load: {broken}"
    if page.startswith("build/notebooks/"):
        assert seen["images"], f"{page}: a figure notebook page without any image"


def _is_checks_table(table: dict) -> bool:
    return {"claim", "measured", "required"} <= set(table["head"])


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("page", PAGES)
def test_page_reads_like_a_paper(page: str, window: str, site: Path, server: str, browser, smoke_build: Path):
    """What a reader sees at a desktop and a phone width; the first screen is saved under
    ``<build>/screenshots/<page>-<width>.png``."""
    width, height = WINDOWS[window]
    shot = smoke_build / "screenshots" / f"{Path(page).name}-{width}.png"
    layout = _visit(browser, f"{server}/{page}.html", window=WINDOWS[window], screenshot=shot)["layout"]
    assert shot.is_file(), f"{page}: no screenshot at {shot}"

    assert not layout["bars"], f"{page}: Markdown tables printed as text (paragraphs starting with |): {layout['bars']}"
    assert not layout["scrolling"], f"{page} at {width} px: code boxes wider than the column: {layout['scrolling']}"
    assert layout["pageWidth"] <= layout["viewWidth"], (
        f"{page} at {width} px: the page is {layout['pageWidth']} px wide, wider than the window"
    )
    for img in layout["images"]:
        assert img["right"] <= layout["edge"] + 1, f"{page} at {width} px: {img['src']} runs past the column"
        assert img["natural"] >= img["width"] - 0.5, (
            f"{page} at {width} px: {img['src']} is {img['natural']} px wide, shown {img['width']:.0f} px"
        )
    if page.startswith("build/notebooks/"):
        checks = [table for table in layout["tables"] if _is_checks_table(table)]
        assert checks, f"{page}: no table of claim checks (tables seen: {[t['head'] for t in layout['tables']]})"
        assert layout["images"], f"{page}: no figure shown"
        figure = layout["images"][0]
        assert checks[0]["top"] < figure["top"], f"{page}: the checks come after the figure"
        if window == "desktop":
            assert figure["top"] < height, (
                f"{page}: the figure starts {figure['top']:.0f} px down, below the first screen ({height} px)"
            )


def _public_names(module) -> list[str]:
    """A module's ``__all__``, or else the functions and classes it defines under a public name."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    ]


def test_api_page_documents_every_public_name(site: Path):
    """book/api.md documents every name of ``gdflows.__all__`` and of each public submodule (a
    re-exported name once, at the top level), and every public submodule has its section."""
    import gdflows

    html = (site / "book" / "api.html").read_text(encoding="utf-8")
    documented = set(re.findall(r'<dt class="sig sig-object py" id="([^"]+)"', html))
    missing = [f"gdflows.{name}" for name in gdflows.__all__ if f"gdflows.{name}" not in documented]
    submodules = [info.name for info in pkgutil.iter_modules(gdflows.__path__) if not info.name.startswith("_")]
    assert {"flows", "spectral", "optim", "data", "models", "problems", "errors", "analysis"} <= set(submodules)
    top = {id(getattr(gdflows, name)) for name in gdflows.__all__}
    for sub in submodules:
        module = importlib.import_module(f"gdflows.{sub}")
        assert f'id="module-gdflows.{sub}"' in html, f"api.html has no section for gdflows.{sub}"
        missing += [
            f"gdflows.{sub}.{name}"
            for name in _public_names(module)
            if id(getattr(module, name)) not in top and f"gdflows.{sub}.{name}" not in documented
        ]
    assert not missing, f"public names missing from the API page: {missing}"


# --- the pieces the pages are made of (no browser needed) ----------------------------------


def test_checks_table_is_html_and_marks_a_failed_row(tmp_path: Path):
    """The checks render as an HTML table (a table whatever myst-nb does with Markdown), a failed row carries
    ``check-failed`` and the caption says how many failed; cell text is escaped."""
    from gdflows_book.checks import Check, Checks

    checks = Checks("F0", tmp_path)
    checks.rows = [Check("a < b | c", "1e-3", "≤ 1", True), Check("bound", "2", "≤ 1", False)]
    table = checks.html()
    assert table.startswith('<table class="gdflows-checks has-failed">')
    assert "<caption>Checks of F0: 1 of 2 checks failed</caption>" in table
    assert table.count('<tr class="check-passed">') == 1 and table.count('<tr class="check-failed">') == 1
    assert "<td>a &lt; b | c</td>" in table
    checks.rows = checks.rows[:1]
    assert checks.verdict() == "all 1 checks passed" and "has-failed" not in checks.html()


def test_checks_show_writes_the_rows_and_returns_the_table(tmp_path: Path):
    from gdflows_book.checks import Checks

    checks = Checks("F0", tmp_path)
    checks.at_most("error", 1e-9, 1e-8)
    shown = checks.show()
    assert shown.data == checks.html() and checks.glue_name == "F0-checks"
    assert (tmp_path / "checks" / "F0.json").is_file()


def test_figure_size_fills_the_column_with_at_most_two_panels_per_row():
    from gdflows_book.figures import COLUMN_WIDTH, figure_size, panels, use_style

    assert figure_size(2, 3, aspect=0.5) == (COLUMN_WIDTH, 3 * COLUMN_WIDTH / 2 * 0.5)
    with pytest.raises(ValueError, match="columns=2, rows=2"):
        figure_size(3)
    use_style()
    fig, axes = panels(3)
    assert len(axes) == 3 and len(fig.axes) == 3  # the fourth cell of the 2 x 2 grid is removed
    assert tuple(fig.get_size_inches()) == figure_size(2, 2)


def test_status_page_links_the_screenshots(tmp_path: Path):
    from gdflows_book import status

    page = status.write(ROOT, tmp_path).read_text()
    assert "## Screenshots" in page and "None in this build yet" in page
    (tmp_path / "screenshots").mkdir()
    (tmp_path / "screenshots" / "F1_oscillation-400.png").write_bytes(b"")
    page = status.write(ROOT, tmp_path).read_text()
    assert "{download}`F1_oscillation-400.png <screenshots/F1_oscillation-400.png>`" in page


def test_ledger_page_shows_every_claim_and_check_of_the_build_as_written(site: Path, server: str, browser, smoke_build):
    """The ledger as a reader sees it: every published claim with its verdict and every check of every notebook,
    their text unmangled by Markdown (underscores, dollars, bars), and no notebook missing."""
    import json

    from gdflows_book.layout import available

    rows = json.loads((smoke_build / "ledger.json").read_text())
    assert {row["name"] for row in rows} == set(available(ROOT))
    assert all(row["state"] == "ok" for row in rows), [(r["name"], r["state"]) for r in rows if r["state"] != "ok"]
    text = " ".join(_visit(browser, f"{server}/build/ledger.html")["text"].split())
    text = text.translate(str.maketrans("‘’“”", "''\"\""))  # Sphinx's smart quotes, the only rewrite allowed
    claims = [claim for row in rows for claim in row["paper_claims"]]
    checks = [check for row in rows for check in row["checks"]]
    assert claims and checks
    for item in claims + checks:
        assert " ".join(item["claim"].split()) in text, f"the ledger does not show {item['claim']!r} as written"
    for claim in claims:
        assert f"{' '.join(claim['source'].split())} {claim['verdict']}" in text
    assert f"Our checks: {len(checks)}, {len(checks)} passed" in text
    verdicts = {claim["verdict"] for claim in claims}
    assert {"reproduced", "reproduced in part", "not testable here"} <= verdicts


_EXPLORER_PATHS = "els => els.map(e => e.closest('svg').getAttribute('aria-label') + ':' + e.getAttribute('d'))"


def _move_the_explorer_slider(page) -> dict:
    """Read the explorer's panels, press End on its slider as a keyboard user would, read them again."""
    explorer = page.locator(".gdflows-explorer")
    before = page.eval_on_selector_all(".gdflows-explorer path[data-flow]", _EXPLORER_PATHS)
    readout = explorer.locator("output").text_content()
    slider = explorer.locator("input[type=range]")
    slider.focus()
    slider.press("End")
    return {
        "panels": explorer.locator("svg.explorer-panel").count(),
        "dots": explorer.locator("circle[data-flow=GD]").count(),
        "before": before,
        "after": page.eval_on_selector_all(".gdflows-explorer path[data-flow]", _EXPLORER_PATHS),
        "readouts": (readout, explorer.locator("output").text_content()),
        "last": slider.get_attribute("max"),
        "value": slider.input_value(),
    }


def test_explorer_slider_redraws_every_panel_without_errors(site: Path, server: str, browser):
    """The learning-rate explorer works offline in the browser: moving its slider redraws all three panels at the
    new h λ and logs no error."""
    url = f"{server}/build/notebooks/E1_learning_rate_explorer.html"
    seen = _visit(browser, url, interact=_move_the_explorer_slider)
    assert not seen["problems"] and not seen["remote"], seen["problems"] + seen["remote"]
    moved = seen["interaction"]
    assert moved["panels"] == 3 and moved["dots"] > 0
    assert moved["value"] == moved["last"], "End did not move the slider to its last learning rate"
    assert moved["readouts"][0] != moved["readouts"][1], f"the h λ readout did not change: {moved['readouts']}"
    assert len(moved["before"]) == len(moved["after"]) == 9  # three flows in each of three panels
    assert all(path.split(":", 1)[1] for path in moved["after"]), "a flow drew no line"
    changed = {a.split(":")[0] for a, b in zip(moved["before"], moved["after"], strict=True) if a != b}
    assert len(changed) == 3, f"only these panels were redrawn: {changed}"
