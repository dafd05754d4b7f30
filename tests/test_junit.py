"""JUnit XML: structure CI readers rely on, counts that agree with the results, hostile text."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from xml.etree import ElementTree as ET

from kvv.report import junit

FIXTURES = Path(__file__).parent / "fixtures"
COUNTS = ("tests", "failures", "errors", "skipped")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"results-{name}.json").read_text(encoding="utf-8"))


def parse(results: dict) -> ET.Element:
    text = junit.render(results)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites ')
    return ET.fromstring(text.encode("utf-8"))


def assert_well_formed(root: ET.Element) -> None:
    """What GitLab and Jenkins read: string attributes, counts that add up, a classname and
    name on every testcase, at most one outcome element each."""
    assert root.tag == "testsuites" and root.get("name") == "kvv"
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        assert suite.get("name") and float(suite.get("time")) >= 0
        assert int(suite.get("tests")) == len(cases)
        for tag, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            assert int(suite.get(key)) == sum(1 for c in cases if c.find(tag) is not None)
        for case in cases:
            assert case.get("classname") == f"kvv.{suite.get('name')}" and case.get("name")
            assert float(case.get("time")) >= 0
            assert sum(case.find(tag) is not None for tag in ("failure", "error", "skipped")) <= 1
    for key in COUNTS:
        assert int(root.get(key)) == sum(int(s.get(key)) for s in root.findall("testsuite"))


def outcome(case: ET.Element) -> str:
    return next((tag for tag in ("failure", "error", "skipped") if case.find(tag) is not None), "pass")


def test_one_suite_per_check_one_testcase_per_item():
    results = fixture("fail")
    root = parse(results)
    assert_well_formed(root)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [c["id"] for c in results["checks"]]
    for suite, check in zip(suites, results["checks"], strict=True):
        assert [c.get("name") for c in suite.findall("testcase")] == [i["id"] for i in check["items"]]
        assert [outcome(c) for c in suite.findall("testcase")] == \
            [{"pass": "pass", "fail": "failure"}[i["verdict"]] for i in check["items"]]
    assert root.get("failures") == str(sum(i["verdict"] == "fail" for c in results["checks"] for i in c["items"]))
    assert root.get("tests") == str(sum(len(c["items"]) for c in results["checks"]))
    assert root.get("time") == f"{results['duration_s']:.3f}"


def test_properties_and_timestamp():
    results = fixture("fail")
    suite = parse(results).find("testsuite")
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    metric = results["checks"][0]["metric"]
    assert properties["verdict"] == "fail" and properties["metric"] == metric["name"]
    assert properties["value"] == str(metric["value"]) and properties["lower"] == str(metric["lower"])
    assert properties["upper"] == str(metric["upper"])
    assert properties["model"] == "kimi-k3" and properties["profile"] == "kimi-k3"
    assert suite.get("timestamp") == results["started_at"].removesuffix("Z")
    assert suite.get("hostname") == "127.0.0.1:8123"


def test_a_failure_carries_the_message_and_the_curl_line():
    results = fixture("fail")
    check = results["checks"][0]
    evidence = check["evidence"][0]
    case = next(c for c in parse(results).iter("testcase") if c.get("name") == evidence["item"])
    failure = case.find("failure")
    item = next(i for i in check["items"] if i["id"] == evidence["item"])
    assert failure.get("message") == " ".join(item["message"].split())
    assert failure.get("type") == "fail"
    assert item["message"] in failure.text and evidence["curl"] in failure.text
    other = next(c for c in parse(results).iter("testcase")
                 if c.find("failure") is not None and c.get("name") != evidence["item"])
    assert "Reproduce" not in (other.find("failure").text or "")


def test_errors_and_a_check_level_verdict():
    results = fixture("error")
    root = parse(results)
    assert_well_formed(root)
    by_suite = {s.get("name"): s for s in root.findall("testsuite")}
    assert [outcome(c) for c in by_suite["param-top-p"].findall("testcase")] == ["pass", "error"]
    assert by_suite["stream-done"].find("testcase/error").get("type") == "error"
    # inconclusive although every item passed: a `verdict` testcase says so, never green
    cases = by_suite["temperature-effect"].findall("testcase")
    assert [c.get("name") for c in cases][-1] == "verdict" and len(cases) == 3
    assert outcome(cases[-1]) == "skipped" and "inconclusive" in cases[-1].find("skipped").get("message")
    # ... and a failure when inconclusive breaks the build
    results["fail_on"] = "inconclusive"
    cases = {s.get("name"): s for s in parse(results).findall("testsuite")}["temperature-effect"]
    assert outcome(cases.findall("testcase")[-1]) == "failure"


def test_a_statistical_check_reports_its_verdict_not_its_samples():
    results = fixture("pass")
    bench = copy.deepcopy(results["checks"][0])
    bench.update(id="ocrbench", verdict="fail", message="accuracy 0.70 is below the reference 0.89 − 0.05")
    for item in bench["items"][:5]:
        item.update(verdict="fail", message="wrong answer")
    results["checks"] = [bench]
    results["verdict"] = "fail"
    root = parse(results)
    assert_well_formed(root)
    cases = root.findall("testsuite/testcase")
    assert len(cases) == len(bench["items"]) + 1
    assert [outcome(c) for c in cases[:-1]] == ["pass"] * len(bench["items"])
    assert cases[0].find("system-out").text == "fail: wrong answer"
    assert cases[-1].get("name") == "verdict" and cases[-1].find("failure").get("message") == bench["message"]
    assert root.get("failures") == "1"
    # passing, the same samples stay samples: the suite is green
    bench["verdict"], results["verdict"] = "pass", "pass"
    root = parse(results)
    assert root.get("failures") == "0" and root.findall("testsuite/testcase")[-1].find("system-out") is not None


def test_not_run_checks_are_skipped_testcases_with_the_reason():
    results = fixture("pass")
    results["not_run"] = [{"id": "aime2025", "title": "AIME", "reason": "profile runs no aime2025"},
                          {"id": "ocrbench", "title": "OCR", "reason": "gated: param-n failed"}]
    root = parse(results)
    assert_well_formed(root)
    skipped = [s for s in root.findall("testsuite") if s.get("skipped") != "0"]
    assert [s.get("name") for s in skipped] == ["aime2025", "ocrbench"]
    assert [s.find("testcase/skipped").get("message") for s in skipped] == \
        ["profile runs no aime2025", "gated: param-n failed"]
    assert root.get("skipped") == "2"


def test_control_characters_and_markup_from_the_vendor_stay_text():
    results = fixture("fail")
    hostile = "bad\x00 \x1b[31mred\x1b[0m ]]> <b>&amp; \x7f \ud800 end"
    results["checks"][0]["items"][6]["message"] = hostile
    results["checks"][0]["items"][6]["id"] = "item \x01 <x>"
    results["checks"][0]["evidence"][0]["curl"] += " \x1b]0;title\x07"
    text = junit.render(results)
    root = ET.fromstring(text.encode("utf-8"))       # parses: nothing XML 1.0 forbids is left
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]", text)
    failure = next(c for c in root.iter("testcase") if c.get("name") == "item \ufffd <x>").find("failure")
    assert "]]> <b>&amp;" in failure.text and "\ufffd[31mred" in failure.text
    assert "<b>" not in text and "]]>" not in text


def test_the_same_results_give_the_same_bytes():
    assert junit.render(fixture("error")) == junit.render(copy.deepcopy(fixture("error")))


def test_a_real_run_matches_its_results_and_kvv_report_re_renders_it(kvv, tmp_path):
    run = kvv("run", "--simulate", "--sim-fault", "ignore-temperature")
    assert run.exit_code == 1, run.output
    root = ET.fromstring((run.out / "junit.xml").read_bytes())
    assert_well_formed(root)
    results = run.results
    items = [i for c in results["checks"] for i in c["items"] if not junit.statistical(c)]
    assert int(root.get("failures")) >= sum(i["verdict"] == "fail" for i in items) > 0
    assert {s.get("name") for s in root.findall("testsuite") if s.get("failures") != "0"} == \
        {c["id"] for c in results["checks"] if c["verdict"] == "fail"}
    again = kvv("report", str(run.out), "--format", "junit", "--output", str(tmp_path / "junit.xml"))
    assert again.exit_code == 0, again.output
    assert (tmp_path / "junit.xml").read_bytes() == (run.out / "junit.xml").read_bytes()


def test_a_stopped_run_is_an_error_of_its_own():
    results = fixture("pass")
    results.update(complete=False, stopped="endpoint unusable (connection): refused \x1b[0m", verdict="error")
    root = parse(results)
    assert_well_formed(root)
    suite = root.findall("testsuite")[-1]
    assert suite.get("name") == "run" and suite.get("errors") == "1"
    error = suite.find("testcase/error")
    assert error.get("type") == "stopped" and "endpoint unusable (connection): refused" in error.get("message")
    assert root.get("errors") == "1"
    assert "run" not in {s.get("name") for s in parse(fixture("pass")).findall("testsuite")}
