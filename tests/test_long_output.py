"""The long-output probe end to end: seeded sequences the simulated vendor copies over loopback,
faults that garble or cap long outputs caught and named with the rung where they start."""

from __future__ import annotations

import json
import math
import re

import pytest

from kvv.checks.long_output import (TOKENS_PER_LINE, compare, copied_text, prompt, sequence, vocabulary)

# Small rungs keep the runs fast: the simulator's tokenizer counts 9 tokens a line (8 words and
# the number; kvv's estimate says 11), so these are ≈ 105, 423 and 1,674 tokens long.
RUNGS = [128, 512, 2048]


def config(tmp_path, rungs=RUNGS, **more) -> str:
    path = tmp_path / "kvv.yaml"
    path.write_text("checks:\n  long-output: " + json.dumps({"rungs": rungs, **more}) + "\n")
    return str(path)


def probe(run) -> dict:
    return run.check("long-output")


def test_a_healthy_vendor_copies_every_rung_exactly(kvv, tmp_path):
    run = kvv("run", "--simulate", "--only", "long-output", "--config", config(tmp_path))
    assert run.exit_code == 0, run.output
    check = probe(run)
    assert check["verdict"] == "pass", check["message"]
    assert [row["rung"] for row in check["details"]["rungs"]] == ["128 tokens", "512 tokens", "2k tokens"]
    assert all(row["verdict"] == "pass" for row in check["details"]["rungs"])
    kinds = check["details"]["kinds"]
    assert all(k["exact"] > 0 and k["truncated"] == k["corrupted"] == k["no answer"] == 0 for k in kinds.values())
    item = check["items"][0]["data"]
    assert item["kind"] == "exact" and item["lines_right"] == 1.0 and item["finish_reason"] == "stop"
    assert item["stream"] is True and check["items"][3]["data"]["stream"] is False   # one streamed item per rung
    assert check["stopped_early"] is True and "all" in check["message"] and "copies exact" in check["message"]


def test_corruption_after_n_tokens_is_named_at_the_first_rung_above_n(kvv, tmp_path):
    run = kvv("run", "--simulate", "--only", "long-output", "--config", config(tmp_path),
              "--sim-fault", "long-output-corrupt=700")
    assert run.exit_code == 1, run.output
    check = probe(run)
    assert check["verdict"] == "fail" and check["details"]["breaks_at"] == "2k tokens"
    message = check["message"]
    assert message.startswith("FAIL: exact copying breaks at 2k tokens") and "128 tokens, 512 tokens pass" in message
    assert re.search(r"outputs garbled after ≈ (\d+) tokens \(\d+ corrupted\): the signature of a KV-cache or "
                     r"quantisation fault at length", message), message
    at_2k = check["details"]["kinds"]["2k tokens"]
    assert at_2k["corrupted"] > 0 and at_2k["exact"] == 0
    assert abs(at_2k["median_divergence_token"] - 700) <= 10
    bad = next(i for i in check["items"] if i["verdict"] == "fail")
    assert bad["data"]["kind"] == "corrupted" and abs(bad["data"]["diverges_at"]["token"] - 700) <= 10
    assert re.match(r"2k tokens, item \d+: corrupted: diverges at line \d+ char \d+ \(token ≈ \d+\)", bad["message"])
    assert 0.3 < bad["data"]["lines_right"] < 0.5      # ≈ 700 of 1,674 tokens right: a collapse, not a slip


def test_capped_generation_is_named_truncated_with_finish_reason_length(kvv, tmp_path):
    run = kvv("run", "--simulate", "--only", "long-output", "--config", config(tmp_path),
              "--sim-fault", "truncate-output=300")
    assert run.exit_code == 1, run.output
    check = probe(run)
    assert check["details"]["breaks_at"] == "512 tokens"
    assert "outputs cut at ≈ 300 tokens with finish_reason length" in check["message"]
    assert "a gateway capping generation" in check["message"]
    at_512 = check["details"]["kinds"]["512 tokens"]
    assert at_512["truncated"] > 0 and at_512["corrupted"] == 0
    assert at_512["truncated_by"] == {"length": at_512["truncated"]}
    assert at_512["median_truncation_tokens"] == 300
    assert f"512 tokens: {at_512['truncated']} truncated (median end at 300 tokens, finish_reason length" \
        in check["details"]["copies"]          # the per-rung reading as the reports show it
    bad = next(i for i in check["items"] if i["verdict"] == "fail")
    assert bad["data"]["kind"] == "truncated" and bad["data"]["finish_reason"] == "length"
    assert "truncated: a clean prefix" in bad["message"]


def test_a_cut_stream_is_a_truncated_copy_without_a_finish(kvv, tmp_path):
    run = kvv("run", "--simulate", "--only", "long-output", "--config", config(tmp_path, items=5),
              "--sim-fault", "stream-cut=1")
    check = probe(run)
    streamed = [i for i in check["items"] if i["data"]["stream"]]
    assert len(streamed) == 3
    for item in streamed:
        assert item["verdict"] == "fail" and item["data"]["kind"] == "truncated" and item["data"]["cut"]
        assert "stream cut without a finish" in item["message"]
    assert all(i["data"]["kind"] == "exact" for i in check["items"] if not i["data"]["stream"])


