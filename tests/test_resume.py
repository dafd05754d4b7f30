"""--resume reuses finished items from the journal of the same run, and only of the same run."""

from __future__ import annotations

import json


def item_lines(journal):
    return [json.loads(line) for line in journal.read_text().splitlines() if '"kind": "item"' in line]


def run(kvv, url, *args, **kwargs):
    return kvv("run", "--base-url", url, "--model", "kimi-k3", *args, **kwargs)


def test_resume_reuses_finished_items_and_counts_what_they_cost(kvv, simulator):
    sim = simulator("kimi-k3", "ignore-temperature", "rate-limit=0.3")
    first = run(kvv, sim.url, "--max-retries", "10")
    assert first.exit_code == 1
    requests_before = sim.stats["requests"]
    second = run(kvv, sim.url, "--max-retries", "10", "--resume")
    assert second.exit_code == 1
    # Only the probe goes out again: the endpoint must still be there and be the same one.
    assert sim.stats["requests"] - requests_before == second.results["totals"]["probe_requests"]
    assert second.verdicts() == first.verdicts()
    assert all(i["resumed"] for c in second.results["checks"] for i in c["items"])
    assert second.check("param-temperature")["evidence"]    # evidence survives the resume
    totals, before = second.results["totals"], first.results["totals"]
    assert second.results["resumed"] is True
    assert totals["reused"] == totals["items"] == before["items"]
    for name in ("requests", "attempts", "prompt_tokens", "completion_tokens"):
        assert totals[name] == before[name], name
    assert totals["errors"] == before["errors"] and before["errors"]["rate_limit"] > 0
    assert f"{totals['reused']} of {totals['items']} items reused" in (second.out / "summary.md").read_text()
    assert "reused" in second.output


def test_resume_finishes_an_interrupted_run(kvv, simulator):
    sim = simulator("kimi-k3")
    full = run(kvv, sim.url)
    journal = full.out / "journal.jsonl"
    lines = journal.read_text().splitlines()
    # Keep the first half of the journal, the last line cut mid-write as a hard kill would leave it.
    kept = lines[: len(lines) // 2]
    journal.write_text("\n".join(kept) + "\n" + lines[len(lines) // 2][:20])
    finished = len([line for line in kept if '"kind": "item"' in line])
    before = sim.stats["requests"]
    resumed = run(kvv, sim.url, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert resumed.verdicts() == full.verdicts()
    reused = sum(i["resumed"] for c in resumed.results["checks"] for i in c["items"])
    assert reused == finished == resumed.results["totals"]["reused"]
    sent_again = sum(i["requests"] for c in resumed.results["checks"] for i in c["items"] if not i["resumed"])
    assert sim.stats["requests"] - before == sent_again + resumed.results["totals"]["probe_requests"]


def test_resume_against_another_endpoint_is_refused(kvv, simulator):
    """The reproduction from the issue: a healthy run, then --resume against a broken vendor."""
    healthy, broken = simulator("kimi-k3"), simulator("kimi-k3", "ignore-temperature")
    assert run(kvv, healthy.url).exit_code == 0
    before = broken.stats["requests"]
    again = run(kvv, broken.url, "--resume")
    assert again.exit_code == 2
    assert "endpoint:" in again.stderr and healthy.url in again.stderr and broken.url in again.stderr
    assert broken.stats["requests"] == before          # refused before anything was sent


def test_resume_with_other_settings_names_each_difference(kvv, simulator, tmp_path):
    sim = simulator("kimi-k3")
    assert run(kvv, sim.url, "--only", "max-tokens-applied").exit_code == 0
    config = tmp_path / "c.yaml"
    config.write_text("checks:\n  max-tokens-applied: {limit: 7}\n")
    again = run(kvv, sim.url, "--config", str(config), "--only", "max-tokens-applied", "--think-mode", "opensource",
                "--resume")
    assert again.exit_code == 2
    assert '"limit": 5' in again.stderr and '"limit": 7' in again.stderr
    assert "think_mode:" in again.stderr
    other_model = kvv("run", "--base-url", sim.url, "--model", "kimi-k2.5", "--only", "max-tokens-applied",
                      "--resume")
    assert other_model.exit_code == 2 and "model:" in other_model.stderr


def test_resume_never_silently_starts_over(kvv, simulator, tmp_path):
    sim = simulator("kimi-k3")
    nothing = run(kvv, sim.url, "--resume", out="empty")
    assert nothing.exit_code == 2 and "nothing to resume" in nothing.stderr
    (tmp_path / "norecord").mkdir()
    (tmp_path / "norecord" / "journal.jsonl").write_text('{"kind": "item", "check": "baseline"}\n')
    no_record = run(kvv, sim.url, "--resume", out="norecord")
    assert no_record.exit_code == 2 and "no run record" in no_record.stderr
    assert sim.stats["requests"] == 0


def test_a_changed_expectation_is_judged_again(kvv, simulator, tmp_path):
    """The digest covers what the judge compares against, not only the request."""
    sim = simulator("kimi-k3")
    case = {"id": "hello", "description": "one message",
            "request": {"messages": [{"role": "user", "content": "Hello, how are you?"}]},
            "expected_prompt_tokens": 14}
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps(case) + "\n")
    first = run(kvv, sim.url, "--only", "prompt-tokens", "--cases", str(cases))
    assert first.exit_code == 0, first.output
    cases.write_text(json.dumps({**case, "expected_prompt_tokens": 500}) + "\n")
    again = run(kvv, sim.url, "--only", "prompt-tokens", "--cases", str(cases), "--resume")
    assert again.exit_code == 1, again.output
    assert not any(i["resumed"] for i in again.check("prompt-tokens")["items"])


def test_a_spent_budget_stops_starting_items_and_resume_finishes(kvv, simulator):
    sim = simulator("kimi-k3")
    short = run(kvv, sim.url, "--suite", "tools", "--max-duration", "1")
    assert short.exit_code == 3, short.output
    results = short.results
    assert results["complete"] is False and "--max-duration 1 s" in results["stopped"]
    items = [i for c in results["checks"] for i in c["items"]]
    unstarted = [i for i in items if i["message"].startswith("not run: the run's --max-duration")]
    assert unstarted and all(i["requests"] == 0 and i["verdict"] == "error" for i in unstarted)
    done = sum(1 for i in items if i["verdict"] != "error")
    finished = run(kvv, sim.url, "--suite", "tools", "--resume")
    assert finished.exit_code == 0, finished.output
    assert finished.results["complete"] is True and finished.results["totals"]["reused"] == done


def test_a_changed_contract_expectation_is_judged_again(kvv, simulator, tmp_path):
    sim = simulator("kimi-k3")
    cases = tmp_path / "tool-choice.yaml"

    def write(status: int) -> None:
        cases.write_text("cases:\n  - id: plain answer\n    request:\n      messages: [{role: user, content: hi}]\n"
                         f"      max_tokens: 8\n    expect: {{status: {status}}}\n")
    write(200)
    config = tmp_path / "kvv.yaml"
    config.write_text(f"checks:\n  tool-choice: {{cases: {cases}}}\n")
    first = run(kvv, sim.url, "--config", str(config), "--only", "tool-choice")
    assert first.exit_code == 0, first.output
    write(400)                        # the same requests, another expectation
    again = run(kvv, sim.url, "--config", str(config), "--only", "tool-choice", "--resume")
    assert again.exit_code == 1, again.output
    assert not any(i["resumed"] for i in again.check("tool-choice")["items"])
