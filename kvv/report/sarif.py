"""SARIF 2.1.0 for GitHub code scanning, rendered from results.json (github-action.md §2).

One run; a rule for every check that ran; a result for every check that failed, could not run
or stayed undecided. GitHub rejects a whole file if one result has no physical location, and an
API check has no source line, so every result is anchored: to the check's line in the config
file when there is one, else to where the run was started from (`anchor`, recorded in
results.json at run time: the workflow step that uses kvv), else line 1 of `action.yml`.
Fingerprints hash what identifies a finding across runs (check, model, profile), never the
endpoint's URL, a timestamp or a port.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

from ..verdict import ERROR, FAIL, INCONCLUSIVE

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/kvv-dev/kvv"
LEVELS = {FAIL: "error", ERROR: "warning", INCONCLUSIVE: "note"}
MAX_RESULTS = 25_000          # GitHub's hard limit per run
MAX_DESCRIPTION = 1024        # short and full descriptions
MAX_MESSAGE = 4000            # kept readable; GitHub's own cap on message text is larger
FALLBACK = {"uri": "action.yml", "line": 1}


def render(results: dict) -> str:
    """The SARIF document as JSON text (deterministic: the same results give the same bytes)."""
    checks = results.get("checks", [])
    rules = [_rule(c) for c in checks]
    findings = [_result(c, results) for c in checks if c.get("verdict") in LEVELS]
    findings += [finding for c in checks if c.get("verdict") == FAIL for finding in _item_results(c, results)]
    findings = findings[:MAX_RESULTS]
    run = {
        "tool": {"driver": {"name": "kvv", "semanticVersion": results.get("kvv_version", "0"),
                            "version": results.get("kvv_version", "0"), "informationUri": INFORMATION_URI,
                            "rules": rules}},
        "automationDetails": {"id": f"kvv/{_target_key(results)}/"},
        "results": findings,
    }
    document = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def anchor(environ: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """Where a finding with no config line points: the workflow step that runs kvv, found from
    GITHUB_WORKFLOW_REF in GITHUB_WORKSPACE (line 1 of the workflow if no step names kvv).
    None outside GitHub. Read at run time and kept in results.json, so rendering stays pure."""
    ref, workspace = environ.get("GITHUB_WORKFLOW_REF"), environ.get("GITHUB_WORKSPACE")
    if not ref or not workspace:
        return None
    # owner/repo/.github/workflows/verify.yml@refs/heads/main
    match = re.match(r"[^/]+/[^/]+/(.+?)(@.*)?$", ref)
    if not match:
        return None
    path = match.group(1)
    try:
        lines = (Path(workspace) / path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {"uri": path, "line": 1}
    step = next((n for n, line in enumerate(lines, 1) if re.search(r"\buses:\s*\S*kvv", line)), 1)
    return {"uri": path, "line": step}


CASE_FILE_OPTIONS = ("cases", "requests")     # check options that name a file of items, one per line


def sources(results: dict, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Check id -> its case file relative to the repository (GITHUB_WORKSPACE, else the current
    directory), for the case files that lie in it. Read at run time and kept in results.json."""
    root = Path(environ.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
    found = {}
    for check_id, options in ((results.get("run") or {}).get("checks") or {}).items():
        for key in CASE_FILE_OPTIONS:
            value = (options or {}).get(key)
            if isinstance(value, str) and value:
                try:
                    found[check_id] = Path(value).resolve().relative_to(root).as_posix()
                except ValueError:
                    pass                     # outside the repository: code scanning cannot show it
                break
    return found


def _item_results(check: dict, results: dict) -> list[dict[str, Any]]:
    """A result per failing item whose case-file line is known, located at that line."""
    uri = (results.get("sources") or {}).get(check["id"])
    if not uri:
        return []
    target = results.get("target", {})
    found = []
    for item in check.get("items", []):
        if item.get("verdict") != FAIL or not item.get("line"):
            continue
        identity = "|".join([check["id"], item["id"], str(target.get("model")), str(target.get("profile"))])
        digest = hashlib.sha256(identity.encode()).hexdigest()
        found.append({
            "ruleId": check["id"],
            "level": "error",
            "message": {"text": _cut(f"kvv {check['id']} · {item['id']}: {item.get('message') or 'failed'} "
                                     f"({target.get('model')}, profile {target.get('profile')})", MAX_MESSAGE)},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri},
                                                "region": {"startLine": item["line"]}}}],
            "partialFingerprints": {"primaryLocationLineHash": f"{digest[:32]}:1", "kvvFinding/v1": digest},
            "properties": {"verdict": FAIL, "item": item["id"], "model": target.get("model"),
                           "profile": target.get("profile")},
        })
    return found