def test_rungs_above_the_profile_limit_are_left_out_and_said(kvv, tmp_path):
    settings = config(tmp_path, rungs=[128, 32768])       # generic: limits.output-tokens 16384
    plan = kvv("plan", "--simulate", "--profile", "generic", "--suite", "probes", "--config", settings)
    assert plan.exit_code == 0, plan.output
    assert "left out: 32k tokens: above the profile's limits.output-tokens 16384" in plan.output
    assert "32k tokens" not in plan.output.split("long-output by rung:")[1]
    run = kvv("run", "--simulate", "--profile", "generic", "--only", "long-output", "--config", settings)
    assert run.exit_code == 0, run.output
    check = probe(run)
    assert [row["rung"] for row in check["details"]["rungs"]] == ["128 tokens"]
    assert check["details"]["left_out"] == ["32k tokens: above the profile's limits.output-tokens 16384"]
    assert "left out: 32k tokens" in check["message"]
    nothing = kvv("run", "--simulate", "--profile", "generic", "--only", "long-output",
                  "--config", config(tmp_path, rungs=[32768]), out="none")
    reason = {c["id"]: c["reason"] for c in nothing.results["not_run"]}["long-output"]
    assert "every rung is beyond profile generic's limits" in reason


def test_max_tokens_has_headroom_but_stays_within_the_limit(kvv, tmp_path):
    plan = kvv("plan", "--simulate", "--suite", "probes", "--config", config(tmp_path, rungs=[1024, 65536], items=1))
    assert plan.exit_code == 0, plan.output
    table = plan.output.split("long-output by rung:")[1]
    ceilings = {m.group(1): int(m.group(2).replace(",", "")) for m in
                re.finditer(r"^(\d+k tokens)\s+1\s+1\s+([\d,]+)", table, re.MULTILINE)}
    assert ceilings["1k tokens"] == math.ceil(round(1024 / TOKENS_PER_LINE) * TOKENS_PER_LINE * 1.5)
    assert ceilings["64k tokens"] == 98304             # kimi-k3's limits.output-tokens, not 1.5 × 64k


def test_the_plan_shows_the_rungs_and_their_cost(kvv, tmp_path):
    plan = kvv("plan", "--simulate", "--suite", "probes", "--config", config(tmp_path, items=7))
    assert plan.exit_code == 0, plan.output
    table = plan.output.split("long-output by rung:")[1]
    for label in ("128 tokens", "512 tokens", "2k tokens"):
        assert re.search(rf"^{label}\s+7\s+7\s", table, re.MULTILINE), table
    assert "long-output stops once settled: up to 7 items per rung" in plan.output


def test_a_thinking_only_deployment_is_judged_on_its_content(kvv, tmp_path):
    """Without a thinking switch the default (thinking) mode runs, with a larger budget, and
    the reasoning is not part of the copy."""
    run = kvv("run", "--simulate", "--think-mode", "none", "--only", "long-output",
              "--config", config(tmp_path, rungs=[128, 512]))
    assert run.exit_code == 0, run.output
    check = probe(run)
    assert check["verdict"] == "pass"
    data = check["items"][0]["data"]
    assert data["reasoning_chars"] > 0 and data["kind"] == "exact"
    assert data["max_tokens"] == math.ceil(round(128 / TOKENS_PER_LINE) * TOKENS_PER_LINE * 2.5)


def test_paired_mode_sends_the_same_copies_to_the_reference(kvv, simulator, tmp_path):
    vendor, official = simulator("kimi-k3", "truncate-output=300"), simulator("kimi-k3")
    run = kvv("run", "--base-url", vendor.url, "--model", "kimi-k3", "--only", "long-output",
              "--reference-base-url", official.url, "--config", config(tmp_path, rungs=[128, 512]))
    check = probe(run)
    assert run.exit_code == 1, run.output
    assert check["details"]["breaks_at"] == "512 tokens"
    assert check["details"]["against"].startswith("the reference endpoint on the same items")
    data = [i["data"] for i in check["items"] if i["data"]["rung"] == "512 tokens"]
    assert all(d["reference_score"] == 1.0 and d["reference_kind"] == "exact" and d["score"] == 0.0 for d in data)
    assert official.stats["requests"] == vendor.stats["requests"] - 2    # kvv probes the vendor twice first
    healthy = kvv("run", "--base-url", official.url, "--model", "kimi-k3", "--only", "long-output",
                  "--reference-base-url", official.url, "--config", config(tmp_path, rungs=[128]), out="healthy")
    assert healthy.exit_code in (0, 3) and probe(healthy)["verdict"] in ("pass", "inconclusive")


