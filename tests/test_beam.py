"""The BEAM adapter: upstream's format, request, truncation and judge scoring, on a small sample
(tests/fixtures/beam, made by scripts/make_beam_sample.py) with the simulator as vendor and judge."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from kvv.checks.beam import (NOTE, Ratio, generation_body, parse_judge, read_questions, truncate, upstream_score)
from kvv.benchmarks.base import Params
import yaml

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "fixtures" / "beam"
CHATS, QUESTIONS = SAMPLE / "chats.jsonl.gz", SAMPLE / "questions.jsonl"
K3_MAX_TOKENS = 32768
# Room for about the last 1,200 characters of a chat: most of the sample's facts are dropped.
TIGHT_CONTEXT = K3_MAX_TOKENS + 5000 + 300


def config(tmp_path: Path, name: str = "kvv.yaml", **options) -> str:
    beam = {"dataset": str(CHATS), "questions": str(QUESTIONS), **options}
    path = tmp_path / name
    path.write_text(json.dumps({"checks": {"beam": beam}}))      # JSON is YAML
    return str(path)


def items(run) -> list[dict]:
    return run.check("beam")["items"]


# -- the healthy simulator as vendor and judge ----------------------------------------------------

def test_healthy_simulator_passes_with_its_numbers(kvv, tmp_path):
    run = kvv("run", "--simulate", "--only", "beam", "--config", config(tmp_path))
    assert run.exit_code == 0, run.output
    beam = run.check("beam")
    assert beam["verdict"] in ("pass", "inconclusive")
    details, scored = beam["details"], [i["data"] for i in items(run)]
    assert details["scored"] == len(scored) > 0 and details["judge_unparsed"] == details["judge_failed"] == 0
    for data in scored:       # integer (upstream's) and fractional scores of each item, from its judge scores
        values = data["rubric_scores"]
        assert data["score"] == pytest.approx(sum(int(v) for v in values) / len(values))
        assert data["fractional"] == pytest.approx(sum(values) / len(values))
    assert details["score_upstream"] == pytest.approx(sum(d["score"] for d in scored) / len(scored), abs=1e-4)
    assert details["score_fractional"] == pytest.approx(sum(d["fractional"] for d in scored) / len(scored), abs=1e-4)
    assert details["score_fractional"] > details["score_upstream"]      # the sample has 0.5 credits
    assert beam["metric"]["reference"] == 0.31 and beam["metric"]["value"] == details["score_upstream"]
    assert "integer" in details["scoring"] and "0.5 counts as 0" in details["scoring"]
    abilities = details["abilities"]
    assert {"event_ordering", "abstention", "knowledge_update"} <= set(abilities)
    assert sum(a["items"] for a in abilities.values()) == len(scored)
    # The sample fits K3's context: nothing dropped, and the vendor's prompt_tokens were recorded.
    assert details["truncated_items"] == 0 and all(d["prompt_tokens"] > 0 for d in scored)


def test_the_request_is_upstreams():
    params = Params.for_mode("kimi-k3", {"max-tokens": 32768, "temperature": 1.0, "top_p": 0.95, "effort": "max"},
                             think_mode="kimi", mode="thinking")
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    body = generation_body(history, "Which one?", params)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]       # no system prompt
    assert body["messages"][-1]["content"] == f"{NOTE}\n\nQuestion: Which one?"
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (1.0, 0.95, 32768)
    assert body["thinking"]["type"] == "enabled"


# -- scoring --------------------------------------------------------------------------------------

@pytest.mark.parametrize("reply, expected", [
    ('{"score": 1.0, "reason": "all there"}', 1.0),
    ('```json\n{"score": 0.5, "reason": "half"}\n```', 0.5),
    ('Here is my verdict: {"score": "0.0", "reason": "missing"}', 0.0),
    ('{"score": 1.5}', None), ('{"reason": "no score"}', None), ("1.0", None), ("", None), (None, None),
])
def test_judge_replies_are_parsed_or_refused(reply, expected):
    parsed = parse_judge(reply)
    assert (parsed[0] if parsed else None) == expected


def test_upstream_counts_a_half_as_zero():
    assert [upstream_score(s) for s in (1.0, 0.5, 0.0)] == [1, 0, 0]


def test_half_credit_scores_zero_upstream_and_half_fractional(kvv, tmp_path):
    # A criterion the answer meets half of: the judge gives 0.5 — upstream's score 0, kvv's fractional 0.5.
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"chat_id": "1", "question_type": "information_extraction", "question_index": 0,
                                     "question": "Which district is my hotel in?", "gold_answer": "Alfama",
                                     "rubric": ["Mentions Alfama", "Mentions Alfama and Porto"],
                                     "difficulty": "easy"}) + "\n")
    run = kvv("run", "--simulate", "--only", "beam", "--config",
              config(tmp_path, questions=str(questions), **{"max-items": 3}))
    data = [i["data"] for i in items(run)]
    assert data and all(d["rubric_scores"] == [1.0, 0.5] for d in data), data
    assert all(d["score"] == 0.5 and d["fractional"] == 0.75 for d in data)


@pytest.mark.parametrize("fault, counted", [("long-output-corrupt=1", "judge_unparsed"),
                                            ("server-error=1.0", "judge_failed")])
def test_a_judge_kvv_cannot_read_makes_errors_never_zeros(kvv, simulator, tmp_path, fault, counted):
    judge = simulator("kimi-k3", fault)
    run = kvv("run", "--simulate", "--only", "beam", "--config", config(tmp_path, **{"max-items": 4}),
              "--judge-base-url", judge.url, "--max-retries", "0")
    beam = run.check("beam")
    assert run.exit_code == 3 and beam["verdict"] == "error", run.output
    assert all(i["verdict"] == "error" and i["data"]["score"] is None for i in items(run))
    assert beam["details"][counted] == 4 and beam["details"]["scored"] == 0
    assert all("Bearer" not in e["curl"] or "$KVV_JUDGE_API_KEY" in e["curl"] for e in beam["evidence"])


# -- truncation -----------------------------------------------------------------------------------

def test_truncation_drops_whole_messages_from_the_front_and_starts_at_a_user_turn():
    history = [{"role": r, "content": r[0] * 100} for r in ("user", "assistant") * 5]
    kept, dropped = truncate(history, "q" * 10, budget=100, ratio=4.0)     # room for 400 characters
    assert kept == history[dropped:] and kept[0]["role"] == "user"
    assert sum(len(m["content"]) for m in kept) + len(NOTE) + 10 <= 400
    assert dropped == 8        # 7 messages off for size, one more to reach a user turn
    assert truncate(history, "q", budget=10_000, ratio=4.0) == (history, 0)


def test_the_ratio_learns_from_the_vendors_prompt_tokens():
    ratio = Ratio()
    assert ratio.value == 4.0
    ratio.learn(3000, 1000)
    ratio.learn(3000, None)            # no usage: nothing learnt
    assert ratio.value == 3.0
    ratio.learn(10**6, 1)
    assert ratio.value == 8.0          # clamped


def test_a_context_too_small_for_the_chat_drops_the_front_and_scores_lower(kvv, tmp_path):
    options = {"max-items": 120, "reference": 0.6}         # about the healthy simulator's score on the sample
    healthy = kvv("run", "--simulate", "--only", "beam", "--config", config(tmp_path, "a.yaml", **options), out="a")
    tight = kvv("run", "--simulate", "--only", "beam",
                "--config", config(tmp_path, "b.yaml", **options, **{"context-tokens": TIGHT_CONTEXT}), out="b")
    assert healthy.check("beam")["verdict"] in ("pass", "inconclusive"), healthy.output
    assert tight.check("beam")["verdict"] == "fail", tight.output
    before, after = healthy.check("beam")["details"], tight.check("beam")["details"]
    assert after["score_upstream"] < before["score_upstream"] - 0.3
    assert after["truncated_items"] == after["scored"]
    data = [i["data"] for i in items(tight)]
    # The chats alternate from a user turn: a history re-aligned to one has dropped an even number.
    assert all(d["dropped_messages"] > 0 and d["dropped_messages"] % 2 == 0 for d in data)
    assert after["mean_prompt_tokens"] < before["mean_prompt_tokens"]
    # Abstentions survive truncation; facts from the chat's front do not.
    assert after["abilities"]["abstention"]["upstream"] == 1.0
    ability = "information_extraction"
    assert after["abilities"][ability]["upstream"] < before["abilities"][ability]["upstream"]


def test_a_vendor_that_keeps_only_the_end_of_the_prompt_fails(kvv, tmp_path):
    # Silent truncation: kvv sends the whole chat, the vendor reads only its last 300 tokens.
    run = kvv("run", "--simulate", "--sim-fault", "context-truncate=300", "--only", "beam",
              "--config", config(tmp_path, **{"max-items": 120, "reference": 0.6}))
    beam = run.check("beam")
    assert beam["verdict"] == "fail" and run.exit_code == 1, run.output
    assert beam["details"]["truncated_items"] == 0            # kvv dropped nothing: the vendor did
    assert beam["details"]["abilities"]["abstention"]["upstream"] == 1.0


def test_a_prompt_refused_for_length_is_sent_again_shorter(kvv, tmp_path):
    # A vendor whose real window (1,200 tokens) is smaller than the context kvv was told (its 400s
    # name the length): kvv drops more of the front and sends again, a bounded number of times.
    profile = yaml.safe_load((ROOT / "kvv/profiles/kimi-k3.yaml").read_text())
    profile["limits"]["context-tokens"] = 1200
    path = tmp_path / "small-window.yaml"
    path.write_text(yaml.safe_dump(profile))
    run = kvv("run", "--simulate", "--profile", str(path), "--only", "beam",
              "--config", config(tmp_path, **{"max-items": 6, "context-tokens": K3_MAX_TOKENS + 5000 + 4000}))
    data = [i["data"] for i in items(run)]
    assert data and all(d["refusals_for_length"] >= 1 and d["prompt_tokens"] <= 1200 for d in data), data
    assert all(i["verdict"] != "error" for i in items(run))
    assert run.check("beam")["details"]["refusals_for_length"] == sum(d["refusals_for_length"] for d in data)


# -- the plan, applicability, bad files -----------------------------------------------------------

def test_plan_shows_beams_token_cost(kvv, tmp_path):
    run = kvv("plan", "--base-url", "http://127.0.0.1:9/v1", "--model", "kimi-k3", "--only", "beam",
              "--judge-base-url", "http://127.0.0.1:9/v1", "--config", config(tmp_path))
    assert run.exit_code == 0, run.output
    row = next(line for line in run.output.splitlines() if line.startswith("beam"))
    n = sum(1 for line in QUESTIONS.read_text().splitlines() if line.strip())
    assert row.split()[1] == str(n) and f"{n * K3_MAX_TOKENS:,}" in row
    assert "≈ prompt tokens" in run.output
    assert "beam stops once settled: up to 21 items" in run.output      # early stopping, as the benchmarks'
    chats = [sum(len(m["content"]) for m in json.loads(line)["messages"]) for line in gzip.open(CHATS, "rt")]
    prompt = int(row.split()[4].replace(",", ""))
    assert n * min(chats) / 4 < prompt < n * (max(chats) + 200) / 4     # n draws of a whole chat, at 4 chars a token


def test_the_simulated_plan_has_the_simulator_as_judge_as_the_simulated_run_does(kvv, tmp_path):
    run = kvv("plan", "--simulate", "--only", "beam", "--config", config(tmp_path))
    assert run.exit_code == 0, run.output
    assert any(line.startswith("beam ") for line in run.output.splitlines()), run.output


def test_not_applicable_without_files_or_judge_and_the_bench_suite_still_plans(kvv, tmp_path):
    run = kvv("plan", "--simulate", "--suite", "bench")
    assert run.exit_code == 0, run.output
    assert "checks.beam.dataset" in run.output and "checks.beam.questions" in run.output
    run = kvv("plan", "--base-url", "http://127.0.0.1:9/v1", "--model", "kimi-k3", "--only", "beam",
              "--config", config(tmp_path))
    assert run.exit_code == 0 and "--judge-base-url" in run.output, run.output


def _bad(tmp_path: Path, name: str, lines: list) -> str:
    path = tmp_path / name
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return str(path)


QUESTION = {"chat_id": "1", "question_type": "abstention", "question_index": 0, "question": "Who?",
            "gold_answer": "nobody", "rubric": ["Says it was not mentioned"], "difficulty": "easy"}


@pytest.mark.parametrize("which, lines, named", [
    ("questions", [QUESTION, QUESTION, "{not json"], ["q.jsonl", "line 3", "not JSON"]),
    ("questions", [QUESTION, {**QUESTION, "rubric": []}], ["q.jsonl", "line 2", "rubric"]),
    ("questions", [{**QUESTION, "question_index": "first"}], ["q.jsonl", "line 1", "question_index"]),
    ("questions", [{**QUESTION, "chat_id": "404"}], ["q.jsonl", "line 1", "chat_id", "chat 404"]),
    ("dataset", [{"chat_id": "1", "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]}],
     ["c.jsonl.gz", "line 1", "messages[1].role"]),
    ("dataset", [{"chat_id": "1"}], ["c.jsonl.gz", "line 1", "messages"]),
])
def test_bad_files_exit_2_naming_file_line_and_field(kvv, tmp_path, which, lines, named):
    path = _bad(tmp_path, "q.jsonl" if which == "questions" else "c.jsonl.gz", lines)
    run = kvv("plan", "--simulate", "--only", "beam", "--judge-base-url", "http://127.0.0.1:9/v1",
              "--config", config(tmp_path, **{which: path}))
    assert run.exit_code == 2, run.output
    for part in named:
        assert part in run.output + run.stderr, (part, run.output)


def test_a_corrupt_gzip_exits_2_naming_the_file(kvv, tmp_path):
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"chat_id": "1", "messages": []}\n' * 50)[:40])
    run = kvv("plan", "--simulate", "--only", "beam", "--judge-base-url", "http://127.0.0.1:9/v1",
              "--config", config(tmp_path, dataset=str(path)))
    assert run.exit_code == 2 and "c.jsonl.gz" in run.output + run.stderr, run.output


def test_questions_are_read_as_upstream_writes_them():
    questions = read_questions(str(QUESTIONS))
    assert len(questions) == 21 and {q.question_type for q in questions} >= {"event_ordering", "abstention"}
    assert all(q.rubric and q.key.count("|") == 2 for q in questions)


def test_resume_reuses_scored_items(kvv, tmp_path):
    cfg = config(tmp_path, **{"max-items": 8})
    first = kvv("run", "--simulate", "--only", "beam", "--config", cfg)
    again = kvv("run", "--simulate", "--only", "beam", "--config", cfg, "--resume")
    assert first.exit_code == again.exit_code == 0, again.output
    assert again.check("beam")["reused"] == first.check("beam")["n"] > 0
    assert again.check("beam")["details"] == first.check("beam")["details"]


def test_paired_with_a_live_reference_judges_both_alike(kvv, simulator, tmp_path):
    official = simulator("kimi-k3")
    run = kvv("run", "--simulate", "--only", "beam", "--config", config(tmp_path, **{"max-items": 10}),
              "--reference-base-url", official.url)
    beam = run.check("beam")
    assert beam["verdict"] in ("pass", "inconclusive") and beam["metric"]["design"] == "paired", run.output
    assert "live" in beam["details"]["source"]
    # The same prompt to two healthy instances of the same model: the same answers, the same scores.
    assert all(i["data"]["reference_score"] == i["data"]["score"] for i in items(run))
    assert official.stats["requests"] >= 10


def test_the_judge_from_the_config_file_gets_one_call_per_rubric_item(kvv, simulator, tmp_path):
    judge = simulator("kimi-k3")
    path = tmp_path / "kvv.yaml"
    path.write_text(json.dumps({"judge-base-url": judge.url, "judge-model": "kimi-k3",
                                "checks": {"beam": {"dataset": str(CHATS), "questions": str(QUESTIONS),
                                                    "max-items": 5}}}))
    run = kvv("run", "--simulate", "--only", "beam", "--config", str(path))
    assert run.exit_code == 0, run.output
    calls = sum(len(i["data"]["rubric_scores"]) for i in items(run))
    assert judge.stats["requests"] == calls > 0
