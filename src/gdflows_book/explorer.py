"""The learning-rate explorer: GD and the flows precomputed on a grid of learning rates, shown in the browser
with a slider and no kernel.

:func:`sweep` runs GD and the flows of :func:`~gdflows_book.setups.run_lineup` on one problem for every
:math:`h\\lambda` of a grid and keeps one coordinate of each path as plain numbers; :func:`html` turns a list of
sweeps into one self-contained HTML block (inline SVG and JavaScript, nothing loaded from the network) whose
slider redraws every panel at the chosen :math:`h\\lambda`. The data travel inside the page, so the book's
static site needs no server-side code.
"""

from __future__ import annotations

import html as html_lib
import json
import math
from typing import Any

import numpy as np

from gdflows_book.figures import FLOW_STYLE
from gdflows_book.setups import run_lineup

#: The flows the explorer shows beside GD, in drawing order.
FLOWS = ("NGF", "IGR", "PF")
#: Significant digits kept of every plotted number (the page's size grows with them).
DIGITS = 5


def _numbers(values) -> list[float | None]:
    """Plain floats rounded to :data:`DIGITS` significant digits; non-finite values become None (JSON null)."""
    return [float(f"{v:.{DIGITS}g}") if math.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def sweep(
    title: str,
    loss,
    theta0,
    *,
    curvature: float,
    grid,
    steps: int,
    coordinate: int = 0,
    marks: dict[str, float] | None = None,
    **solve_options: Any,
) -> dict:
    """GD and the flows :data:`FLOWS` from ``theta0`` at every learning rate ``h = x / curvature``, x in ``grid``.

    Returns a JSON-ready dict: the title, the curvature λ the grid is scaled by, the grid, horizontal reference lines
    ``marks`` (label: value), and per grid point the paths ``{name: {"n": steps, "y": values}}`` of coordinate
    ``coordinate`` against the step ``n = t/h`` (the flows at their save times), the runs that stopped early
    (GD's divergence, a flow's solver stop) with the step, and the runs themselves under ``"runs"`` (removed by
    :func:`html`; the notebook's checks read them).
    ``solve_options`` go to every :func:`gdflows.solve` (``rtol``, ``atol``, ``saves_per_step``, ``max_steps``).
    """
    if not curvature > 0:
        raise ValueError(f"curvature must be positive (the λ that h λ is measured in), got {curvature}")
    frames, runs = [], []
    for x in grid:
        h = float(x) / curvature
        label = f"{title}, h λ = {x:g}: "
        lineup = run_lineup(loss, theta0, lr=h, steps=steps, names=FLOWS, label=label, **solve_options)
        paths, stops = {}, {}
        for name, run in lineup.runs.items():
            y = np.asarray(run.theta)[:, coordinate]
            paths[name] = {"n": _numbers(np.asarray(run.times) / h), "y": _numbers(y)}
            if run.stopped_at is not None:
                why = "diverged" if name == "GD" else f"stopped ({run.stop_kind})"
                stops[name] = f"{why} at step {run.stopped_at / h:.3g}"
        frames.append({"h": h, "paths": paths, "stops": stops})
        runs.append(lineup.runs)
    return {
        "title": title,
        "curvature": float(curvature),
        "grid": [float(x) for x in grid],
        "steps": int(steps),
        "marks": {k: float(v) for k, v in (marks or {}).items()},
        "frames": frames,
        "runs": runs,
    }


_SCRIPT = """
(function () {
  const root = document.getElementById(ROOT_ID);
  const data = JSON.parse(root.querySelector("script.explorer-data").textContent);
  const style = data.style, W = 320, H = 210, L = 44, R = 8, T = 10, B = 28;
  const slider = root.querySelector("input[type=range]");
  const readout = root.querySelector("output");
  const regime = root.querySelector(".explorer-regime");
  const svgNS = "http://www.w3.org/2000/svg";
  function el(name, attrs, parent) {
    const node = document.createElementNS(svgNS, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function fmt(v) {
    return Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(1) : +v.toPrecision(3);
  }
  function draw(svg, problem, frame, index) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const gd = frame.paths.GD.y.filter(v => v !== null && isFinite(v));
    const marks = Object.values(problem.marks);
    let lo = Math.min(...gd, ...marks), hi = Math.max(...gd, ...marks);
    if (!(hi > lo)) { lo -= 1; hi += 1; }
    const pad = 0.08 * (hi - lo); lo -= pad; hi += pad;
    const sx = n => L + (W - L - R) * n / problem.steps, sy = y => T + (H - T - B) * (hi - y) / (hi - lo);
    const clip = "clip-" + ROOT_ID + "-" + index;
    el("rect", {x: L, y: T, width: W - L - R, height: H - T - B}, el("clipPath", {id: clip}, el("defs", {}, svg)));
    el("rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "none", stroke: "#999"}, svg);
    for (const [label, value] of Object.entries(problem.marks)) {
      el("line", {x1: L, x2: W - R, y1: sy(value), y2: sy(value), stroke: "#bbb", "stroke-dasharray": "3 3"}, svg);
      const text = {x: W - R - 2, y: sy(value) - 3, "text-anchor": "end", "font-size": 9, fill: "#777"};
      el("text", text, svg).textContent = label;
    }
    for (const [n, anchor] of [[0, "start"], [problem.steps / 2, "middle"], [problem.steps, "end"]])
      el("text", {x: sx(n), y: H - B + 12, "text-anchor": anchor, "font-size": 10}, svg).textContent = n;
    const axis = {x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", "font-size": 10};
    el("text", axis, svg).textContent = "step n = t / h";
    for (const y of [lo + pad, hi - pad])
      el("text", {x: L - 3, y: sy(y) + 3, "text-anchor": "end", "font-size": 10}, svg).textContent = fmt(y);
    const group = el("g", {"clip-path": "url(#" + clip + ")"}, svg);
    for (const name of data.flows) {
      const path = frame.paths[name];
      let d = "", pen = false;
      path.n.forEach((n, i) => {
        const y = path.y[i];
        if (y === null || n === null) { pen = false; return; }
        const far = 10 * (hi - lo), shown = Math.max(Math.min(y, hi + far), lo - far);
        d += (pen ? "L" : "M") + sx(n).toFixed(1) + " " + sy(shown).toFixed(1);
        pen = true;
      });
      el("path", {d: d, fill: "none", stroke: style[name].color, "stroke-width": style[name].width,
                  "stroke-dasharray": style[name].dash, "data-flow": name}, group);
    }
    const dots = frame.paths.GD;
    dots.n.forEach((n, i) => {
      const y = dots.y[i];
      if (y !== null && y >= lo && y <= hi)
        el("circle", {cx: sx(n), cy: sy(y), r: 2.2, fill: "black", "data-flow": "GD"}, group);
    });
    const note = Object.entries(frame.stops).map(([name, why]) => name + " " + why).join("; ");
    svg.parentNode.querySelector(".explorer-stops").textContent =
      "h = " + fmt(frame.h) + (note ? " — " + note : "");
  }
  function update() {
    const k = +slider.value, x = data.grid[k];
    readout.textContent = x.toFixed(2);
    regime.textContent = x < 1 ? "h < 1/λ: GD moves monotonically along the top direction"
      : x < 2 ? "1/λ < h < 2/λ: GD oscillates along the top direction and converges"
      : "h > 2/λ: GD oscillates with growing amplitude (on the quartic it can escape)";
    const svgs = root.querySelectorAll("svg.explorer-panel");
    data.problems.forEach((problem, p) => draw(svgs[p], problem, problem.frames[k], p));
  }
  slider.addEventListener("input", update);
  update();
})();
"""


_SWATCH = {"none": "—", "2 3": "···"}  # legend text of solid and dotted lines (others are dashed)


def _style() -> dict:
    """SVG stroke styles of the flows, from the book's matplotlib styles (colour names to hex)."""
    from matplotlib.colors import to_hex

    dashes = {"-": "none", "--": "6 3", ":": "2 3", "-.": "6 3 2 3"}
    return {
        name: {
            "color": to_hex(FLOW_STYLE[name]["color"]),
            "width": FLOW_STYLE[name].get("linewidth", 1.5),
            "dash": dashes.get(FLOW_STYLE[name].get("linestyle"), "none"),
        }
        for name in FLOWS
    }


def html(sweeps: list[dict], *, element_id: str = "lr-explorer", start: float = 1.5) -> str:
    """One HTML block: a slider over the common grid of h λ and one SVG panel per sweep, redrawn on input.

    Every sweep must use the same grid (the slider moves all panels together); ``start`` is the h λ shown first
    (the nearest grid point).
    """
    grid = sweeps[0]["grid"]
    if any(s["grid"] != grid for s in sweeps):
        raise ValueError("every sweep needs the same grid of h λ, so that one slider moves every panel")
    problems = [{k: v for k, v in s.items() if k != "runs"} for s in sweeps]
    payload = json.dumps({"grid": grid, "flows": list(FLOWS), "style": _style(), "problems": problems})
    payload = payload.replace("</", "<\\/")  # no "</script>" inside the data
    first = int(np.argmin(np.abs(np.asarray(grid) - start)))
    legend = " · ".join(
        f'<span style="color:{style["color"]}">{_SWATCH.get(style["dash"], "- -")} {name}</span>'
        for name, style in _style().items()
    )
    panels = "".join(
        f'<figure class="explorer-figure"><figcaption>{html_lib.escape(p["title"])} (λ = {p["curvature"]:g})'
        f'</figcaption><svg class="explorer-panel" viewBox="0 0 320 210" role="img" '
        f'aria-label="{html_lib.escape(p["title"])}"></svg><div class="explorer-stops"></div></figure>'
        for p in problems
    )
    return (
        f'<div class="gdflows-explorer" id="{element_id}">'
        f'<label class="explorer-control">h λ = <output>{grid[first]:.2f}</output> '
        f'<input type="range" min="0" max="{len(grid) - 1}" step="1" value="{first}" '
        f'aria-label="learning rate times curvature"></label>'
        f'<div class="explorer-regime"></div>'
        f'<div class="explorer-legend">● GD · {legend}</div>'
        f'<div class="explorer-panels">{panels}</div>'
        f'<script type="application/json" class="explorer-data">{payload}</script>'
        f"<script>{_SCRIPT.replace('ROOT_ID', json.dumps(element_id))}</script></div>"
    )
