"""The sticky pull-request comment, rendered from results.json (github-action.md §3.3).

`render(results, previous_digest, run_url)` is pure and deterministic: the same results, the
same previous digest and the same run URL give the same bytes. The comment is, in order:

- the badge (a static shields image, `badge.markdown`, imported when a comment is rendered);
- the verdict and what was tested;
- a table of checks (id, verdict, metric with bounds, n), then one line per finding;
- what changed since the previous kvv comment (nothing on the first one);
- a link to the run;
- a hidden marker, `<!-- kvv-comment model=… profile=… … -->`, that finds this comment again,
  and a hidden digest, `<!-- kvv-digest:v1:BASE64 -->`, the check verdicts of this run that
  the next run compares with.

Vendor text (messages, model names) is untrusted: it is made one escaped line with no HTML,
images, links, table breaks or @mentions, and it can never contain `<`, so it can neither
open an HTML comment (forge the marker or the digest) nor close ours. The comment is cut
below GitHub's 65,536-character limit: rows go first, the marker and digest always stay.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import urlsplit

from ..verdict import ERROR, FAIL, INCONCLUSIVE, PASS, SEVERITY
from .markdown import host, metric_text, where_verified

BODY_LIMIT = 65_536            # GitHub: "Body is too long (maximum is 65536 characters)"
# The budget leaves room for a different count on GitHub's side (emoji outside the BMP are two
# UTF-16 units; we count those, which is never fewer than GitHub's characters).
BUDGET = BODY_LIMIT - 1_536
DIGEST_VERSION = 1
DIGEST_BUDGET = 16_000         # characters of the encoded digest; checks beyond it are left out
MESSAGE_CAP = 300              # characters of one finding
CELL_CAP = 120                 # characters of one table cell
FINDINGS_SHOWN = 30

MARKER_PREFIX = "<!-- kvv-comment "
DIGEST_PREFIX = "<!-- kvv-digest:"
ICONS = {PASS: "✅", FAIL: "❌", INCONCLUSIVE: "⚠️", ERROR: "🛑"}
# Digest letters: one per verdict, so a digest of 50 checks stays well under a kilobyte.
_LETTERS = {PASS: "p", FAIL: "f", INCONCLUSIVE: "i", ERROR: "e"}
_VERDICTS = {letter: verdict for verdict, letter in _LETTERS.items()}

_TAG = re.compile(r"<[^<>]*>")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_PUNCT = re.compile(r"([\\`*_\[\]~|])")
_MARKER_VALUE = re.compile(r"[^A-Za-z0-9._/:@+=-]")
_DIGEST = re.compile(r"<!-- kvv-digest:v(\d+):([A-Za-z0-9+/=]*) -->")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Bidirectional overrides and isolates: they make text read differently from what it is.
_BIDI = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
ZWJ = "\u200d"


# --- the comment -----------------------------------------------------------------------------

def render(results: dict, previous_digest: dict | None = None, run_url: str | None = None, *,
           key: str | None = None, limit: int = BUDGET) -> str:
    """The comment body. `previous_digest` is `parse_digest(previous comment)`; `key` is the
    extra identity of the marker (see `marker`)."""
    run_link = _run_link(run_url)
    head = [_badge(results), _headline(results), _not_run(results)]
    tail = [_changes(results, previous_digest), run_link, _hidden(results, key)]
    checks = _ordered(results.get("checks", []))
    rows = [_row(c) for c in checks]                # rendered once; a cut only slices them
    findings = [_finding_line(c) for c in checks if c.get("verdict") not in (None, PASS)]
    see = "the run's job summary" + (f" ([run]({run_url}))" if run_link else "")

    def compose(shown_rows: int, shown: int) -> str:
        left_out = [f"{n} more {what}" for n, what in ((len(rows) - shown_rows, "checks"),
                                                          (len(findings) - shown, "findings")) if n]
        cut = f"✂️ {' and '.join(left_out)} are not shown here: see {see}." if left_out else ""
        table = "\n".join(TABLE_HEAD + rows[:shown_rows]) if checks else "_No checks ran._"
        listed = "**Findings**\n\n" + "\n".join(findings[:shown]) if shown else ""
        return _join(head + [table, listed, cut] + tail)

    shown = min(len(findings), FINDINGS_SHOWN)
    body = compose(len(rows), shown)
    # Fewest cuts that fit: findings first, then table rows (the worst checks are listed
    # first, so passing rows go first).
    while shown and _length(body) > limit:
        shown //= 2
        body = compose(len(rows), shown)
    if _length(body) <= limit:
        return body
    low, high = 0, len(rows)
    while low < high:                    # the most rows that fit
        middle = (low + high + 1) // 2
        if _length(compose(middle, shown)) <= limit:
            low = middle
        else:
            high = middle - 1
    return compose(low, shown)


def marker(results: dict, key: str | None = None) -> str:
    """The hidden line that identifies this comment: one per model, profile, suite, endpoint
    and `key` (in the action, WORKFLOW-FILE/JOB/OUTPUT-DIR), so matrix legs and several steps
    do not overwrite each other's comment. Values are reduced to a safe alphabet (no spaces, `<`
    or `>`), so one marker is never a substring of another."""
    target = results.get("target", {})
    endpoint = "simulated" if target.get("simulated") else host(target.get("base_url"))
    fields = [("model", target.get("model")), ("profile", target.get("profile")),
              ("suite", results.get("suite")), ("endpoint", endpoint), ("key", key)]
    text = " ".join(f"{name}={_marker_value(value)}" for name, value in fields
                    if value not in (None, "") or name in ("model", "profile"))
    return f"{MARKER_PREFIX}{text} -->"


def digest(results: dict) -> dict:
    """What the next comment compares with: the run's verdict and each check's (as many as
    fit DIGEST_BUDGET; then `cut` says that ids left out are unknown, not removed)."""
    ids = [(c["id"], _LETTERS.get(c.get("verdict"), "e")) for c in results.get("checks", [])]

    def build(count: int) -> dict:
        found = {"v": DIGEST_VERSION, "verdict": _LETTERS.get(results.get("verdict", ""), "e"),
                 "checks": dict(ids[:count])}
        if count < len(ids):
            found["cut"] = True
        return found

    if len(encode_digest(build(len(ids)))) <= DIGEST_BUDGET:
        return build(len(ids))
    low, high = 0, len(ids)
    while low < high:
        middle = (low + high + 1) // 2
        if len(encode_digest(build(middle))) <= DIGEST_BUDGET:
            low = middle
        else:
            high = middle - 1
    return build(low)


def encode_digest(found: dict) -> str:
    data = json.dumps(found, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"{DIGEST_PREFIX}v{DIGEST_VERSION}:{base64.b64encode(data.encode()).decode()} -->"


def parse_digest(body: str | None) -> dict | None:
    """The digest in a previous comment's body (the last one, which is kvv's own: vendor text
    cannot hold `<`), as {"verdict": v, "checks": {id: verdict}, "cut": bool}; None when there
    is none, or it is of another version or malformed."""
    if not body:
        return None
    found = _DIGEST.findall(body)
    if not found:
        return None
    version, data = found[-1]
    if int(version) != DIGEST_VERSION:
        return None
    try:
        decoded = json.loads(base64.b64decode(data, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(decoded, dict) or decoded.get("v") != DIGEST_VERSION:
        return None
    checks = decoded.get("checks")
    if not isinstance(checks, dict) or not all(
            isinstance(k, str) and v in _VERDICTS for k, v in checks.items()):
        return None
    return {"verdict": _VERDICTS.get(decoded.get("verdict", ""), ERROR),
            "checks": {k: _VERDICTS[v] for k, v in checks.items()},
            "cut": bool(decoded.get("cut"))}


# --- sections --------------------------------------------------------------------------------

def _badge(results: dict) -> str:
    from .badge import markdown as badge_markdown      # lazily: only comments need it

    # Its alt text is escaped markdown; still, no `<` and no marker words may reach the body.
    return _defuse_marker(badge_markdown(results).strip().replace("<", "&lt;"))


def _headline(results: dict) -> str:
    target = results.get("target", {})
    verdict = results.get("verdict", ERROR)
    where = text(where_verified(results), 100)
    counts = ", ".join(f"{n} {v}" for v in reversed(SEVERITY)
                       if (n := sum(c.get("verdict") == v for c in results.get("checks", []))))
    line = (f"### {ICONS.get(verdict, '❔')} kvv: {verdict.upper()} — "
            f"{text(target.get('model') or '?', 100)} at {where}")
    facts = (f"**profile** {text(target.get('profile') or '—', 100)} · "
             f"**suite** {text(results.get('suite') or '—', 40)} · "
             f"**checks** {counts or 'none'} · **exit code** {results.get('exit_code', '?')}")
    notes = []
    if target.get("simulated"):
        notes.append("> **Simulated:** kvv's own simulated vendor, not a real deployment.")
    if results.get("complete") is False:
        notes.append("> **Incomplete run:** "
                     + (text(results["stopped"], MESSAGE_CAP) if results.get("stopped") else "not every item ran."))
    return "\n\n".join([line, facts, *notes])


TABLE_HEAD = ["| check | verdict | metric [bounds] | n |", "|---|---|---|---|"]


def _row(check: dict) -> str:
    verdict = check.get("verdict", "?")
    return (f"| `{code(check.get('id', '?'), CELL_CAP)}` | {ICONS.get(verdict, '❔')} {text(verdict, 20)} | "
            f"{text(metric_text(check.get('metric')), CELL_CAP)} | {check.get('passed', 0)}/{check.get('n', 0)} |")


def _finding_line(check: dict) -> str:
    return (f"- `{code(check.get('id', '?'), CELL_CAP)}` ({text(check.get('verdict', '?'), 20)}): "
            f"{text(_finding(check), MESSAGE_CAP)}")


def _finding(check: dict) -> str:
    if check.get("message"):
        return check["message"]
    if check.get("common_failure"):
        return f"every item: {check['common_failure']}"
    bad = [i for i in check.get("items", []) if i.get("verdict") not in (None, PASS)]
    if bad:
        first = bad[0]
        return (f"{len(bad)} of {check.get('n', len(bad))} items; "
                f"first: {first.get('id', '?')}: {first.get('message', '')}")
    return f"{check.get('passed', 0)}/{check.get('n', 0)} passed"


def _not_run(results: dict) -> str:
    ids = [c.get("id", "?") for c in results.get("not_run", [])]
    if not ids:
        return ""
    shown = ", ".join(f"`{code(i, CELL_CAP)}`" for i in ids[:20])
    return f"**Not run:** {shown}" + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")


def _changes(results: dict, previous: dict | None) -> str:
    if previous is None:
        return ""
    before, now = previous["checks"], {c["id"]: c.get("verdict", ERROR) for c in results.get("checks", [])}
    lines = []
    if previous["verdict"] != results.get("verdict"):
        lines.append(f"- verdict: {_arrow(previous['verdict'], results.get('verdict', ERROR))}")
    changed = [i for i in now if i in before and before[i] != now[i]]
    new = [i for i in now if i not in before and not previous.get("cut")]
    removed = [i for i in before if i not in now]
    lines += [f"- `{code(i, CELL_CAP)}`: {_arrow(before[i], now[i])}" for i in changed[:30]]
    lines += [f"- new: `{code(i, CELL_CAP)}` ({text(now[i], 20)})" for i in new[:30]]
    lines += [f"- removed: `{code(i, CELL_CAP)}` (was {text(before[i], 20)})" for i in removed[:30]]
    hidden = max(0, len(changed) - 30) + max(0, len(new) - 30) + max(0, len(removed) - 30)
    if hidden:
        lines.append(f"- and {hidden} more")
    title = "**Since the previous kvv comment:**"
    return f"{title} no change." if not lines else title + "\n\n" + "\n".join(lines)


def _arrow(before: str, after: str) -> str:
    return f"{ICONS.get(before, '❔')} {before} → {ICONS.get(after, '❔')} {after}"


def _run_link(run_url: str | None) -> str:
    if not run_url or not _safe_url(run_url):
        return ""
    return f"[The run, with the full report in its job summary]({run_url})"


def _hidden(results: dict, key: str | None) -> str:
    return f"{marker(results, key)}\n{encode_digest(digest(results))}"


# --- helpers ---------------------------------------------------------------------------------

def text(value: Any, limit: int = MESSAGE_CAP) -> str:
    """Untrusted text as one line of inert markdown: no HTML tags or images, no links,
    emphasis or table breaks, no @mentions, and never a `<` (so no HTML comment)."""
    value = _clean(value, limit)
    value = _IMAGE.sub("[image removed]", value)
    value = _TAG.sub("", value)
    if len(value) > limit:
        value = value[:limit - 1] + "…"
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = _PUNCT.sub(r"\\\1", value)
    return _defuse(value)


def code(value: Any, limit: int = CELL_CAP) -> str:
    """Untrusted text for inside a code span: no backticks, pipes escaped (tables), no `<`."""
    value = _clean(value, limit)
    if len(value) > limit:
        value = value[:limit - 1] + "…"
    value = value.replace("`", "'").replace("|", "\\|").replace("<", "‹").replace(">", "›")
    return _defuse(value) or " "


def _clean(value: Any, limit: int) -> str:
    # Far more than `limit` survives the cut below whatever whitespace and tags there are.
    value = _CONTROL.sub(" ", str(value)[:limit * 8 + 1000].translate(_BIDI))
    return " ".join(value.split())


def _defuse(value: str) -> str:
    # A zero-width joiner after every @ stops mentions (and team mentions); kvv's own marker
    # words get one too, so even rendered text never looks like the marker.
    return _defuse_marker(value.replace("@", "@" + ZWJ))


def _defuse_marker(value: str) -> str:
    return re.sub(r"kvv-(comment|digest)", "kvv" + ZWJ + r"-\1", value, flags=re.I)


def _marker_value(value: Any) -> str:
    return _MARKER_VALUE.sub("_", str(value))[:100] or "_"


def _safe_url(url: str) -> bool:
    parts = urlsplit(url)
    return (parts.scheme in ("https", "http") and bool(parts.netloc)
            and not re.search(r"[\s()<>\[\]\"'`]", url) and len(url) <= 2000)


def _ordered(checks: list[dict]) -> list[dict]:
    """Worst first (a cut drops passing rows first), results order within a verdict."""
    return sorted(checks, key=lambda c: -SEVERITY.index(c["verdict"]) if c.get("verdict") in SEVERITY
                  else -len(SEVERITY))


def _join(sections: list[str]) -> str:
    return "\n\n".join(s for s in sections if s) + "\n"


def _length(body: str) -> int:
    """The body's length in UTF-16 units (never fewer than its characters)."""
    return len(body.encode("utf-16-le")) // 2
