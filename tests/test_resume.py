"""--resume reuses finished items from the journal and finishes an interrupted run."""

from __future__ import annotations

import json


def item_lines(journal):
    return [json.loads(l) for l in journal.read_text().splitlines() if '"kind": "item"' in l]


def test_resume_reuses_finished_items(kvv, simulator):
    sim = simulator("kimi-k3", "ignore-temperature")
    first = kvv("run", "--base-url", sim.url, "--model", "kimi-k3")
    assert first.exit_code == 1
    requests_before = sim.stats["requests"]
    second = kvv("run", "--base-url", sim.url, "--model", "kimi-k3", "--resume")
    assert second.exit_code == 1
    assert sim.stats["requests"] == requests_before          # nothing sent again
    assert second.verdicts() == first.verdicts()
    assert all(i["resumed"] for c in second.results["checks"] for i in c["items"])
    assert second.check("param-temperature")["evidence"]    # evidence survives the resume


def test_resume_finishes_an_interrupted_run(kvv, simulator):
    sim = simulator("kimi-k3")
    full = kvv("run", "--base-url", sim.url, "--model", "kimi-k3")
    journal = full.out / "journal.jsonl"
    lines = journal.read_text().splitlines()
    # Keep the first half of the journal, the last line cut mid-write as a hard kill would leave it.
    kept = lines[: len(lines) // 2]
    journal.write_text("\n".join(kept) + "\n" + lines[len(lines) // 2][:20])
    finished = len([l for l in kept if '"kind": "item"' in l])
    before = sim.stats["requests"]
    resumed = kvv("run", "--base-url", sim.url, "--model", "kimi-k3", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert resumed.verdicts() == full.verdicts()
    reused = sum(i["resumed"] for c in resumed.results["checks"] for i in c["items"])
    assert reused == finished
    assert sim.stats["requests"] - before == full.results["totals"]["requests"] - sum(
        i["requests"] for c in resumed.results["checks"] for i in c["items"] if i["resumed"])


def test_changed_request_is_not_reused(kvv, simulator, tmp_path):
    sim = simulator("kimi-k3")
    kvv("run", "--base-url", sim.url, "--model", "kimi-k3", "--only", "max-tokens-applied")
    config = tmp_path / "c.yaml"
    config.write_text("checks:\n  max-tokens-applied: {limit: 7}\n")
    again = kvv("run", "--config", str(config), "--base-url", sim.url, "--model", "kimi-k3",
                "--only", "max-tokens-applied", "--resume")
    assert again.exit_code == 0
    assert not any(i["resumed"] for i in again.check("max-tokens-applied")["items"])
