"""`kvv compare`: one table of several vendors' runs of the same model and profile.

Rows are vendors, columns the checks any of them ran, each cell the check's verdict and its
headline metric with bounds; the last column is the run's verdict. It is what a model maker
publishes instead of a hand-edited table, so it is a pure function of the results documents
(no clock, no network), in the order given, and names an endpoint by its host only: never the
userinfo, path or query of a URL.

Runs of different profiles judge different contracts and are refused (ConfigError: exit 2);
different models under one profile, or runs that stopped early, are compared with a warning.
"""

from __future__ import annotations

import json
from typing import Any

from tabulate import tabulate

from ..errors import ConfigError
from ..verdict import ERROR, PASS
from .markdown import ICONS, code, faults_text, host, inline

DETAIL_LINES = 20        # the findings under the table, when there are no more than this
NOT_RUN = "—"


def comparison(documents: list[dict], sources: list[str] | None = None) -> dict[str, Any]:
    """The comparison as data (what both renderings show); ConfigError if the profiles differ."""
    if not documents:
        raise ConfigError("nothing to compare: give one results.json (or output directory) per vendor",
                          source="kvv compare")
    check_profiles(documents, sources)
    names = vendor_names(documents)
    columns = _columns(documents)
    ran = set(columns)
    vendors = []
    for name, results in zip(names, documents, strict=True):
        target = results.get("target", {})
        by_id = {c["id"]: c for c in results.get("checks", [])}
        reasons = {e["id"]: e.get("reason", "") for e in results.get("not_run", [])}
        cells = {}
        for check_id in columns:
            if check_id in by_id:
                check = by_id[check_id]
                cells[check_id] = {"verdict": check.get("verdict", ERROR), "metric": _headline(check.get("metric"))}
            else:
                cells[check_id] = {"verdict": None, "not_run": reasons.get(
                    check_id, f"not part of this run (suite {results.get('suite', '?')})")}
        vendors.append({
            "vendor": name, "model": target.get("model"), "think_mode": target.get("think_mode"),
            "simulated": bool(target.get("simulated")), "suite": results.get("suite"),
            "kvv_version": results.get("kvv_version"), "started_at": results.get("started_at"),
            "verdict": results.get("verdict", ERROR), "complete": results.get("complete", True) is not False,
            "stopped": results.get("stopped"), "checks": cells,
            "findings": [_finding(c) for c in results.get("checks", []) if c.get("verdict") != PASS],
        })
    nowhere: dict[str, str] = {}
    for results in documents:
        for entry in results.get("not_run", []):
            if entry["id"] not in ran:
                nowhere.setdefault(entry["id"], entry.get("reason", ""))
    return {
        "profile": documents[0].get("target", {}).get("profile"),
        "models": _unique(v["model"] for v in vendors),
        "kvv_versions": _unique(v["kvv_version"] for v in vendors),
        "dates": sorted(_unique(str(v["started_at"] or "?")[:10] for v in vendors)),
        "checks": columns,
        "not_run_anywhere": nowhere,
        "warnings": _warnings(vendors),
        "vendors": vendors,
    }


def render(documents: list[dict], sources: list[str] | None = None) -> str:
    """The comparison as markdown: header, warnings, the table, footnotes and short findings."""
    data = comparison(documents, sources)
    models = ", ".join(code(m) for m in data["models"])
    dates = data["dates"][0] + (f" – {data['dates'][-1]}" if len(data["dates"]) > 1 else "")
    versions = ", ".join(inline(v) for v in data["kvv_versions"])
    suites = ", ".join(inline(s) for s in _unique(v["suite"] for v in data["vendors"]))
    lines = [f"## kvv vendor comparison: {models}, profile {code(data['profile'])}",
             f"{len(data['vendors'])} runs · kvv {versions} · started {inline(dates)} · suites {suites}"]
    lines += [f"> ⚠️ {inline(w, 1000)}" for w in data["warnings"]]

    footnotes: dict[str, int] = {}
    rows = []
    for vendor in data["vendors"]:
        row = [inline(vendor["vendor"])]
        for check_id in data["checks"]:
            cell = vendor["checks"][check_id]
            if cell["verdict"] is None:
                number = footnotes.setdefault(cell["not_run"], len(footnotes) + 1)
                row.append(f"{NOT_RUN} [^{number}]")
            else:
                row.append(_cell(cell))
        overall = f"{ICONS.get(vendor['verdict'], '❔')} {vendor['verdict']}"
        row.append(overall if vendor["complete"] else f"{overall} (incomplete)")
        rows.append(row)
    headers = ["vendor", *(code(c) for c in data["checks"]), "verdict"]
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) if data["checks"] else \
        "_No check ran for any vendor._"
    sections = ["\n\n".join(lines), table, _legend(data)]
    if data["not_run_anywhere"]:
        sections.append("Not run for any vendor: " + "; ".join(
            f"{code(c)} ({inline(r, 300)})" for c, r in data["not_run_anywhere"].items()))
    sections.append(_details(data))
    if footnotes:
        sections.append("\n".join(f"[^{n}]: not run: {inline(reason, 500)}" for reason, n in footnotes.items()))
    return "\n\n".join(s for s in sections if s) + "\n"


