"""toolcall-replay: F1 and schema accuracy against a reference file or a live reference, over
real loopback sockets; the statistics on hand-worked examples; bad input files exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvv.checks.base import Context, NotApplicable
from kvv.checks.toolcall_replay import (CHECKS, confusion, f1, interval, load_reference, load_requests, precision,
                                        prepare, recall)
from kvv.profile import load_profile
from kvv.simulator.tokenizer import DEFAULT, TOKENIZERS
from kvv.stats import bootstrap

ROWS = [(True, True)] * 3 + [(True, False)] + [(False, True)] * 2 + [(False, False)] * 4   # TP3 FP1 FN2 TN4


def replay(kvv, sim, *extra, env=None, out="out"):
    return kvv("run", "--base-url", sim.url, "--model", "kimi-k3", "--profile", "kimi-k3", "--suite", "tools",
               "--only", "toolcall-replay", "--max-retries", "2", *extra, env=env, out=out)


# -- statistics -----------------------------------------------------------------------------------

def test_precision_recall_f1_hand_worked():
    assert confusion(ROWS) == {"tp": 3, "fp": 1, "fn": 2, "tn": 4}
    assert precision(ROWS) == 0.75
    assert recall(ROWS) == 0.6
    assert f1(ROWS) == pytest.approx(2 / 3)      # 2*3 / (2*3 + 1 + 2)


def test_undefined_ratios_are_none_not_zero():
    never_calls = [(False, True)] * 3 + [(False, False)] * 2
    assert precision(never_calls) is None
    assert recall(never_calls) == 0.0 and f1(never_calls) == 0.0
    assert f1([(False, False)] * 4) is None            # nothing to find: F1 says nothing


def test_bootstrap_is_seeded_and_percentile():
    rows = [0] * 50 + [1] * 50
    mean = lambda xs: sum(xs) / len(xs)   # noqa: E731
    lower, upper = bootstrap(rows, mean)
    assert (lower, upper) == bootstrap(rows, mean)                 # reproducible
    # Normal theory for a mean of 100 fair coins: 0.5 ± 1.96 * 0.05.
    assert 0.38 <= lower <= 0.42 and 0.58 <= upper <= 0.62
    assert bootstrap([1] * 10, mean) == (1.0, 1.0)
    assert bootstrap(rows, lambda xs: None) == (None, None)
    narrow = bootstrap(rows, mean, confidence=0.5)
    assert lower < narrow[0] < narrow[1] < upper


def test_unknown_answers_widen_the_bounds_never_fake_them():
    rows = ROWS * 5
    known = interval(rows, f1)
    assert 0 < known["lower"] < known["value"] < known["upper"] < 1
    blurred = interval(rows + [(None, True), (True, None), (None, None)] * 3, f1)
    assert blurred["value"] == known["value"]                        # the point uses known rows only
    assert blurred["lower"] < known["lower"] and blurred["upper"] > known["upper"]
    assert interval([(True, True)] * 20, f1) == {"value": 1.0, "lower": 1.0, "upper": 1.0}


# -- request preparation --------------------------------------------------------------------------

def test_prepare_rewrites_input_role_model_overrides_and_stream_usage():
    recorded = {"model": "kimi-k2-thinking", "stream": True, "temperature": 0.6, "max_tokens": 16000,
                "messages": [{"role": "_input", "content": "sys"}, {"role": "user", "content": "hi"}],
                "extra": {"kept": True}}
    body = prepare(recorded, "ours")
    assert body["model"] == "ours" and body["messages"][0]["role"] == "system"
    assert (body["temperature"], body["max_tokens"]) == (0.6, 16000)        # 0 keeps the recorded value
    assert body["stream_options"] == {"include_usage": True}
    assert body["extra"] == {"kept": True}
    assert recorded["messages"][0]["role"] == "_input"                       # the recording is untouched
    assert prepare(recorded, "ours", 1.0, 512) == {**body, "temperature": 1.0, "max_tokens": 512}
    assert "stream_options" not in prepare({**recorded, "stream": False}, "ours")


def test_builtin_requests_are_k2vv_shaped():
    requests = load_requests(None)
    assert len(requests) >= 100
    bodies = [b for _, b in requests]
    assert sum(b.get("stream", False) for b in bodies) >= 30
    assert sum(any(m["role"] == "_input" for m in b["messages"]) for b in bodies) >= 10
    assert {b["messages"][-1]["role"] for b in bodies} == {"user", "tool"}
    assert len({t["function"]["name"] for b in bodies for t in b["tools"]}) >= 10


# -- which reference applies ----------------------------------------------------------------------

OPTIONS = {"requests": None, "reference": None, "temperature": 0.0, "max-tokens": 0}
CHECK = CHECKS[0]


def context(profile="kimi-k3", simulator=None, live=False, **options) -> Context:
    return Context("served", load_profile(profile), "kimi", {**OPTIONS, **options}, reference=live,
                   simulator=simulator)


def test_kvv_simulator_is_judged_against_its_recorded_answers():
    items = CHECK.build(context(simulator=DEFAULT.identity))
    reference = load_reference(None, len(items))
    assert [i.expects for i in items] == [reference[n] for n in range(1, len(items) + 1)]
    assert sum(i.expects == "length" for i in items) == 4


@pytest.mark.parametrize("profile,simulator", [
    ("kimi-k3", None), ("generic", None), ("kimi-k2.5", None), ("kimi-k3", TOKENIZERS["kvv-chunks-1"].identity),
])
def test_no_reference_for_the_target_is_not_applicable(profile, simulator):
    with pytest.raises(NotApplicable) as why:
        CHECK.build(context(profile, simulator))
    message = str(why.value)
    assert message.startswith("no toolcall-replay reference valid for ")
    assert "checks.toolcall-replay.requests+reference" in message and "--reference-base-url" in message
    assert "hold for kvv's simulator (tokenizer kvv-words-1, template kvv-chat-1)" in message


def test_a_users_reference_or_a_live_one_always_applies(tmp_path):
    n = len(load_requests(None))
    (tmp_path / "ref.jsonl").write_text("".join(json.dumps({"data_index": i, "finish_reason": "stop"}) + "\n"
                                                for i in range(1, n + 1)))
    for simulator in (None, TOKENIZERS["kvv-chunks-1"].identity):
        mine = CHECK.build(context("generic", simulator, reference=str(tmp_path / "ref.jsonl")))
        assert len(mine) == n and {i.expects for i in mine} == {"stop"}
        live = CHECK.build(context("generic", simulator, live=True))
        assert {i.expects for i in live} == {"live"} and all(len(i.requests) == 2 for i in live)


def test_changing_a_reference_answer_changes_the_item_digest(tmp_path):
    n = len(load_requests(None))
    def digests(first: str) -> list[str]:
        path = tmp_path / f"ref-{first}.jsonl"
        path.write_text("".join(json.dumps({"data_index": i, "finish_reason": first if i == 1 else "stop"}) + "\n"
                                for i in range(1, n + 1)))
        return [i.digest for i in CHECK.build(context(reference=str(path)))]
    stop, tool = digests("stop"), digests("tool_calls")
    assert stop[0] != tool[0] and stop[1:] == tool[1:]


# -- against the simulator ------------------------------------------------------------------------

def test_healthy_vendor_passes(kvv, simulator):
    sim = simulator("kimi-k3")
    run = replay(kvv, sim)
    assert run.exit_code == 0, run.output
    check = run.check("toolcall-replay")
    assert check["verdict"] == "pass", check["details"]
    assert check["n"] == len(load_requests(None)) == check["passed"]
    assert check["metric"] == {"name": "f1", "value": 1.0, "lower": 1.0, "upper": 1.0, "confidence": 0.95}
    details = check["details"]
    assert details["schema_accuracy"]["value"] == 1.0 and details["schema_accuracy"]["verdict"] == "pass"
    # the built-in reference is a healthy mix of tool calls and text answers
    assert 0.5 <= details["tp"] / details["n"] <= 0.7 and details["fp"] == details["fn"] == 0
    assert {i["id"].rsplit(" ", 1)[1] for i in check["items"]} == {"[stream]", "[non-stream]"}
    item = check["items"][0]
    assert set(item["data"]) == {"data_index", "finish_reason", "tool_calls", "valid"}
    assert details["reference"]["name"] == "kvv-simulator"
    assert details["reference"]["valid_for"] == "kvv's simulator (tokenizer kvv-words-1, template kvv-chat-1)"


@pytest.mark.parametrize("profile", ["kimi-k2.5", "generic"])
def test_healthy_vendor_passes_on_other_profiles(kvv, simulator, profile):
    sim = simulator(profile)
    run = kvv("run", "--base-url", sim.url, "--model", profile, "--profile", profile, "--suite", "tools",
              "--only", "toolcall-replay")
    assert run.check("toolcall-replay")["verdict"] == "pass", run.check("toolcall-replay")["details"]


@pytest.mark.parametrize("fault,failing_axis", [
    ("tool-trigger-drift=0.5", "f1"),
    ("tool-finish-reason-stop", "f1"),
    ("tool-args-invalid=0.5", "schema_accuracy"),
    ("tool-args-broken-json=0.5", "schema_accuracy"),
    ("stream-tool-index-bug", "schema_accuracy"),     # streamed parallel calls merge into one broken call
])
def test_fault_fails_on_its_axis(kvv, simulator, fault, failing_axis):
    run = replay(kvv, simulator("kimi-k3", fault))
    assert run.exit_code == 1, run.output
    check = run.check("toolcall-replay")
    assert check["verdict"] == "fail"
    details = check["details"]
    assert details[failing_axis]["verdict"] == "fail", details
    other = "schema_accuracy" if failing_axis == "f1" else "f1"
    # The other axis is not to blame (drift leaves fewer tool-call answers, so it may be inconclusive).
    assert details[other]["verdict"] != "fail", details
    assert check["evidence"]


def test_finish_reason_stop_collapses_f1(kvv, simulator):
    check = replay(kvv, simulator("kimi-k3", "tool-finish-reason-stop")).check("toolcall-replay")
    assert check["metric"]["value"] == 0.0 and check["details"]["tp"] == 0
    assert check["details"]["precision"]["value"] is None


def test_live_reference(kvv, simulator):
    reference = simulator("kimi-k3", api_key="sk-reference-0000000000")
    env = {"KVV_REFERENCE_API_KEY": "sk-reference-0000000000"}
    healthy = replay(kvv, simulator("kimi-k3"), "--reference-base-url", reference.url, env=env, out="healthy")
    assert healthy.exit_code == 0, healthy.output
    check = healthy.check("toolcall-replay")
    assert check["verdict"] == "pass" and check["details"]["reference"]["name"] == "live"
    assert all(i["requests"] == 2 and "reference_finish_reason" in i["data"] for i in check["items"])
    assert reference.stats["requests"] == check["n"]
    drifting = replay(kvv, simulator("kimi-k3", "tool-trigger-drift=0.5"), "--reference-base-url", reference.url,
                      env=env, out="drifting")
    assert drifting.exit_code == 1
    assert drifting.check("toolcall-replay")["details"]["f1"]["verdict"] == "fail"


def test_live_reference_down_is_an_error_not_a_verdict(kvv, simulator):
    reference = simulator("kimi-k3", "server-error=1")
    run = replay(kvv, simulator("kimi-k3"), "--reference-base-url", reference.url, "--max-retries", "0")
    assert run.exit_code == 3
    check = run.check("toolcall-replay")
    assert check["verdict"] == "error" and check["errored"] == check["n"]
    assert "reference endpoint" in check["items"][0]["message"]
    assert all(reference.url in e["curl"] for e in check["evidence"])     # reproduces the reference call


def test_partly_unreachable_vendor_blurs_the_verdict(kvv, simulator):
    # One retry: the run's probe gets through (the draws are seeded), a quarter of the items do not.
    run = replay(kvv, simulator("kimi-k3", "server-error=0.5"), "--max-retries", "1")
    check = run.check("toolcall-replay")
    assert check["errored"] > 0
    assert check["verdict"] == "error", check["details"]      # undecided because of the errors
    assert check["details"]["unknown"] == check["errored"]
    assert check["metric"]["value"] == 1.0 and check["metric"]["lower"] < 0.73


# -- input files ----------------------------------------------------------------------------------

def write_config(tmp_path: Path, requests: str, reference: str | None) -> str:
    (tmp_path / "req.jsonl").write_text(requests)
    text = "checks:\n  toolcall-replay:\n    requests: req.jsonl\n"
    if reference is not None:
        (tmp_path / "ref.jsonl").write_text(reference)
        text += "    reference: ref.jsonl\n"
    (tmp_path / "kvv.yaml").write_text(text)
    return str(tmp_path / "kvv.yaml")


GOOD = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


@pytest.mark.parametrize("requests,reference,where", [
    (GOOD + "\n{not json\n", "", "req.jsonl: line 2"),
    (GOOD + "\n[1, 2]\n", "", "req.jsonl: line 2"),
    (json.dumps({"messages": []}), "", "req.jsonl: line 1: messages"),
    (json.dumps({"messages": [{"role": "robot"}]}), "", "req.jsonl: line 1: messages[0].role"),
    (json.dumps({"messages": [{"role": "user"}], "tools": [{"type": "function"}]}), "",
     "req.jsonl: line 1: tools[0].function.name"),
    (json.dumps({"messages": [{"role": "user"}], "tools": [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "nope"}}}]}), "",
     "req.jsonl: line 1: tools[0].function.parameters"),
    (GOOD, '{"data_index": 2, "finish_reason": "stop"}', "ref.jsonl: line 1: data_index"),
    (GOOD, '{"data_index": 1, "finish_reason": "stop"}\n{"data_index": 1, "finish_reason": "stop"}',
     "ref.jsonl: line 2: data_index"),
    (GOOD, '{"data_index": 1}', "ref.jsonl: line 1: finish_reason"),
    (GOOD + "\n" + GOOD, '{"data_index": 1, "finish_reason": "stop"}', "no record for data_index 2"),
    (GOOD, None, "needs its reference"),
])
def test_bad_input_files_exit_2_naming_file_and_line(kvv, tmp_path, requests, reference, where):
    config = write_config(tmp_path, requests, reference)
    run = kvv("plan", "--config", config, "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
              "--suite", "tools", "--only", "toolcall-replay")
    assert run.exit_code == 2, run.output
    assert where in run.output + run.stderr


def test_custom_files_and_resume(kvv, simulator, tmp_path):
    sim = simulator("kimi-k3")
    lines = [json.dumps({"model": "x", "temperature": 1.0, "messages": [{"role": "user", "content": q}],
                         "tools": [{"type": "function", "function": {"name": "search", "parameters": {
                             "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]})
             for q in ("Find the news.", "Do not use any tool: say hello.")]
    reference = "\n".join(json.dumps({"data_index": i, "finish_reason": f})
                          for i, f in ((1, "tool_calls"), (2, "stop")))
    config = write_config(tmp_path, "\n".join(lines) + "\n", reference)
    args = ("--config", config)
    first = replay(kvv, sim, *args)
    check = first.check("toolcall-replay")
    assert [i["verdict"] for i in check["items"]] == ["pass", "pass"]
    before = sim.stats["requests"]
    again = replay(kvv, sim, *args, "--resume")
    assert all(i["resumed"] for i in again.check("toolcall-replay")["items"])
    assert sim.stats["requests"] - before == again.results["totals"]["probe_requests"]     # the probe only
    assert again.check("toolcall-replay")["details"] == check["details"]
    # Another reference answer: its item is judged again, the other one reused.
    (tmp_path / "ref.jsonl").write_text(reference.replace('"stop"', '"tool_calls"'))
    changed = replay(kvv, sim, *args, "--resume")
    items = changed.check("toolcall-replay")["items"]
    assert [i["resumed"] for i in items] == [True, False]
    assert items[1]["verdict"] == "fail" and items[1]["digest"] != check["items"][1]["digest"]
    # Another option makes it another run: refused, naming it.
    (tmp_path / "kvv.yaml").write_text((tmp_path / "kvv.yaml").read_text() + "    temperature: 0.6\n")
    refused = replay(kvv, sim, *args, "--resume")
    assert refused.exit_code == 2 and "checks.toolcall-replay" in refused.stderr


def test_unusable_answers_are_never_agreement():
    """A refused, broken or empty answer (e.g. `choices: []`) counts against the vendor on both axes."""
    summarize = CHECKS[0].summarize
    ctx = context(simulator=DEFAULT.identity)
    reference = load_reference(None, len(load_requests(None)))
    records = []
    for index, finish in reference.items():
        agrees = {"data_index": index, "finish_reason": finish, "tool_calls": int(finish == "tool_calls"),
                  "valid": True if finish == "tool_calls" else None}
        empty = {"data_index": index, "finish_reason": None, "tool_calls": 0, "valid": None, "unusable": True}
        # Every answer where the reference stops in text comes back empty: "others" would agree with it.
        records.append({"verdict": "fail" if finish != "tool_calls" else "pass",
                        "data": empty if finish != "tool_calls" else agrees})
    summary = summarize(records, ctx)
    assert summary.verdict == "fail"
    assert summary.details["fp"] == sum(1 for f in reference.values() if f != "tool_calls")
    assert summary.details["schema_accuracy"]["verdict"] == "fail"


def test_broken_tool_calls_stop_the_replay_early(kvv, simulator):
    run = replay(kvv, simulator("kimi-k3", "tool-args-broken-json=0.5"))
    check = run.check("toolcall-replay")
    assert run.exit_code == 1 and check["verdict"] == "fail"
    assert check["stopped_early"] is True and check["n"] < check["planned"] == 147
    assert check["details"]["sequential_failure"] == "schema_accuracy"
    assert check["message"].startswith(f"FAIL after {check['n']} requests: schema accuracy")
