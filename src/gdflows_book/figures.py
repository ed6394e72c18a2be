"""One figure style for the book, and one place where figures are written."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt

#: Colours and line styles keyed by flow name, so every figure speaks the same language.
FLOW_STYLE = {
    "GD": dict(color="black", marker="o", linestyle="none", markersize=4),
    "PF": dict(color="tab:red", linestyle="-", linewidth=1.6),
    "PF (real part)": dict(color="tab:orange", linestyle="-.", linewidth=1.4),
    "NGF": dict(color="tab:blue", linestyle="--", linewidth=1.4),
    "IGR": dict(color="tab:green", linestyle=":", linewidth=1.8),
    "MF3": dict(color="tab:purple", linestyle=(0, (5, 2, 1, 2)), linewidth=1.4),
    "central flow": dict(color="tab:green", linestyle="-", linewidth=1.8),
    "rod flow": dict(color="tab:purple", linestyle="-", linewidth=1.4),
}


def use_style() -> None:
    """Set the book's matplotlib style (deterministic output: no timestamps in PDFs)."""
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "font.size": 10,
            "pdf.fonttype": 42,
        }
    )


def save_figure(fig: plt.Figure, name: str, build_dir: str | Path) -> list[Path]:
    """Write ``fig`` as ``<build_dir>/figures/<name>.png`` and ``.pdf``; return the paths."""
    folder = Path(build_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, bbox_inches="tight", metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    return paths
