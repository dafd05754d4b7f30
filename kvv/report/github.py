"""GitHub workflow commands and file commands (github-action.md §1.5, §1.6).

Pure functions that return the text to print, plus appenders for the runner's files
(`$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY`).
"""

# No `from __future__ import annotations`: `annotations` below is this module's own function.
import secrets
from pathlib import Path
from typing import Any, Mapping

from ..verdict import ERROR, FAIL, INCONCLUSIVE
from .markdown import bad_items, first_bad

# The runner turns only the first 10 errors, 10 warnings and 10 notices of a step into
# annotations and drops the rest silently (runner src `_maxIssueCount`).
ANNOTATIONS_PER_LEVEL = 10
SUMMARY_LIMIT = 1024 * 1024          # per step; above it the upload fails

# A failed check is an error annotation; a check kvv could not settle is a warning.
LEVELS = {FAIL: "error", ERROR: "warning", INCONCLUSIVE: "warning"}


def escape_data(text: str) -> str:
    """A command's message (actions/toolkit `escapeData`)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A command's property value (actions/toolkit `escapeProperty`)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: Any) -> str:
    """`::name k=v,k=v::message`, with empty properties left out."""
    props = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items()
                     if v is not None and v != "")
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def add_mask(value: str) -> str:
    return command("add-mask", value)


def annotations(results: dict, config_file: str | None = None,
                config_lines: dict[str, int] | None = None) -> list[str]:
    """Annotation commands for the checks that did not pass, most severe level first.

    Anchored to `config_file` (at the check's line from `config_lines`, else the check's own
    `config_line`) when a config file was used, else where SARIF anchors it (results' `anchor`:
    the workflow step that runs kvv); at most 10 per level, then one notice that counts what
    was left out.
    """
    anchor = None if config_file else results.get("anchor")
    by_level: dict[str, list[str]] = {"error": [], "warning": []}
    for check in results.get("checks", []):
        level = LEVELS.get(check.get("verdict"))
        if level is None:
            continue
        line = (config_lines or {}).get(check["id"]) or check.get("config_line")
        by_level[level].append(command(
            level, _annotation_message(check),
            title=f"kvv {check['id']}: {check.get('verdict', '').upper()}",
            file=config_file or (anchor or {}).get("uri"),
            line=line if config_file else (anchor or {}).get("line"),
        ))
    lines, dropped = [], 0
    for found in by_level.values():
        lines += found[:ANNOTATIONS_PER_LEVEL]
        dropped += max(0, len(found) - ANNOTATIONS_PER_LEVEL)
    if dropped:
        lines.append(command("notice", f"{dropped} more findings, see the job summary"))
    return lines


def _annotation_message(check: dict) -> str:
    counts = f"{check.get('passed', 0)}/{check.get('n', 0)} passed"
    if check.get("errored"):
        counts += f", {check['errored']} could not run"
    if check.get("message"):             # a statistical check's verdict in one sentence
        return f"{check.get('title') or check['id']}: {check['message']}"
    if check.get("common_failure"):
        return f"{check.get('title') or check['id']} ({counts}): every item: {check['common_failure']}"
    bad = bad_items(check)
    first = f"; first: {first_bad(bad)}" if bad else ""
    return f"{check.get('title') or check['id']} ({counts}){first}"


def _token(avoid: str) -> str:
    """A random token that does not occur in `avoid`."""
    while True:
        token = secrets.token_hex(16)
        if token not in avoid:
            return token


def write_outputs(path: str | Path, mapping: Mapping[str, Any]) -> None:
    """Append step outputs in the heredoc form, which is safe for any value."""
    with open(path, "a", encoding="utf-8") as fh:
        for name, value in mapping.items():
            value = str(value)
            delimiter = f"ghadelimiter_{_token(value)}"
            fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(path: str | Path, markdown: str, limit: int = SUMMARY_LIMIT) -> None:
    """Append to the job summary without taking the step's file past `limit` bytes.

    What does not fit is cut at a line boundary (an open code fence is closed) and a note
    says so; the full report stays in the output directory.
    """
    path = Path(path)
    budget = limit - (path.stat().st_size if path.exists() else 0)
    data = markdown.encode("utf-8")
    if len(data) > budget:
        note = (f"\n\n> ✂️ **kvv:** the job summary was cut to fit GitHub's {limit // 1024} KiB "
                "limit; the full report is `summary.md` in the output directory.\n")
        head = data[:max(0, budget - len(note.encode("utf-8")))]
        kept = head.decode("utf-8", errors="ignore").rpartition("\n")[0]
        while True:
            fence = _open_fence(kept)
            data = (kept + (f"\n{fence}" if fence else "") + note).encode("utf-8")
            if len(data) <= budget or not kept:
                break
            kept = kept.rpartition("\n")[0]    # room for the closing fence
        if len(data) > budget:
            return                             # not even the note fits
    with open(path, "ab") as fh:
        fh.write(data)


def _open_fence(markdown: str) -> str:
    """The fence that is still open at the end of `markdown`, or ''."""
    fence = ""
    for line in markdown.splitlines():
        stripped = line.strip()
        if not fence and stripped.startswith("```"):
            fence = stripped[:len(stripped) - len(stripped.lstrip("`"))]
        elif fence and stripped.startswith(fence) and not stripped.strip("`"):
            fence = ""
    return fence


def stop_markers(text: str = "") -> tuple[str, str]:
    """The lines that open and close a span where workflow commands are ignored."""
    token = _token(text)
    return f"::stop-commands::{token}", f"::{token}::"


def stop_commands(text: str) -> str:
    """`text` (untrusted: model output) wrapped so it cannot issue workflow commands."""
    start, end = stop_markers(text)
    return f"{start}\n{text}\n{end}\n"
