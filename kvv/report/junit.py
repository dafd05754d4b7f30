"""JUnit XML of a run (junit.xml), rendered from results.json, for CI test reports.

The shape GitLab, Jenkins and most JUnit readers share: `<testsuites>` with one `<testsuite>` per
check and one `<testcase classname="kvv.<check>" name="<item>">` per item; every count and time
an attribute string.

What a testcase says must agree with kvv's verdict, or a CI page would show a run red that kvv
passed (or green one it failed):
- A check that is the worst of its items (most contract checks): each item is a testcase, a
  failing item a `<failure>`, an item kvv could not run an `<error>`.
- A check with a statistical verdict (benchmarks, thresholds: its `message` says the verdict,
  or its verdict is not simply its worst item's): single wrong answers are samples, not
  failures. Its items are testcases whose outcome is in `<system-out>`, and one more testcase,
  `verdict`, carries the check's verdict.
- `inconclusive` at check level is a `<failure>` when `fail_on` is `inconclusive` (it breaks the
  build), else `<skipped>`: undecided is neither green nor a failure.
- Every check in `not_run` is a suite with one `<skipped>` testcase holding the reason.
- A run that stopped early adds a suite `run` whose testcase `complete` is an `<error>`.

Items have no time of their own (they run concurrently), so each gets an equal share of its
check's duration; the suites' sums then match the checks'.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree as ET

from ..verdict import ERROR, FAIL, INCONCLUSIVE, PASS, worst
from .markdown import host, metric_text

MAX_TEXT = 8000               # per failure body: a curl line with a data URL can be megabytes

# XML 1.0 allows tab, newline, carriage return and U+0020 up (less surrogates and U+FFFE/FFFF);
# vendor text (model output, error bodies) can hold anything, e.g. ANSI escapes or NUL.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: Any) -> str:
    """`text` with the characters XML 1.0 forbids replaced by U+FFFD (visible, never executed)."""
    return _NOT_XML.sub("\ufffd", str(text))


def render(results: dict) -> str:
    """The JUnit document as text (deterministic: the same results give the same bytes)."""
    suites = [_suite(check, results) for check in results.get("checks", [])]
    suites += [_not_run_suite(entry, results) for entry in results.get("not_run", [])]
    if results.get("complete") is False or results.get("stopped"):
        suites.append(_stopped_suite(results))
    root = ET.Element("testsuites", _attrs(name="kvv", **_totals(suites),
                                           time=_seconds(results.get("duration_s", 0))))
    root.extend(suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def statistical(check: dict) -> bool:
    """Whether the check's verdict is its own (a test over the items), not the worst item's."""
    if check.get("message"):
        return True
    items = [i.get("verdict", ERROR) for i in check.get("items", [])]
    return check.get("verdict") != worst(items) or not items


# --- one check ---------------------------------------------------------------------------

def _suite(check: dict, results: dict) -> ET.Element:
    items = check.get("items", [])
    stat = statistical(check)
    share = check.get("duration_s", 0) / max(1, len(items) + stat)
    cases = [_item_case(check, item, share, stat) for item in items]
    if stat:
        cases.append(_verdict_case(check, results, share))
    suite = ET.Element("testsuite", _attrs(name=check["id"], **_counts(cases),
                                           time=_seconds(check.get("duration_s", 0)), **_where(results)))
    suite.append(_properties(check, results))
    suite.extend(cases)
    return suite


def _item_case(check: dict, item: dict, time: float, stat: bool) -> ET.Element:
    case = _case(check["id"], item["id"], time)
    verdict, message = item.get("verdict"), xml_safe(item.get("message", ""))
    if stat:
        if verdict != PASS:        # a sample of a statistical check: its outcome, not a failure
            ET.SubElement(case, "system-out").text = f"{verdict}: {message}"
    elif verdict == FAIL:
        ET.SubElement(case, "failure", _attrs(message=_line(message), type=FAIL)).text = \
            _body(message, _curl(check, item["id"]))
    elif verdict == ERROR:
        ET.SubElement(case, "error", _attrs(message=_line(message), type=ERROR)).text = \
            _body(message, _curl(check, item["id"]))
    return case


def _verdict_case(check: dict, results: dict, time: float) -> ET.Element:
    case = _case(check["id"], "verdict", time)
    verdict = check.get("verdict", ERROR)
    why = xml_safe(check.get("message") or f"{verdict}: {metric_text(check.get('metric'))}")
    if verdict == FAIL or (verdict == INCONCLUSIVE and results.get("fail_on") == "inconclusive"):
        ET.SubElement(case, "failure", _attrs(message=_line(why), type=verdict)).text = why
    elif verdict == ERROR:
        ET.SubElement(case, "error", _attrs(message=_line(why), type=verdict)).text = why
    elif verdict == INCONCLUSIVE:
        ET.SubElement(case, "skipped", _attrs(message=_line(why), type=verdict))
    else:
        ET.SubElement(case, "system-out").text = why
    return case


def _not_run_suite(entry: dict, results: dict) -> ET.Element:
    case = _case(entry["id"], "not run", 0)
    ET.SubElement(case, "skipped", _attrs(message=_line(xml_safe(entry.get("reason", "")))))
    suite = ET.Element("testsuite", _attrs(name=entry["id"], **_counts([case]), time=_seconds(0), **_where(results)))
    suite.append(_properties({"id": entry["id"], "verdict": "not run"}, results))
    suite.append(case)
    return suite


def _stopped_suite(results: dict) -> ET.Element:
    """A run that stopped early is an error of its own (kvv exits 3), whatever its checks say."""
    case = _case("run", "complete", 0)
    why = xml_safe(f"the run stopped early: {results.get('stopped') or 'no reason recorded'}; "
                   "the verdicts cover only what finished")
    ET.SubElement(case, "error", _attrs(message=_line(why), type="stopped")).text = why
    suite = ET.Element("testsuite", _attrs(name="run", **_counts([case]), time=_seconds(0), **_where(results)))
    suite.append(case)
    return suite


def _properties(check: dict, results: dict) -> ET.Element:
    target = results.get("target", {})
    metric = check.get("metric") or {}
    pairs = [("verdict", check.get("verdict")), ("metric", metric.get("name")), ("value", metric.get("value")),
             ("lower", metric.get("lower")), ("upper", metric.get("upper")),
             ("confidence", metric.get("confidence")), ("minimum", metric.get("minimum")),
             ("reference", metric.get("reference")), ("tolerance", metric.get("tolerance")),
             ("model", target.get("model")), ("profile", target.get("profile")),
             ("think_mode", target.get("think_mode"))]
    properties = ET.Element("properties")
    for name, value in pairs:
        if value is not None:
            ET.SubElement(properties, "property", _attrs(name=name, value=value))
    return properties


# --- helpers -----------------------------------------------------------------------------

def _case(check_id: str, name: str, time: float) -> ET.Element:
    return ET.Element("testcase", _attrs(classname=f"kvv.{check_id}", name=name, time=_seconds(time)))


def _counts(cases: list[ET.Element]) -> dict[str, int]:
    def has(tag: str) -> int:
        return sum(1 for case in cases if case.find(tag) is not None)
    return {"tests": len(cases), "failures": has("failure"), "errors": has("error"), "skipped": has("skipped")}


def _totals(suites: list[ET.Element]) -> dict[str, int]:
    return {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}


def _where(results: dict) -> dict[str, str]:
    """The suite's timestamp (the run's start, in the schema's zone-less form) and hostname
    (the endpoint's host, never its userinfo or path)."""
    target = results.get("target", {})
    where = {"hostname": "kvv-simulator" if target.get("simulated") else host(target.get("base_url"))}
    if results.get("started_at"):
        where["timestamp"] = str(results["started_at"]).removesuffix("Z")
    return where


def _curl(check: dict, item_id: str) -> str | None:
    return next((ev["curl"] for ev in check.get("evidence", []) if ev.get("item") == item_id and ev.get("curl")),
                None)


def _body(message: str, curl: str | None) -> str:
    text = message + (f"\n\nReproduce:\n{xml_safe(curl)}" if curl else "")
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


def _line(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _attrs(**values: Any) -> dict[str, str]:
    """Attributes as strings (what JUnit readers expect), XML-safe."""
    return {k: xml_safe(_text(v)) for k, v in values.items() if v is not None}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)