def render_json(documents: list[dict], sources: list[str] | None = None) -> str:
    return json.dumps(comparison(documents, sources), indent=2, ensure_ascii=False) + "\n"


def check_profiles(documents: list[dict], sources: list[str] | None = None) -> None:
    """ConfigError unless every run is of one profile: another profile is another contract."""
    profiles = [str(d.get("target", {}).get("profile")) for d in documents]
    if len(set(profiles)) > 1:
        named = sources or vendor_names(documents)
        listed = "; ".join(f"{n}: {p}" for n, p in zip(named, profiles, strict=False))
        raise ConfigError(f"the runs are of different profiles ({listed}); compare runs of one profile",
                          source="kvv compare")


def vendor_names(documents: list[dict]) -> list[str]:
    """A row name per run: the endpoint's host[:port], or the simulator and its faults;
    repeated names numbered in the order given."""
    names = [_vendor(d.get("target", {})) for d in documents]
    seen: dict[str, int] = {}
    numbered = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        numbered.append(f"{name} #{seen[name]}" if names.count(name) > 1 else name)
    return numbered


# --- pieces ------------------------------------------------------------------------------

def _vendor(target: dict) -> str:
    if target.get("simulated"):
        return f"kvv simulator (faults: {faults_text(target)})"
    return host(target.get("base_url"))


def _columns(documents: list[dict]) -> list[str]:
    """Every check that ran for some vendor, in the order they first appear."""
    columns: dict[str, None] = {}
    for results in documents:
        for check in results.get("checks", []):
            columns.setdefault(check["id"], None)
    return list(columns)


def _headline(metric: dict | None) -> dict[str, Any] | None:
    if not metric or metric.get("value") is None:
        return None
    return {k: metric.get(k) for k in ("name", "value", "lower", "upper", "confidence")}


def _cell(cell: dict) -> str:
    text = f"{ICONS.get(cell['verdict'], '❔')} {cell['verdict']}"
    metric = cell.get("metric")
    if metric:
        text += f" {_num(metric['value'])}"
        if metric.get("lower") is not None and metric.get("upper") is not None:
            text += f" [{_num(metric['lower'])}, {_num(metric['upper'])}]"
    return text


def _legend(data: dict) -> str:
    """Which metric each column shows, and at what confidence."""
    named: dict[str, list[str]] = {}
    for check_id in data["checks"]:
        metric = next((v["checks"][check_id]["metric"] for v in data["vendors"]
                       if v["checks"][check_id].get("metric")), None)
        if metric:
            level = f" ({metric['confidence'] * 100:g}% CI)" if metric.get("confidence") else ""
            named.setdefault(f"{metric['name']}{level}", []).append(code(check_id))
    if not named:
        return ""
    return ("Cells: verdict, then the check's metric and its bounds [lower, upper] — " +
            "; ".join(f"{inline(name)}: {', '.join(ids)}" for name, ids in named.items()) + ".")


def _details(data: dict) -> str:
    lines = [f"- **{inline(v['vendor'])}** {code(f['id'])} {f['verdict']}: {inline(f['why'], 200)}"
             for v in data["vendors"] for f in v["findings"]]
    if not lines:
        return ""
    if len(lines) > DETAIL_LINES:
        return (f"{len(lines)} checks did not pass across the vendors: each run's own `summary.md` "
                "(or `kvv report DIR`) has the evidence.")
    return "**Why**\n\n" + "\n".join(lines)


def _finding(check: dict) -> dict[str, str]:
    bad = [i for i in check.get("items", []) if i.get("verdict") not in (None, PASS)]
    why = (check.get("message") or check.get("common_failure")
           or (f"{bad[0]['id']}: {bad[0].get('message', '')}" + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else "")
               if bad else check.get("verdict", "")))
    return {"id": check["id"], "verdict": check.get("verdict", ERROR), "why": why}


def _warnings(vendors: list[dict]) -> list[str]:
    warnings = []
    if len(_unique(v["model"] for v in vendors)) > 1:
        warnings.append("The runs are of different models: " +
                        ", ".join(f"{v['vendor']} serves {v['model']}" for v in vendors) +
                        ". The profile is the same contract, but the scores are not of one model.")
    if len(_unique(v["think_mode"] for v in vendors)) > 1:
        warnings.append("The runs switched thinking differently: " +
                        ", ".join(f"{v['vendor']} {v['think_mode']}" for v in vendors) + ".")
    for v in vendors:
        if not v["complete"]:
            warnings.append(f"Incomplete run: {v['vendor']} stopped early ({v['stopped'] or 'no reason recorded'}); "
                            "its verdicts cover only what finished.")
    return warnings


def _unique(values) -> list:
    seen: dict[Any, None] = {}
    for value in values:
        seen.setdefault(value, None)
    return list(seen)


def _num(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
