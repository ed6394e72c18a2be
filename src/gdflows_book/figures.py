"""One figure style for the book, sized for its text column, and one place where figures are written.

The book's text column is about 7 inches wide at the style's 100 px per inch (≈ 700-800 CSS px on a desktop, about
360 px on a phone). A figure drawn :data:`COLUMN_WIDTH` inches wide is shown at its drawn size on a desktop, so an
``s``-point font is ``s / 72 × 100`` px high there (11 pt → 15 px) and about half that on a phone. Three panels in one
row of that width leave each panel 2.3 inches, too narrow for tick labels and legends: :func:`figure_size` puts at most
two panels in a row.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt

#: Width of the book's text column, in inches: the width of every figure drawn with :func:`figure_size`.
COLUMN_WIDTH = 7.0
#: Panels per row at most; more panels wrap onto further rows.
MAX_PANELS_PER_ROW = 2
#: Resolution of the PNG files (and of the images in the book): 7 in → 1,400 px, at least the column's width on
#: any screen up to a device pixel ratio of about 1.8.
PNG_DPI = 200

#: Colours and line styles keyed by flow name, so every figure speaks the same language.
FLOW_STYLE = {
    "GD": dict(color="black", marker="o", linestyle="none", markersize=4),
    "PF": dict(color="tab:red", linestyle="-", linewidth=1.8),
    "PF (real part)": dict(color="tab:orange", linestyle="-.", linewidth=1.6),
    "NGF": dict(color="tab:blue", linestyle="--", linewidth=1.6),
    "IGR": dict(color="tab:green", linestyle=":", linewidth=2.0),
    "MF3": dict(color="tab:purple", linestyle=(0, (5, 2, 1, 2)), linewidth=1.6),
    "central flow": dict(color="tab:green", linestyle="-", linewidth=2.0),
    "rod flow": dict(color="tab:purple", linestyle="-", linewidth=1.6),
}


def figure_size(columns: int = 1, rows: int = 1, *, aspect: float = 0.7) -> tuple[float, float]:
    """``(width, height)`` in inches of a figure of ``rows × columns`` panels that fills the book's column.

    The width is :data:`COLUMN_WIDTH`; each panel is ``aspect`` times as high as it is wide. A call for more than
    :data:`MAX_PANELS_PER_ROW` columns is refused: pass ``columns=2, rows=⌈n/2⌉`` for ``n`` panels instead.

    Example: ``fig, axes = plt.subplots(2, 2, figsize=figure_size(2, 2))``.
    """
    if not 1 <= columns <= MAX_PANELS_PER_ROW:
        raise ValueError(
            f"figure_size(columns={columns}): at most {MAX_PANELS_PER_ROW} panels per row fit the book's column "
            f"legibly; use columns={MAX_PANELS_PER_ROW}, rows={math.ceil(columns * rows / MAX_PANELS_PER_ROW)}"
        )
    if rows < 1 or aspect <= 0:
        raise ValueError(f"figure_size: rows (got {rows}) must be ≥ 1 and aspect (got {aspect}) > 0")
    panel = COLUMN_WIDTH / columns
    return COLUMN_WIDTH, round(rows * panel * aspect, 3)


def use_style() -> None:
    """Set the book's matplotlib style for figures :func:`figure_size` wide (deterministic PDFs: no timestamps)."""
    mpl.rcParams.update(
        {
            "figure.figsize": figure_size(1),
            "figure.dpi": 100,
            "savefig.dpi": PNG_DPI,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "font.size": 11,
            "axes.titlesize": 11,
            "axes.labelsize": 11,
            "xtick.labelsize": 10,
            "ytick.labelsize": 10,
            "legend.fontsize": 9.5,
            "lines.linewidth": 1.8,
            "lines.markersize": 5,
            "pdf.fonttype": 42,
        }
    )


def save_figure(fig: plt.Figure, name: str, build_dir: str | Path) -> list[Path]:
    """Write ``fig`` as ``<build_dir>/figures/<name>.png`` and ``.pdf``, glue the PNG (myst-nb) as ``name`` for the
    page's ``{glue:figure}`` directive (not displayed where this is called), and return the paths."""
    from IPython.display import Image
    from myst_nb import glue

    folder = Path(build_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, bbox_inches="tight", metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    glue(name, Image(filename=str(paths[0])), display=False)
    return paths


def panels(count: int, *, aspect: float = 0.7, **subplot_kw):
    """``(fig, axes)``: ``count`` panels, at most :data:`MAX_PANELS_PER_ROW` per row, filling the book's column.

    ``axes`` is a flat array of the ``count`` axes in reading order (an unused last cell of the grid is removed), so
    ``fig, (left, middle, right) = panels(3)`` replaces ``plt.subplots(1, 3, ...)``. ``subplot_kw`` goes to
    :func:`matplotlib.pyplot.subplots` (``sharex``, ``subplot_kw``, ...).
    """
    columns = min(count, MAX_PANELS_PER_ROW)
    rows = math.ceil(count / columns)
    fig, grid = plt.subplots(
        rows, columns, figsize=figure_size(columns, rows, aspect=aspect), squeeze=False, **subplot_kw
    )
    axes = grid.ravel()
    for extra in axes[count:]:
        extra.remove()
    return fig, axes[:count]