def _rule(check: dict) -> dict[str, Any]:
    detects = check.get("detects") or check.get("title") or check["id"]
    return {
        "id": check["id"],
        "name": _camel(check["id"]),
        "shortDescription": {"text": _cut(check.get("title") or check["id"], MAX_DESCRIPTION)},
        "fullDescription": {"text": _cut(f"Detects: {detects}", MAX_DESCRIPTION)},
        "help": {"text": _help_text(check), "markdown": _help_markdown(check)},
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["kvv", "inference", *_suites(check)]},
    }


def _result(check: dict, results: dict) -> dict[str, Any]:
    location = _location(check, results)
    target = results.get("target", {})
    identity = "|".join([check["id"], str(target.get("model")), str(target.get("profile"))])
    digest = hashlib.sha256(identity.encode()).hexdigest()
    return {
        "ruleId": check["id"],
        "level": LEVELS[check["verdict"]],
        "message": {"text": _cut(_message(check, target), MAX_MESSAGE)},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": location["uri"]},
                                            "region": {"startLine": location["line"]}}}],
        "partialFingerprints": {"primaryLocationLineHash": f"{digest[:32]}:1", "kvvFinding/v1": digest},
        "properties": {"verdict": check["verdict"], "model": target.get("model"),
                       "profile": target.get("profile"), "metric": check.get("metric")},
    }


def _location(check: dict, results: dict) -> dict[str, Any]:
    if results.get("config_file") and check.get("config_line"):
        return {"uri": _relative(results["config_file"]), "line": check["config_line"]}
    if results.get("config_file"):
        return {"uri": _relative(results["config_file"]), "line": 1}
    return results.get("anchor") or FALLBACK


def _relative(path: str) -> str:
    """A repository-relative URI: upload-sarif relativises absolute ones against the checkout."""
    return Path(path).as_posix().removeprefix("./")


def _message(check: dict, target: dict) -> str:
    head = f"kvv {check['id']}: {check['verdict'].upper()} for {target.get('model')} (profile {target.get('profile')})"
    if check.get("message"):
        return f"{head}. {check['message']}"
    if check.get("common_failure"):
        return f"{head}. Every item: {check['common_failure']}"
    bad = [i for i in check.get("items", []) if i.get("verdict") not in (None, "pass")]
    if bad:
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        return f"{head}. {bad[0]['id']}: {bad[0].get('message', '')}{more}"
    return head


def _help_text(check: dict) -> str:
    return (f"{check.get('title') or check['id']}. Detects: {check.get('detects', '')}. Reproduce with "
            f"`kvv run --only {check['id']}`; the failing requests, each with a curl line, are in "
            "results.json and the job summary.")


def _help_markdown(check: dict) -> str:
    return (f"**{check.get('title') or check['id']}**\n\nDetects: {check.get('detects', '')}\n\n"
            f"Reproduce: `kvv run --only {check['id']} …` with the same endpoint and profile. The job "
            "summary and `results.json` hold the failing requests, each with a `curl` line, and the "
            "response that broke the contract. Fix the deployment (template, parser, parameter "
            "handling), then run kvv again.")


def _suites(check: dict) -> list[str]:
    return [s for s in ("preflight", "tools", "bench") if s in (check.get("suites") or [])]


def _target_key(results: dict) -> str:
    target = results.get("target", {})
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{target.get('model')}-{target.get('profile')}")


def _camel(check_id: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_.]", check_id))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