def test_bad_rungs_exit_2_naming_the_field(kvv, tmp_path):
    run = kvv("plan", "--simulate", "--suite", "probes", "--config", config(tmp_path, rungs=[1024, -5]))
    assert run.exit_code == 2
    assert "checks.long-output.rungs" in run.output + run.stderr
    assert "positive integers" in run.output + run.stderr


# -- the sequence and the comparison, without a server -------------------------------------------

def test_sequences_are_seeded_reproducible_and_differ_across_seeds_and_items():
    assert sequence(7, 1024, 0) == sequence(7, 1024, 0)
    assert sequence(7, 1024, 0) != sequence(8, 1024, 0) != sequence(7, 1024, 1)
    lines = sequence(7, 1024, 0)
    assert len(lines) == round(1024 / TOKENS_PER_LINE)
    assert lines[0].startswith("0001 ") and lines[-1].startswith(f"{len(lines):04d} ")
    words = set(vocabulary())
    assert all(len(line.split()) == 9 and set(line.split()[1:]) <= words for line in lines)
    assert copied_text(prompt(lines)) == "\n".join(lines)
    assert copied_text("Copy these: " + "\n".join(lines)) is None


def test_the_vocabulary_is_a_plain_list_of_1000_short_lowercase_words():
    words = vocabulary()
    assert len(words) == len(set(words)) == 1000
    assert all(re.fullmatch(r"[a-z]{2,8}", w) for w in words)


def test_a_slip_is_told_from_a_collapse_and_a_prefix_from_a_divergence():
    lines = sequence(3, 2048, 0)
    text = "\n".join(lines)
    exact = compare(lines, f"```\n{text}\n```\n", "stop")
    assert exact["kind"] == "exact" and exact["exact"] is True
    words = lines[99].split()
    slipped = lines[:99] + [" ".join(words[:3] + ["zzz"] + words[4:])] + lines[100:]
    slip = compare(lines, "\n".join(slipped), "stop")
    assert slip["kind"] == "corrupted" and slip["diverges_at"]["line"] == 100
    assert slip["diverges_at"]["char"] == len(" ".join(words[:3])) + 2
    assert slip["lines_right"] == round((len(lines) - 1) / len(lines), 4)
    # A line dropped shifts the rest, yet lines are matched by their numbers: one wrong, not all after it.
    dropped = compare(lines, "\n".join(lines[:10] + lines[11:]), "stop")
    assert dropped["kind"] == "corrupted" and dropped["lines_right"] == round((len(lines) - 1) / len(lines), 4)
    collapse = compare(lines, "\n".join(lines[:20]) + "\n ~ ^ | ] [ # @" * 50, "stop")
    assert collapse["kind"] == "corrupted" and collapse["lines_right"] < 0.2
    cut = compare(lines, text[:5000], "length")
    assert cut["kind"] == "truncated" and cut["diverges_at"]["line"] == text[:5000].rstrip().count("\n") + 1


@pytest.mark.parametrize("fault", ["long-output-corrupt", "truncate-output"])
def test_the_fault_catalogue_names_the_probe(fault):
    from kvv.simulator.faults import fault_catalogue
    entry = next(f for f in fault_catalogue() if f["name"] == fault)
    assert "long-output" in entry["description"]


def test_resume_reuses_finished_copies_with_the_same_verdict(kvv, tmp_path):
    settings = config(tmp_path, rungs=[128, 512])
    args = ("run", "--simulate", "--only", "long-output", "--config", settings, "--sim-fault", "truncate-output=300")
    first = kvv(*args)
    again = kvv(*args, "--resume")
    assert first.exit_code == again.exit_code == 1
    assert probe(again)["message"] == probe(first)["message"]
    assert all(i["resumed"] for i in probe(again)["items"])


def test_the_reading_tells_a_slip_from_a_fault():
    from kvv.checks.base import Context
    from kvv.checks.long_output import describe
    from kvv.profile import load_profile

    ctx = Context(model="m", profile=load_profile("kimi-k3"), think_mode="kimi", options={"rungs": [1024]})

    def record(kind, **data):
        return {"data": {"rung": "1k tokens", "kind": kind, "estimated_tokens": 1023, "reasoning_chars": 0, **data}}
    exact = [record("exact", completion_tokens=837, finish_reason="stop") for _ in range(40)]
    slip = record("corrupted", completion_tokens=837, finish_reason="stop", lines_right=0.9892,
                  diverges_at={"line": 50, "char": 3, "token_estimate": 540, "token": 442})
    _, clause = describe(exact + [slip], ctx, None)
    assert clause == "1 of 41 copies not exact, median 98.9% of lines right"
    early = [record("truncated", completion_tokens=400, finish_reason="stop", lines_right=0.4,
                    diverges_at={"line": 45, "char": 1, "token_estimate": 484, "token": 400}) for _ in range(20)]
    details, clause = describe(exact[:5] + early, ctx, None)
    assert clause == "outputs end early at ≈ 400 tokens with finish_reason stop (20 truncated)"
    assert details["kinds"]["1k tokens"]["truncated_by"] == {"stop": 20}
