"""Claim checks: each figure's claim as a measured number, an assertion and a table row.

A notebook builds a :class:`Checks` (its figure tag and the build tree), calls :meth:`Checks.at_most` and friends (each
records the measured value and asserts it, with a message that prints the number), states with
:meth:`Checks.paper_claim` which published claims the figure tests and the verdict its measurements give, then
:meth:`Checks.show` displays the table and writes both to ``<build>/checks/<name>.json``, from which the book's claims
ledger (:mod:`gdflows_book.ledger`) is built.

The table is HTML, not Markdown: it renders as a table in Jupyter and in the book alike (whatever the renderer does
with ``text/markdown``), and each row carries the class ``check-passed`` or ``check-failed`` for the book's style
sheet. :meth:`Checks.show` also glues it (myst-nb) as ``<figure>-checks``, so the page can show the verdict at its top.
"""

from __future__ import annotations

import html
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


#: The verdicts a figure can give on a published claim.
VERDICTS = ("reproduced", "reproduced in part", "not reproduced", "not testable here")


@dataclass
class PaperClaim:
    claim: str  # the claim's substance, in our words
    source: str  # the paper (and section where known)
    verdict: str  # one of VERDICTS
    note: str  # what the verdict rests on, in words
    evidence: str  # the checks it rests on, with their measured values and requirements


@dataclass
class Checks:
    """The list of asserted claims of one figure."""

    figure: str
    build_dir: str | Path
    rows: list[Check] = field(default_factory=list)
    paper_claims: list[PaperClaim] = field(default_factory=list)

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

    def paper_claim(
        self, claim: str, *, source: str, verdict: str, rests_on: str | tuple[str, ...] = (), note: str = ""
    ) -> None:
        """State a published claim this figure tests and the verdict its checks give on it.

        ``rests_on``: text found in the claims of the checks recorded so far that decide the verdict; their measured
        values become the claim's evidence, so the ledger quotes the numbers the figure asserted. Every verdict but
        ``"not testable here"`` needs at least one such check. The verdict stands only while every check of the
        figure passes: a failing check stops the notebook, and the ledger then shows the claim as failed in the last
        build, never an older verdict. ``note``: what the verdict rests on in words (e.g. where the claim stops).
        """
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
        if not source.strip():
            raise ValueError("source must name the paper (and section where known) the claim comes from")
        keys = (rests_on,) if isinstance(rests_on, str) else tuple(rests_on)
        evidence = [c for c in self.rows if any(key in c.claim for key in keys)]
        if verdict != "not testable here" and not evidence:
            raise ValueError(
                f"{self.figure}: the verdict {verdict!r} on {claim!r} rests on no check: pass rests_on= with text "
                f"from the claims of the checks that decide it, after recording them (given: {keys})"
            )
        measured = "; ".join(f"{c.claim}: {c.measured} (required {c.requirement})" for c in evidence)
        self.paper_claims.append(PaperClaim(claim, source, verdict, note, measured))

    @property
    def glue_name(self) -> str:
        """The myst-nb glue key of the table: ``F1-checks`` (a page shows it with ``{glue} F1-checks``)."""
        return f"{self.figure}-checks"

    def verdict(self) -> str:
        """``"all 4 checks passed"`` or ``"1 of 4 checks failed"``."""
        failed = sum(not c.passed for c in self.rows)
        total = len(self.rows)
        return f"{failed} of {total} checks failed" if failed else f"all {total} checks passed"

    def html(self) -> str:
        """The checks as an HTML table (class ``gdflows-checks``; rows ``check-passed``/``check-failed``)."""
        failed = any(not c.passed for c in self.rows)
        head = "".join(f"<th>{name}</th>" for name in ("claim", "measured", "required", "verdict"))
        body = "".join(
            f'<tr class="check-{"passed" if c.passed else "failed"}"><td>{html.escape(c.claim)}</td>'
            f"<td>{html.escape(c.measured)}</td><td>{html.escape(c.requirement)}</td>"
            f"<td>{'✓ passed' if c.passed else '✗ failed'}</td></tr>"
            for c in self.rows
        )
        return (
            f'<table class="gdflows-checks{" has-failed" if failed else ""}">'
            f"<caption>Checks of {html.escape(self.figure)}: {self.verdict()}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def show(self):
        """Write ``<build_dir>/checks/<figure>.json`` (``{"figure", "checks", "paper_claims"}``), glue the table as
        :attr:`glue_name` (not displayed there) and return it for display."""
        from IPython.display import HTML
        from myst_nb import glue

        folder = Path(self.build_dir) / "checks"
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            "figure": self.figure,
            "checks": [asdict(c) for c in self.rows],
            "paper_claims": [asdict(c) for c in self.paper_claims],
        }
        (folder / f"{self.figure}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False))
        table = HTML(self.html())
        glue(self.glue_name, table, display=False)
        return table
