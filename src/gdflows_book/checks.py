"""Claim checks: each figure's claim as a measured number, an assertion and a table row.

A notebook builds a :class:`Checks` (its figure tag and the build tree), calls :meth:`Checks.at_most` and friends (each
records the measured value and asserts it, with a message that prints the number), then
:meth:`Checks.show` displays the table and writes it to ``<build>/checks/<name>.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Check:
    claim: str
    measured: str
    requirement: str
    passed: bool


@dataclass
class Checks:
    """The list of asserted claims of one figure."""

    figure: str
    build_dir: str | Path
    rows: list[Check] = field(default_factory=list)

    def that(self, claim: str, passed: bool, *, measured: str, requirement: str) -> None:
        """Record a claim and assert it; the message gives the measured value."""
        self.rows.append(Check(claim, measured, requirement, bool(passed)))
        assert passed, f"{self.figure}: {claim}: measured {measured}, required {requirement}"

    def at_most(self, claim: str, value: float, bound: float) -> None:
        """Assert ``value <= bound`` (a NaN fails)."""
        value = float(value)
        self.that(claim, value <= bound, measured=f"{value:.3g}", requirement=f"≤ {bound:.3g}")

    def at_least(self, claim: str, value: float, bound: float) -> None:
        """Assert ``value >= bound`` (a NaN fails)."""
        value = float(value)
        self.that(claim, value >= bound, measured=f"{value:.3g}", requirement=f"≥ {bound:.3g}")

    def close(self, claim: str, value: float, target: float, *, rtol: float) -> None:
        """Assert ``|value - target| <= rtol |target|``."""
        value = float(value)
        ok = math.isfinite(value) and abs(value - target) <= rtol * abs(target)
        self.that(claim, ok, measured=f"{value:.6g}", requirement=f"{target:.6g} ± {rtol:.0e} rel.")

    def markdown(self) -> str:
        """The checks as a Markdown table."""
        lines = ["| claim | measured | required | |", "|---|---|---|---|"]
        cell = lambda text: str(text).replace("|", "\\|")  # a literal bar must not end the cell
        lines += [
            f"| {cell(c.claim)} | {cell(c.measured)} | {cell(c.requirement)} | {'✓' if c.passed else '✗'} |"
            for c in self.rows
        ]
        return "\n".join(lines)

    def show(self):
        """Write ``<build_dir>/checks/<figure>.json`` and return the table for display."""
        from IPython.display import Markdown

        folder = Path(self.build_dir) / "checks"
        folder.mkdir(parents=True, exist_ok=True)
        rows = [asdict(c) for c in self.rows]
        (folder / f"{self.figure}.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False))
        return Markdown(self.markdown())
