"""`kvv ingest swe-bench`: a SWE-bench / DeepSWE report becomes a kvv check that merges and
renders like a run's, judged by the benchmarks' anytime-valid test; bad reports exit 2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import pytest

from test_sarif import VALIDATOR as SARIF_VALIDATOR, assert_github_accepts

FIXTURES = Path(__file__).parent / "fixtures" / "swe-bench"
SCHEMA = json.loads((Path(__file__).parent.parent / "kvv" / "schemas" / "results.schema.json").read_text())
RESULTS = jsonschema.Draft202012Validator(SCHEMA)
NEAR = FIXTURES / "kimi-k3.near-reference.json"           # 76/113 = 0.673 against Moonshot's 0.675
BROKEN = FIXTURES / "kimi-k3.broken.json"                 # 25/113 = 0.221
HARNESS_ERRORS = FIXTURES / "kimi-k3.harness-errors.json"  # 80 of 113 instances errored


def ingest(kvv, report, *args, out="ingested"):
    run = kvv("ingest", "swe-bench", str(report), "--output-dir", str(Path(kvv.tmp) / out), *args)
    run.out = Path(kvv.tmp) / out
    return run


@pytest.fixture
def kvv(kvv, tmp_path):
    kvv.tmp = tmp_path
    return kvv


def check(run) -> dict:
    RESULTS.validate(run.results)
    [entry] = [c for c in run.results["checks"] if c["id"] == "swe-bench"]
    return entry


# -- the harness's run report ----------------------------------------------------------------

def test_a_report_near_the_reference_is_never_a_fail(kvv):
    run = ingest(kvv, NEAR)
    assert run.exit_code == 0, run.stderr
    entry = check(run)
    assert entry["verdict"] in ("pass", "inconclusive")
    assert entry["metric"]["name"] == "solve_rate" and entry["metric"]["value"] == round(76 / 113, 4)
    assert entry["metric"]["reference"] == 0.675 and entry["metric"]["reference_n"] == 113
    assert entry["metric"]["tolerance"] == 0.05 and entry["metric"]["certifiable_margin"] > 0
    assert {k: entry["details"][k] for k in ("resolved", "unresolved", "empty_patch", "error", "incomplete")} == \
        {"resolved": 76, "unresolved": 30, "empty_patch": 3, "error": 3, "incomplete": 1}
    # one item per instance, with its id and what the harness said of it
    report = json.loads(NEAR.read_text())
    items = {i["id"]: i for i in entry["items"]}
    assert len(items) == 113 and (entry["passed"], entry["failed"], entry["errored"]) == (76, 33, 4)
    assert all(items[i]["verdict"] == "pass" for i in report["resolved_ids"])
    assert all(items[i]["verdict"] == "fail" for i in report["unresolved_ids"] + report["empty_patch_ids"])
    assert all(items[i]["verdict"] == "error" for i in report["error_ids"] + report["incomplete_ids"])
    assert "4 errored or not run, counted unresolved" in entry["message"]


def test_the_record_names_the_report_and_says_nothing_was_sent(kvv):
    results = ingest(kvv, NEAR).results
    [source] = results["ingested"]
    assert source["path"] == str(NEAR) and source["sha256"] == hashlib.sha256(NEAR.read_bytes()).hexdigest()
    assert source["kind"] == "SWE-bench harness report" and source["requests_sent"] == 0
    # the harness names its report <model>.<run_id>.json
    assert results["target"]["model"] == source["model"] == "kimi-k3"
    assert results["target"]["profile"] == "kimi-k3" and results["run"]["ingest"] == "swe-bench"
    assert results["totals"]["requests"] == 0 and results["totals"]["attempts"] == 0
    assert any("sent no request" in note for note in results["notes"])
    out = kvv("report", str(ingest(kvv, NEAR, out="again").out), "--format", "markdown").output
    assert "kimi-k3 at a harness report (ingested)" in out     # no endpoint to name


def test_a_much_lower_solve_rate_fails(kvv):
    run = ingest(kvv, BROKEN, "--model", "kimi-k3")
    assert run.exit_code == 1, run.output
    entry = check(run)
    assert entry["verdict"] == "fail" and entry["metric"]["value"] == round(25 / 113, 4)
    assert entry["message"].startswith("FAIL over 113 instances: solve rate ≤")
    assert run.results["verdict"] == "fail" and run.results["exit_code"] == 1


def test_fail_on_decides_the_exit_code(kvv):
    assert ingest(kvv, NEAR, "--fail-on", "inconclusive", out="a").exit_code == 3
    assert ingest(kvv, BROKEN, "--fail-on", "never", out="b").exit_code == 0


def test_no_seed_turns_the_near_report_into_a_fail(kvv):
    """The order instances are fed in is seeded; the verdict must not hang on it."""
    verdicts = {check(ingest(kvv, NEAR, "--seed", str(seed), out=f"s{seed}"))["verdict"] for seed in range(1, 6)}
    assert "fail" not in verdicts


def test_the_seed_orders_the_items_and_nothing_else(kvv):
    runs = (("3", "a"), ("3", "b"), ("4", "c"))
    first, again, other = (check(ingest(kvv, NEAR, "--seed", s, out=o)) for s, o in runs)
    assert [i["id"] for i in first["items"]] == [i["id"] for i in again["items"]]
    assert [i["id"] for i in first["items"]] != [i["id"] for i in other["items"]]
    assert sorted(i["id"] for i in first["items"]) == sorted(i["id"] for i in other["items"])
    assert [i["position"] for i in first["items"]] == list(range(113))
    assert first["metric"]["value"] == other["metric"]["value"]


def test_a_report_where_most_instances_errored_measured_the_harness(kvv):
    run = ingest(kvv, HARNESS_ERRORS)
    entry = check(run)
    assert entry["verdict"] == "error" and run.exit_code == 3
    assert "measured the harness, not the model" in entry["message"] and entry["details"]["error"] == 80


def test_a_fail_that_rests_on_harness_errors_says_so(kvv, tmp_path):
    report = json.loads(NEAR.read_text())
    # 30 resolved, 30 errored, the rest unresolved: errors as 0 fail it; as unknown they would not
    ids = sorted(report["resolved_ids"] + report["unresolved_ids"] + report["empty_patch_ids"]
                 + report["error_ids"] + report["incomplete_ids"])
    path = tmp_path / "kimi-k3.r1.json"
    path.write_text(json.dumps({"total_instances": 113, "resolved_ids": ids[:30], "error_ids": ids[30:60],
                                "unresolved_ids": ids[60:], "schema_version": 2}))
    entry = check(ingest(kvv, path))
    assert entry["verdict"] == "fail" and entry["details"].get("fail_rests_on_errors") is True
    assert "rests on them" in entry["message"]


# -- the other formats -----------------------------------------------------------------------

def test_a_per_instance_report(kvv):
    entry = check(ingest(kvv, FIXTURES / "report.json"))
    data = json.loads((FIXTURES / "report.json").read_text())
    verdicts = {i["id"]: i["verdict"] for i in entry["items"]}
    assert verdicts == {k: "pass" if v["resolved"] else "fail" for k, v in data.items()}
    empty = next(k for k, v in data.items() if v["patch_is_None"])
    assert "empty patch" in next(i["message"] for i in entry["items"] if i["id"] == empty)
    assert entry["metric"]["value"] == round(4 / 6, 4) and entry["verdict"] == "inconclusive"


def test_the_harness_log_directory(kvv, tmp_path):
    data = json.loads((FIXTURES / "report.json").read_text())
    root = tmp_path / "logs" / "run_evaluation" / "r1" / "openai__kimi-k3"
    for instance_id, entry in data.items():
        (root / instance_id).mkdir(parents=True)
        (root / instance_id / "report.json").write_text(json.dumps({instance_id: entry}))
    (root / "sympy__sympy-99999").mkdir()
    (root / "sympy__sympy-99999" / "report.json").write_text("")     # the harness counts it an error
    run = ingest(kvv, root)
    entry = check(run)
    verdicts = {i["id"]: i["verdict"] for i in entry["items"]}
    assert len(verdicts) == 7 and verdicts["sympy__sympy-99999"] == "error"
    assert run.results["target"]["model"] == "openai/kimi-k3"
    assert run.results["ingested"][0]["kind"] == "SWE-bench per-instance reports"


def test_deep_swe_analysis_records(kvv):
    run = ingest(kvv, FIXTURES / "deep-swe-analysis.json")
    entry = check(run)
    records = json.loads((FIXTURES / "deep-swe-analysis.json").read_text())
    assert run.results["ingested"][0]["kind"] == "DeepSWE results" and len(entry["items"]) == 113
    assert entry["metric"]["value"] == round(sum(r["reward"] == 1 for r in records) / 113, 4)
    assert entry["verdict"] in ("pass", "inconclusive") and entry["errored"] == 3
    timeouts = {r["task"] for r in records if r["mode"] == "timeout"}
    assert all("timeout" in i["message"] and i["verdict"] == "fail" for i in entry["items"] if i["id"] in timeouts)


def test_json_lines_task_results(kvv):
    entry = check(ingest(kvv, FIXTURES / "results.jsonl"))
    assert len(entry["items"]) == 20 and entry["passed"] == 15 and entry["metric"]["value"] == 0.75


def test_json_lines_of_one_task(kvv, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"instance_id": "django__django-11099", "resolved": false}\n')
    entry = check(ingest(kvv, path))
    assert [(i["id"], i["verdict"]) for i in entry["items"]] == [("django__django-11099", "fail")]


def test_without_a_reference_it_is_measured_not_judged(kvv):
    run = ingest(kvv, BROKEN, "--profile", "generic")
    entry = check(run)
    assert entry["verdict"] == "inconclusive" and entry["message"].startswith("measured, not judged")
    assert entry["metric"]["value"] == round(25 / 113, 4) and run.exit_code == 0


def test_a_reference_given_judges_under_any_profile(kvv):
    run = ingest(kvv, BROKEN, "--profile", "generic", "--reference", "0.675", "--reference-n", "113")
    assert check(run)["verdict"] == "fail" and run.exit_code == 1


# -- bad input -------------------------------------------------------------------------------

def _write(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


BAD = {
    "not-json.json": ("{ resolved_ids: [", ["not JSON"]),
    "a-number.json": ("113", ["expected a JSON object"]),
    "empty-file.json": ("", ["empty file"]),
    "twice.json": ({"total_instances": 2, "resolved_ids": ["a__a-1"], "unresolved_ids": ["a__a-2"],
                    "error_ids": ["a__a-1"]}, ["error_ids", "'a__a-1' is also in resolved_ids"]),
    "empty.json": ({"total_instances": 0, "resolved_ids": []}, ["total_instances", "no instances"]),
    "short.json": ({"total_instances": 5, "resolved_ids": ["a__a-1"]}, ["total_instances", "name 1 instances"]),
    "count.json": ({"total_instances": 1, "resolved_instances": 2, "resolved_ids": ["a__a-1"]},
                   ["resolved_instances", "says 2"]),
    "ids.json": ({"total_instances": 1, "resolved_ids": "a__a-1"}, ["resolved_ids", "list of instance ids"]),
    "total.json": ({"total_instances": "113", "resolved_ids": []}, ["total_instances"]),
    "no-resolved.json": ({"total_instances": 3, "error_ids": ["a", "b", "c"]}, ["resolved_ids", "missing"]),
    "per-instance.json": ({"a__a-1": {"resolved": "yes"}}, ["a__a-1.resolved", "true or false"]),
    "shape.json": ({"a__a-1": 1}, ["a__a-1", "expected an object"]),
    "empty-dict.json": ({}, ["empty report"]),
    "empty-list.json": ([], ["empty list"]),
    "no-id.json": ([{"resolved": True}], ["[0]", "no task id"]),
    "no-outcome.json": ([{"task_id": "t1"}], ["[0]", "no outcome"]),
    "reward.json": ([{"task": "t1", "reward": 2}], ["[0].reward", "[0, 1]"]),
    "mode.json": ([{"task": "t1", "mode": "great", "reward": 1}], ["[0].mode", "unknown mode"]),
    "dupe.json": ([{"task": "t1", "solved": True}, {"task": "t1", "solved": False}], ["[1]", "also at [0]"]),
    "lines.jsonl": ('{"task": "t1", "solved": true}\n{"task": \n', ["line 2", "not JSON"]),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_reports_exit_2_naming_the_file_and_field(kvv, tmp_path, name):
    content, fragments = BAD[name]
    path = _write(tmp_path, name, content)
    run = ingest(kvv, path)
    assert run.exit_code == 2, (run.output, run.stderr, run.exception)
    assert "Traceback" not in run.output + run.stderr and str(path) in run.stderr
    for fragment in fragments:
        assert fragment in run.stderr, run.stderr
    assert not (tmp_path / "ingested" / "results.json").exists()


def test_a_missing_report_exits_2(kvv, tmp_path):
    run = ingest(kvv, tmp_path / "nowhere.json")
    assert run.exit_code == 2 and "nowhere.json: no such file" in run.stderr


def test_an_empty_directory_exits_2(kvv, tmp_path):
    (tmp_path / "logs").mkdir()
    run = ingest(kvv, tmp_path / "logs")
    assert run.exit_code == 2 and "no report.json under this directory" in run.stderr


def test_reference_n_without_a_reference_exits_2(kvv):
    run = ingest(kvv, NEAR, "--profile", "generic", "--reference-n", "113")
    assert run.exit_code == 2 and "--reference-n" in run.stderr


def test_it_will_not_overwrite_a_runs_results(kvv, tmp_path):
    assert kvv("run", "--simulate", "--only", "baseline", out="run").exit_code == 0
    before = (tmp_path / "run" / "results.json").read_text()
    run = ingest(kvv, NEAR, out="run")
    assert run.exit_code == 2 and "--output-dir" in run.stderr and "kvv merge" in run.stderr
    assert (tmp_path / "run" / "results.json").read_text() == before
    assert ingest(kvv, NEAR, out="again").exit_code == 0 and ingest(kvv, BROKEN, out="again").exit_code == 1


# -- merge and reports -----------------------------------------------------------------------

def test_merged_with_a_simulated_run_one_result_holds_both(kvv, tmp_path):
    assert kvv("run", "--simulate", out="run").exit_code == 0
    assert ingest(kvv, BROKEN).exit_code == 1
    merged = kvv("merge", str(tmp_path / "run"), str(tmp_path / "ingested"), "--output-dir", str(tmp_path / "merged"))
    merged.out = tmp_path / "merged"
    results = merged.results
    RESULTS.validate(results)
    ran = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [c["id"] for c in results["checks"]] == [c["id"] for c in ran["checks"]] + ["swe-bench"]
    assert results["verdict"] == "fail" and merged.exit_code == 1 and results["exit_code"] == 1
    assert results["target"] == ran["target"] and results["ingested"][0]["path"] == str(BROKEN)
    assert results["totals"]["items"] == ran["totals"]["items"] + 113
    assert results["totals"]["requests"] == ran["totals"]["requests"]
    assert any("swe-bench ingested from" in note and "no request sent" in note for note in results["notes"])
    # every report treats it like any other check
    sarif = json.loads((tmp_path / "merged" / "kvv.sarif").read_text())
    SARIF_VALIDATOR.validate(sarif)
    assert_github_accepts(sarif)
    assert "swe-bench" in {r["ruleId"] for r in sarif["runs"][0]["results"]}
    summary = (tmp_path / "merged" / "summary.md").read_text()
    assert "`swe-bench`" in summary and "FAIL over 113 instances" in summary
    comment = kvv("comment", str(tmp_path / "merged"), "--repo", "o/r", "--pr", "1", "--dry-run")
    assert comment.exit_code == 0 and "swe-bench" in comment.output


def test_merged_near_the_reference_keeps_the_runs_pass(kvv, tmp_path):
    assert kvv("run", "--simulate", "--only", "baseline,param-n", out="run").exit_code == 0
    assert ingest(kvv, NEAR).exit_code == 0
    merged = kvv("merge", str(tmp_path / "run"), str(tmp_path / "ingested"), "--output-dir", str(tmp_path / "m"),
                 "--fail-on", "inconclusive")
    merged.out = tmp_path / "m"
    assert merged.results["verdict"] == "inconclusive" and merged.exit_code == 3
    assert {c["id"]: c["verdict"] for c in merged.results["checks"]} == \
        {"baseline": "pass", "param-n": "pass", "swe-bench": check(merged)["verdict"]}


def test_merged_with_a_runs_shards(kvv, tmp_path):
    for i in (1, 2):
        assert kvv("run", "--simulate", "--only", "baseline,param-temperature", "--shard", f"{i}/2",
                   out=f"shard{i}").exit_code == 0
    assert ingest(kvv, NEAR).exit_code == 0
    merged = kvv("merge", str(tmp_path / "shard1"), str(tmp_path / "ingested"), str(tmp_path / "shard2"),
                 "--output-dir", str(tmp_path / "m"))
    merged.out = tmp_path / "m"
    assert merged.exit_code == 0, merged.stderr
    RESULTS.validate(merged.results)
    assert [c["id"] for c in merged.results["checks"]] == ["baseline", "param-temperature", "swe-bench"]
    assert len(merged.results["merged_from"]) == 2


def test_merge_refuses_what_does_not_belong_together(kvv, tmp_path):
    assert kvv("run", "--simulate", "--only", "baseline", out="run").exit_code == 0
    assert ingest(kvv, NEAR, out="a").exit_code == 0
    assert ingest(kvv, BROKEN, out="b").exit_code == 1
    assert ingest(kvv, NEAR, "--profile", "kimi-k2.5", out="k25").exit_code in (0, 1)

    def merge(*names):
        return kvv("merge", *(str(tmp_path / n) for n in names), "--output-dir", str(tmp_path / "m"))

    alone = merge("a")
    assert alone.exit_code == 2 and "name that run's output directory" in alone.stderr
    twice = merge("run", "a", "b")
    assert twice.exit_code == 2 and "swe-bench is in" in twice.stderr
    other = merge("run", "k25")
    assert other.exit_code == 2 and "profile kimi-k2.5" in other.stderr


@pytest.mark.parametrize("form", ["markdown", "sarif", "junit", "badge", "terminal"])
def test_every_report_renders_an_ingested_result(kvv, tmp_path, form):
    assert ingest(kvv, BROKEN).exit_code == 1
    run = kvv("report", str(tmp_path / "ingested"), "--format", form)
    assert run.exit_code == 0, run.stderr
    if form == "badge":          # the badge names no check: the verdict is what it shows
        assert json.loads(run.output)["message"] == "1/1 fail"
    else:
        assert "swe-bench" in run.output
    if form == "sarif":
        SARIF_VALIDATOR.validate(json.loads(run.output))


def test_the_help_teaches_the_command(kvv):
    top = kvv("--help")
    assert "kvv ingest swe-bench REPORT" in top.output
    group = kvv("ingest", "--help")
    assert group.exit_code == 0 and "kvv ingest swe-bench kimi-k3.r1.json" in group.output
    command = kvv("ingest", "swe-bench", "--help")
    assert "kvv merge kvv-out kvv-swe-bench" in command.output and "run_evaluation" in command.output


def test_the_fixtures_are_what_the_harness_writes():
    """make_run_report's fields (swebench/harness/reporting.py, schema_version 2)."""
    report = json.loads(NEAR.read_text())
    assert set(report) == {"total_instances", "submitted_instances", "completed_instances", "resolved_instances",
                           "unresolved_instances", "empty_patch_instances", "error_instances", "completed_ids",
                           "incomplete_ids", "empty_patch_ids", "submitted_ids", "resolved_ids", "unresolved_ids",
                           "error_ids", "schema_version"}
