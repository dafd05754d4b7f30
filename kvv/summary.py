"""A check's entry in results.json, from its item records: the verdict, the metric and the
counts. The runner calls it when a check's items are done; `kvv merge` calls it again over the
union of shards' items, so a merged verdict is computed, never averaged."""

from __future__ import annotations

from typing import Any, Callable

from .checks.base import Check, Context
from .stats import wilson
from .verdict import ERROR, ERROR_CLASSES, FAIL, INCONCLUSIVE, PASS, worst

EVIDENCE_PER_CHECK = 5
# Kept per item in the journal (for --resume) but summed per check in results.json.
JOURNAL_ONLY = ("evidence", "errors", "tokens")


def check_result(check: Check, context: Context, records: list[dict[str, Any]], *, planned: int,
                 unfinished: int, stopped_early: bool, errors: dict[str, int], tokens: dict[str, int],
                 duration_s: float, evidence: list[dict[str, Any]],
                 on_internal: Callable[[Exception], None]) -> dict[str, Any]:
    """`records` in plan order; `unfinished`: items planned that neither ran nor were left out by
    an early stop; `on_internal` is told when the check's own summary raised (kvv's bug)."""
    counts = {v: sum(1 for i in records if i["verdict"] == v) for v in (PASS, FAIL, ERROR)}
    n = len(records)
    internal = sum(1 for i in records if i.get("internal"))
    message = None
    if unfinished:
        verdict = ERROR
        metric = _no_metric()
        details: dict[str, Any] = {"unfinished": unfinished}
    elif check.summarize is not None:
        try:
            summary = check.summarize(records, context)
            verdict, metric, details = summary.verdict, summary.metric, summary.details
            message = summary.message
            if n and counts[ERROR] == n and verdict in (PASS, INCONCLUSIVE):
                # A statistic over items none of which could be judged says nothing of the vendor:
                # an endpoint that answers every request with 503 is an outage, not "undecided".
                verdict = ERROR
                message = f"ERROR: none of the {n} items could be judged (each errored); {message or ''}".rstrip("; ")
        except Exception as exc:     # kvv's bug, never the vendor's outage
            internal += 1
            on_internal(exc)
            verdict, metric = ERROR, _no_metric()
            details = {"internal_error": f"{type(exc).__name__}: {exc}"}
    else:
        lower, upper = wilson(counts[PASS], n)
        verdict = worst(i["verdict"] for i in records)
        metric = {"name": "pass_rate", "value": round(counts[PASS] / n, 4) if n else None,
                  "lower": round(lower, 4), "upper": round(upper, 4), "confidence": 0.95}
        details = {}
    return {
        "id": check.id,
        "title": check.title,
        "detects": check.detects,
        "suites": list(check.suites),
        "verdict": verdict,
        "n": n,
        "planned": planned,
        "n_planned": planned,
        "passed": counts[PASS],
        "failed": counts[FAIL],
        "errored": counts[ERROR],
        "reused": sum(1 for i in records if i.get("resumed")),
        "stopped_early": stopped_early,
        "metric": metric,
        "details": details,
        "common_failure": common_failure(records),
        "message": message,
        "errors": {**errors, "internal": internal},
        "tokens": tokens,
        "duration_s": round(duration_s, 3),
        "config_line": None,
        "items": [{k: v for k, v in i.items() if k not in JOURNAL_ONLY} for i in records],
        "evidence": evidence[:EVIDENCE_PER_CHECK],
    }


def gated(failed: list[str]) -> str:
    """Why benchmarks did not run: upstream's rule, a broken contract makes their scores meaningless."""
    return (f"gated: preflight did not pass ({', '.join(failed)}), so benchmark scores would not mean "
            "much; fix the contract first, or run them anyway with --no-gate")


def _no_metric() -> dict[str, Any]:
    return {"name": "pass_rate", "value": None, "lower": None, "upper": None, "confidence": 0.95}


def common_failure(items: list[dict[str, Any]]) -> str | None:
    """The message every item of a check failed with, when there are several and all agree:
    reports say it once instead of once per item."""
    messages = {i.get("message") for i in items}
    if len(items) > 1 and len(messages) == 1 and all(i["verdict"] != PASS for i in items):
        return messages.pop()
    return None


def totals(checks: list[dict[str, Any]], probe_requests: int) -> dict[str, Any]:
    items = [i for c in checks for i in c["items"]]
    classes = (*ERROR_CLASSES, "internal")
    return {
        "checks": len(checks),
        "items": len(items),
        "reused": sum(1 for i in items if i.get("resumed")),
        "requests": sum(i["requests"] for i in items),
        "probe_requests": probe_requests,
        "attempts": sum(i["attempts"] for i in items),
        "prompt_tokens": sum(c["tokens"]["prompt_tokens"] for c in checks),
        "completion_tokens": sum(c["tokens"]["completion_tokens"] for c in checks),
        "errors": {k: sum(c["errors"].get(k, 0) for c in checks) for k in classes},
    }
