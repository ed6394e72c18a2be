"""The claims ledger: every claim the book tests, with its verdict, read from what the last build wrote.

Each notebook's :class:`~gdflows_book.checks.Checks` writes ``<build>/checks/<figure>.json``: its asserted checks
(our claims, each with the measured value and the requirement) and the published claims it tests, each with the
verdict its checks give. The ledger joins them with the notebook's run record (status, mode, git revision, date,
and whether the sources changed since), so it cannot disagree with the figures: a notebook whose last run failed
leaves no checks file, and the ledger shows its error in place of any verdict.

``<build>/ledger.json`` holds the rows; ``<build>/ledger.md`` is the book's page.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from gdflows_book.checks import VERDICTS
from gdflows_book.layout import available, figure_tag, read_record


def entries(root: Path, build: Path, status_rows: list[dict]) -> list[dict]:
    """One entry per notebook: its figure tag, run (from ``status_rows``, the status page's entries), checks and
    paper claims; ``state`` is ``"ok"``, ``"stale"`` (sources changed since the run), ``"failed"`` or ``"not run"``."""
    runs = {row["name"]: row for row in status_rows}
    rows = []
    for name in available(root):
        run = runs.get(name, {"status": "not run", "current": False})
        found = read_record(build / "checks" / f"{figure_tag(name)}.json") if run["status"] == "ok" else None
        if run["status"] != "ok":
            state = run["status"]
        elif found is None:
            state = "failed"
            run = run | {"error": "the run wrote no checks"}
        else:
            state = "ok" if run["current"] else "stale"
        rows.append(
            {
                "name": name,
                "figure": figure_tag(name),
                "state": state,
                "run": {k: run.get(k) for k in ("status", "mode", "git_revision", "finished_utc", "error")},
                "checks": (found or {}).get("checks", []),
                "paper_claims": (found or {}).get("paper_claims", []),
            }
        )
    return rows


_MARKUP = re.compile(r"([\\`*_\[\]<>$|~{}])")


def _cell(text: str) -> str:
    """Text shown as written inside a Markdown table cell: one line, Markdown's punctuation escaped."""
    return _MARKUP.sub(r"\\\1", " ".join(str(text).split()))


def _link(row: dict, build: Path) -> str:
    if (build / "notebooks" / f"{row['name']}.ipynb").exists():
        return f"{{doc}}`{row['figure']} <notebooks/{row['name']}>`"
    return row["figure"]


def _run(row: dict) -> str:
    run = row["run"]
    if row["state"] == "not run":
        return "not run"
    date = (run.get("finished_utc") or "")[:10]
    said = f"`{run.get('git_revision') or '?'}`, {run.get('mode') or '?'}, {date}"
    return said + (" — **stale**: sources changed since" if row["state"] == "stale" else "")


def page(rows: list[dict], build: Path) -> str:
    """The ledger as a MyST page."""
    claims = [(row, claim) for row in rows for claim in row["paper_claims"]]
    counts = Counter(claim["verdict"] for _, claim in claims)
    checks = [(row, check) for row in rows for check in row["checks"]]
    broken = [row for row in rows if row["state"] not in ("ok", "stale")]
    stale = [row["figure"] for row in rows if row["state"] == "stale"]
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v]) or "none recorded"
    lines = [
        "# Claims ledger",
        "",
        "Every claim this book tests, read from the checks its notebooks wrote in this build (`build/checks/`), "
        "beside the run that measured it: git revision, settings (paper or smoke) and date. A check is asserted "
        "where it is measured, so a notebook whose check fails stops, writes no checks, and appears here as failed "
        "with its error, never with an older verdict.",
        "",
        f"**Published claims:** {len(claims)} ({summary}). "
        f"**Our checks:** {len(checks)}, {sum(c['passed'] for _, c in checks)} passed. "
        f"**Notebooks:** {len(rows)}, "
        + (
            f"{len(broken)} without results ({', '.join(r['figure'] + ': ' + r['state'] for r in broken)})"
            if broken
            else "all ran"
        )
        + (f"; stale (sources changed since their run): {', '.join(stale)}." if stale else "."),
        "",
        "## The papers' claims",
        "",
        "A verdict says what our measurements show about the claim as the paper states it; *reproduced in part* and "
        "*not reproduced* say where it stops holding, with the numbers. The checks behind each verdict are listed "
        "in the next section and on the figure's page.",
        "",
        "| figure | claim | paper | verdict | what was measured | run |",
        "|---|---|---|---|---|---|",
    ]
    for row, claim in claims:
        lines.append(
            f"| {_link(row, build)} | {_cell(claim['claim'])} | {_cell(claim['source'])} | "
            f"{claim['verdict']} | {_cell(' '.join(filter(None, (claim['note'], claim['evidence']))))} | {_run(row)} |"
        )
    for row in broken:
        error = row["run"].get("error") or "no run recorded"
        lines.append(
            f"| {_link(row, build)} | (the claims this notebook states) | | **{row['state']} in the last build** | "
            f"{_cell(error)} | {_run(row)} |"
        )
    lines += [
        "",
        "## Every check",
        "",
        "Our own claims: each check as its notebook asserted it, with the measured value and the requirement.",
        "",
        "| figure | check | measured | required | verdict | run |",
        "|---|---|---|---|---|---|",
    ]
    for row, check in checks:
        verdict = "✓ passed" if check["passed"] else "✗ failed"
        lines.append(
            f"| {_link(row, build)} | {_cell(check['claim'])} | {_cell(check['measured'])} | "
            f"{_cell(check['requirement'])} | {verdict} | {_run(row)} |"
        )
    return "\n".join(lines) + "\n"


def write(root: Path, build: Path, status_rows: list[dict]) -> Path:
    """Write ``ledger.json`` and ``ledger.md`` into ``build``; return the page's path."""
    rows = entries(root, build, status_rows)
    (build / "ledger.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    path = build / "ledger.md"
    path.write_text(page(rows, build))
    return path
