"""A sequential check stops sending items once its verdict is settled; in-flight items count."""

from __future__ import annotations

import jsonschema
import json
from pathlib import Path

from kvv import runner
from kvv.checks.base import Check, Context, Item, passed
from kvv.config import Settings
from kvv.plan import Plan, PlannedCheck
from kvv.profile import load_profile

SCHEMA = json.loads((Path(__file__).parent.parent / "kvv" / "schemas" / "results.schema.json").read_text())


def plan(settle_after: int | None, items: int = 50) -> Plan:
    context = Context(model="kimi-k3", profile=load_profile("kimi-k3"), think_mode="kimi")
    body = {"model": "kimi-k3", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    planned = [Item(f"item {i}", [{**body, "messages": [{"role": "user", "content": f"hi {i}"}]}],
                    judge=lambda exchanges: passed("ok")) for i in range(items)]
    settled = None if settle_after is None else (lambda records, ctx: len(records) >= settle_after)
    check = Check("sequential", "a sequential check", "nothing", ("preflight",), lambda ctx: planned,
                  settled=settled)
    return Plan([PlannedCheck(check, planned, context)], {})


def run(simulate, tmp_path, settle_after, concurrency=2):
    sim = simulate("kimi-k3")
    settings = Settings(base_url=sim.url, model="kimi-k3", output_dir=str(tmp_path / "out"), concurrency=concurrency)
    results = runner.run(settings, runner.resolve_target(settings), plan(settle_after), None)
    jsonschema.validate(results, SCHEMA)
    return results, sim


def test_settled_checks_send_no_more(simulate, tmp_path):
    results, sim = run(simulate, tmp_path, settle_after=5)
    check = results["checks"][0]
    assert check["stopped_early"] is True and check["planned"] == 50
    # Settled once 5 finished; at most `concurrency` - 1 more were in flight and count.
    assert 5 <= check["n"] <= 6 and check["verdict"] == "pass"
    assert sim.stats["requests"] == check["n"] + results["totals"]["probe_requests"]
    assert [i["id"] for i in check["items"]] == [f"item {i}" for i in range(check["n"])]   # plan order


def test_an_unsettled_check_runs_every_item(simulate, tmp_path):
    results, _ = run(simulate, tmp_path, settle_after=10_000)
    check = results["checks"][0]
    assert check["stopped_early"] is False and check["n"] == check["planned"] == 50
