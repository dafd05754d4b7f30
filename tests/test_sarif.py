"""SARIF 2.1.0 that the official schema and GitHub's ingestion rules accept, and `kvv report`
re-rendering results.json byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from kvv.report import sarif

FIXTURES = Path(__file__).parent / "fixtures"
VALIDATOR = jsonschema.Draft4Validator(json.loads((FIXTURES / "sarif" / "sarif-schema-2.1.0.json").read_text()))


def document(run) -> dict:
    doc = json.loads((run.out / "kvv.sarif").read_text())
    VALIDATOR.validate(doc)
    return doc


def assert_github_accepts(doc: dict) -> None:
    """What code scanning requires beyond the schema (github-action.md §2.1)."""
    assert doc["version"] == "2.1.0" and len(doc["runs"]) == 1
    run = doc["runs"][0]
    assert run["tool"]["driver"]["name"] == "kvv" and run["tool"]["driver"]["informationUri"]
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    for rule in run["tool"]["driver"]["rules"]:
        assert all(rule[k]["text"] for k in ("shortDescription", "fullDescription", "help"))
        assert len(rule["shortDescription"]["text"]) <= 1024 and len(rule["properties"]["tags"]) <= 20
    for result in run["results"]:
        assert result["ruleId"] in rule_ids and result["message"]["text"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] and location["region"]["startLine"] >= 1
        assert result["partialFingerprints"]["primaryLocationLineHash"]


def test_a_failing_check_is_an_error_anchored_to_action_yml_without_a_config(kvv, simulator):
    run = kvv("run", "--base-url", simulator("kimi-k3", "ignore-temperature").url, "--model", "kimi-k3")
    doc = document(run)
    assert_github_accepts(doc)
    results = doc["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["param-temperature"]
    assert results[0]["level"] == "error"
    assert results[0]["locations"][0]["physicalLocation"] == {"artifactLocation": {"uri": "action.yml"},
                                                               "region": {"startLine": 1}}
    assert {r["id"] for r in doc["runs"][0]["tool"]["driver"]["rules"]} == set(run.verdicts())


def test_findings_point_at_the_checks_line_in_the_config(kvv, simulator, tmp_path):
    config = tmp_path / "kvv.yaml"
    config.write_text("profile: kimi-k3\nchecks:\n  max-tokens-applied: {limit: 5}\n  param-temperature: {}\n")
    run = kvv("run", "--config", str(config), "--base-url", simulator("kimi-k3", "ignore-temperature").url,
              "--model", "kimi-k3")
    location = document(run)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == config.as_posix() and location["region"]["startLine"] == 4


def test_without_a_config_in_a_workflow_they_point_at_the_step_that_runs_kvv(kvv, simulator, tmp_path):
    workflow = tmp_path / ".github" / "workflows" / "verify.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text("on: push\njobs:\n  verify:\n    steps:\n      - uses: actions/checkout@v4\n"
                        "      - uses: kvv-dev/kvv@v0\n        with: {simulate: true}\n")
    env = {"GITHUB_WORKFLOW_REF": "octo/app/.github/workflows/verify.yml@refs/heads/main",
           "GITHUB_WORKSPACE": str(tmp_path)}
    run = kvv("run", "--base-url", simulator("kimi-k3", "ignore-temperature").url, "--model", "kimi-k3", env=env)
    location = document(run)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": ".github/workflows/verify.yml"}, "region": {"startLine": 6}}


def test_fingerprints_are_stable_across_runs_and_endpoints(kvv, simulator):
    first = kvv("run", "--base-url", simulator("kimi-k3", "ignore-temperature").url, "--model", "kimi-k3", out="a")
    second = kvv("run", "--base-url", simulator("kimi-k3", "ignore-temperature").url, "--model", "kimi-k3", out="b")
    prints = [[r["partialFingerprints"] for r in document(run)["runs"][0]["results"]] for run in (first, second)]
    assert prints[0] == prints[1] and prints[0]


def test_levels_follow_the_verdict():
    results = json.loads((FIXTURES / "results-error.json").read_text())
    doc = json.loads(sarif.render(results))
    VALIDATOR.validate(doc)
    levels = {r["ruleId"]: r["level"] for r in doc["runs"][0]["results"]}
    verdicts = {c["id"]: c["verdict"] for c in results["checks"]}
    assert levels == {cid: {"fail": "error", "error": "warning", "inconclusive": "note"}[v]
                      for cid, v in verdicts.items() if v != "pass"}


def test_kvv_report_re_renders_byte_for_byte(kvv, simulator, tmp_path):
    run = kvv("run", "--base-url", simulator("kimi-k3", "ignore-temperature").url, "--model", "kimi-k3")
    for form, name in (("sarif", "kvv.sarif"), ("markdown", "summary.md")):
        again = kvv("report", str(run.out), "--format", form, "--output", str(tmp_path / name))
        assert again.exit_code == 0, again.output
        assert (tmp_path / name).read_bytes() == (run.out / name).read_bytes()
    terminal = kvv("report", str(run.out / "results.json"), "--format", "terminal")
    assert terminal.exit_code == 0 and "param-temperature" in terminal.output
    (tmp_path / "bad.json").write_text("{not json")
    bad = kvv("report", str(tmp_path / "bad.json"))
    assert bad.exit_code == 2 and "not a results.json" in bad.stderr


def test_annotations_use_the_same_anchor(kvv, simulator, tmp_path):
    from kvv.report import github

    workflow = tmp_path / ".github" / "workflows" / "verify.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text("jobs:\n  verify:\n    steps:\n      - uses: kvv-dev/kvv@v0\n")
    env = {"GITHUB_WORKFLOW_REF": "octo/app/.github/workflows/verify.yml@refs/tags/v1",
           "GITHUB_WORKSPACE": str(tmp_path)}
    run = kvv("run", "--base-url", simulator("kimi-k3", "ignore-temperature").url, "--model", "kimi-k3", env=env)
    lines = github.annotations(run.results)
    assert lines and lines[0].startswith("::error title=kvv param-temperature%3A FAIL,")
    assert ",file=.github/workflows/verify.yml,line=4::" in lines[0]


def test_each_failing_item_points_at_its_line_of_the_case_file(kvv, simulator, tmp_path):
    builtin = (Path(__file__).parent.parent / "kvv" / "data" / "prompt-token-cases.jsonl").read_text().splitlines()
    cases = tmp_path / "cases" / "prompt-tokens.jsonl"
    cases.parent.mkdir()
    cases.write_text("\n".join([builtin[0], "", builtin[1], builtin[2]]) + "\n")
    url = simulator("kimi-k3", "usage-off=5").url
    run = kvv("run", "--base-url", url, "--model", "kimi-k3", "--only", "prompt-tokens", "--cases", str(cases),
              env={"GITHUB_WORKSPACE": str(tmp_path)})
    assert run.verdicts() == {"prompt-tokens": "fail"}
    doc = document(run)
    assert_github_accepts(doc)
    per_item = [r for r in doc["runs"][0]["results"] if "item" in r["properties"]]
    located = [(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in per_item]
    assert located == [("cases/prompt-tokens.jsonl", line) for line in (1, 3, 4)]
    assert len({r["partialFingerprints"]["kvvFinding/v1"] for r in per_item}) == 3
    # A case file outside the repository has no line code scanning could show.
    outside = kvv("run", "--base-url", url, "--model", "kimi-k3", "--only", "prompt-tokens", "--cases", str(cases),
                  env={"GITHUB_WORKSPACE": str(tmp_path / "elsewhere")}, out="outside")
    assert [r for r in document(outside)["runs"][0]["results"] if "item" in r["properties"]] == []
