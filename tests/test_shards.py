"""--shard I/N and kvv merge: slices that never overlap, and a merged verdict computed over the
union of the items, equal to the one a single run gives."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from kvv.config import Settings
from kvv.plan import make_plan
from kvv.profile import load_profile

SCHEMA = json.loads((Path(__file__).parent.parent / "kvv" / "schemas" / "results.schema.json").read_text())
CHECKS = "tool-schema,tool-choice,prompt-tokens,reasoning-history"


def _plan(shard=None, suite="tools", only=()):
    profile = load_profile("kimi-k3")
    return make_plan(Settings(suite=suite, shard=shard, only=list(only)), profile, "kimi-k3", "kimi")


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_are_disjoint_and_cover_the_plan(count):
    whole_plan = _plan()
    whole = {p.check.id: [i.id for i in p.items] for p in whole_plan.checks}
    seen: dict[str, list[int]] = {check_id: [] for check_id in whole}
    for index in range(1, count + 1):
        plan = _plan((index, count))
        for planned in plan.checks:
            assert [whole[planned.check.id][p] for p in planned.positions] == [i.id for i in planned.items]
            seen[planned.check.id] += planned.positions
        for check_id, why in plan.skipped.items():
            assert why == whole_plan.skipped.get(check_id) or why.startswith(f"shard {index}/{count} holds none")
    for check_id, positions in seen.items():
        assert sorted(positions) == list(range(len(whole[check_id]))), check_id


def test_a_slice_does_not_depend_on_what_else_the_run_holds():
    alone = [i.id for p in _plan((2, 3), only=["tool-choice"]).checks for i in p.items]
    among = [i.id for p in _plan((2, 3)).checks if p.check.id == "tool-choice" for i in p.items]
    assert alone == among and alone
    sizes = [sum(len(p.items) for p in _plan((i, 3)).checks) for i in (1, 2, 3)]
    assert min(sizes) > 0.6 * max(sizes), sizes        # spread by id, not lumped


def _shards(kvv, count, *args):
    runs = [kvv("run", "--simulate", "--only", CHECKS, "--shard", f"{i}/{count}", *args, out=f"shard{i}")
            for i in range(1, count + 1)]
    for run in runs:
        assert run.results["shard"]["count"] == count, run.output
    return runs


def test_merged_shards_give_the_verdicts_and_bounds_of_one_run(kvv, tmp_path):
    whole = kvv("run", "--simulate", "--only", CHECKS, out="whole")
    _shards(kvv, 3)
    merged = kvv("merge", *(str(tmp_path / f"shard{i}") for i in (1, 2, 3)), "--output-dir", str(tmp_path / "m"))
    assert merged.exit_code == 0, merged.output
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(results)
    assert results["complete"] and results["shard"] is None
    assert results["totals"]["errors"]["internal"] == 0 and results["notes"] == whole.results["notes"]
    assert [m["index"] for m in results["merged_from"]] == [1, 2, 3]
    for a, b in zip(whole.results["checks"], results["checks"], strict=True):
        assert (a["id"], a["verdict"], a["n"], a["planned"], a["metric"]) == \
               (b["id"], b["verdict"], b["n"], b["planned"], b["metric"])
        assert [i["id"] for i in a["items"]] == [i["id"] for i in b["items"]]
    for key in ("items", "requests", "prompt_tokens", "completion_tokens"):
        assert results["totals"][key] == whole.results["totals"][key]
    for name in ("summary.md", "kvv.sarif"):
        assert (tmp_path / "m" / name).is_file()
    assert not (tmp_path / "m" / "journal.jsonl").exists()
    # Re-rendering the merged document gives what merge wrote.
    again = kvv("report", str(tmp_path / "m"), "--format", "sarif")
    assert again.output == (tmp_path / "m" / "kvv.sarif").read_text()


def test_a_fault_is_named_after_the_merge(kvv, tmp_path):
    runs = _shards(kvv, 2, "--sim-fault", "tool-args-invalid=0.5", "--fail-on", "never")
    assert all(r.exit_code == 0 for r in runs)
    kept = kvv("merge", *(str(r.out) for r in runs), "--output-dir", str(tmp_path / "kept"))
    assert kept.exit_code == 0, kept.output              # the shards' fail-on: never
    merged = kvv("merge", *(str(r.out) for r in runs), "--output-dir", str(tmp_path / "m"), "--fail-on", "fail")
    assert merged.exit_code == 1, merged.output
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    verdicts = {c["id"]: c["verdict"] for c in results["checks"]}
    assert verdicts["tool-schema"] == "fail"
    assert {v for k, v in verdicts.items() if k != "tool-schema"} == {"pass"}
    schema = next(c for c in results["checks"] if c["id"] == "tool-schema")
    assert schema["evidence"] and schema["failed"] == sum(
        next(c for c in r.results["checks"] if c["id"] == "tool-schema")["failed"] for r in runs)


def test_a_missing_shard_leaves_the_result_incomplete(kvv, tmp_path):
    runs = _shards(kvv, 3)
    merged = kvv("merge", str(runs[0].out), str(runs[2].out), "--output-dir", str(tmp_path / "m"))
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    assert merged.exit_code == 3, merged.output
    assert results["verdict"] == "error" and not results["complete"]
    assert "shard(s) 2/3 missing" in results["stopped"]


def _message(run) -> str:
    return run.output + (run.stderr or "")


def test_what_is_not_a_set_of_shards_is_refused(kvv, tmp_path):
    runs = _shards(kvv, 2)
    other = kvv("run", "--simulate", "--only", CHECKS, "--shard", "1/2", "--sim-fault", "ignore-temperature",
                out="other")
    whole = kvv("run", "--simulate", "--only", CHECKS, out="whole")
    three = kvv("run", "--simulate", "--only", CHECKS, "--shard", "1/3", out="three")
    cases = [
        ([runs[0].out, runs[0].out / "results.json"], "given twice"),
        ([runs[1].out, other.out], "another run"),
        ([runs[0].out, whole.out], "is not a shard"),
        ([runs[0].out, three.out], "different splits"),
        ([runs[0].out, tmp_path], "no results.json in this directory"),
    ]
    for sources, expected in cases:
        refused = kvv("merge", *map(str, sources), "--output-dir", str(tmp_path / "m"))
        assert refused.exit_code == 2, (expected, refused.output)
        assert expected in _message(refused), (expected, _message(refused))
    into_shard = kvv("merge", str(runs[0].out), str(runs[1].out), "--output-dir", str(runs[0].out))
    assert into_shard.exit_code == 2 and "overwrite" in _message(into_shard)


@pytest.mark.parametrize("value", ["0/2", "3/2", "two", "1/0", "1/2/3"])
def test_a_bad_shard_is_a_usage_error(kvv, value):
    run = kvv("run", "--simulate", "--shard", value)
    assert run.exit_code == 2
    assert "I/N" in _message(run)


def test_resume_refuses_another_shard(kvv):
    first = kvv("run", "--simulate", "--only", "tool-choice", "--shard", "1/2", out="s")
    assert first.exit_code == 0
    again = kvv("run", "--simulate", "--only", "tool-choice", "--shard", "2/2", "--resume",
                "--output-dir", str(first.out), out="s")
    assert again.exit_code == 2
    assert "shard: [1, 2] → [2, 2]" in _message(again)
