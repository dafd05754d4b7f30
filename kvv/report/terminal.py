"""The terminal report: a compact table, the verdict, where the files are, why things failed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from tabulate import tabulate

from ..verdict import ERROR, FAIL, INCONCLUSIVE, PASS
from .markdown import bad_items, errors_text, first_bad, metric_text, not_run_groups, run_notes, where_verified

COLORS = {PASS: "32", FAIL: "31", ERROR: "35", INCONCLUSIVE: "33"}   # ANSI green red magenta yellow
MARKS = {FAIL: "✗", ERROR: "!", INCONCLUSIVE: "?"}
REASON_WIDTH = 160

# Model text may carry escape sequences that would repaint or retitle the user's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def render(results: dict, *, color: bool = False, paths: Mapping[str, Path] | None = None) -> str:
    """The report as text; `paths` (name -> file) says where the reports were written."""

    def paint(verdict: str, text: str) -> str:
        return f"\x1b[{COLORS[verdict]}m{text}\x1b[0m" if color and verdict in COLORS else text

    target = results.get("target", {})
    where = where_verified(results)
    lines = [_clean(f"kvv {results.get('kvv_version', '?')} · {results.get('suite', '?')} · "
                    f"{target.get('model', '?')} at {where} · "
                    f"profile {target.get('profile', '?')}{_as_of(target)} · "
                    f"think mode {target.get('think_mode', '?')}"),
             ""]
    rows = [[_clean(c["id"]), paint(c.get("verdict", ""), c.get("verdict", "?").upper()),
             f"{c.get('passed', 0)}/{c.get('n', 0)}", _clean(metric_text(c.get("metric"))),
             _clean(errors_text(c.get("errors")))]
            for c in results.get("checks", [])]
    if rows:
        lines += [tabulate(rows, headers=["check", "verdict", "passed", "metric", "errors"],
                           tablefmt="simple", disable_numparse=True), ""]
    not_run = [_clean(f"- not run: {_ids(ids)}: {reason}") for ids, reason in not_run_groups(results)]
    if not_run:
        lines += not_run + [""]
    reasons = [_reason(c) for c in results.get("checks", []) if c.get("verdict") != PASS]
    if reasons:
        lines += reasons + [""]
    notes = [_clean(re.sub(r"[*`\\]", "", note)) for note in run_notes(results)]
    if notes:
        lines += notes + [""]
    totals = results.get("totals", {})
    verdict = results.get("verdict", ERROR)
    reused = f" ({totals['reused']} reused)" if totals.get("reused") else ""
    lines.append(f"{paint(verdict, verdict.upper())} (exit {results.get('exit_code', '?')}) · "
                 f"{len(results.get('checks', []))} checks · {totals.get('items', 0)} items{reused} · "
                 f"{totals.get('requests', 0)} requests · {results.get('duration_s', 0):.1f} s")
    for name, path in (paths or {}).items():
        lines.append(f"{name}: {path}")
    return "\n".join(lines) + "\n"


def _reason(check: dict) -> str:
    """`✗ id: first bad item: its message (+N more)`, on one line."""
    bad = bad_items(check)
    if check.get("message"):
        why = check["message"]
    elif check.get("common_failure"):
        why = f"every item ({len(bad)}): {check['common_failure']}"
    elif bad:
        why = first_bad(bad)
        if len(bad) > 1:
            why += f" (+{len(bad) - 1} more)"
    else:
        why = f"{check.get('verdict')}: {metric_text(check.get('metric'))}"
    line = _clean(f"{MARKS.get(check.get('verdict', ''), '?')} {check['id']}: {why}")
    return line if len(line) <= REASON_WIDTH else line[:REASON_WIDTH - 1] + "…"


def _ids(ids: list[str]) -> str:
    return ", ".join(ids) if len(ids) <= 4 else f"{len(ids)} checks ({', '.join(ids[:3])}, …)"


def _clean(text: str) -> str:
    """One line, with control characters made visible instead of executed."""
    return _CONTROL.sub("�", " ".join(str(text).split()))


def _as_of(target: dict) -> str:
    return f" as of {target['profile_as_of']}" if target.get("profile_as_of") else ""
