"""A crash of kvv is its own class of error, never an outage of the vendor; every check is
accounted for in the results, the table and the summary."""

from __future__ import annotations

import json

import pytest

from kvv import runner
from kvv.checks.base import Check, Context, Item, passed
from kvv.config import Settings
from kvv.plan import Plan, PlannedCheck
from kvv.profile import load_profile
from kvv.report import render_markdown, render_terminal

SECRET = "sk-internal-canary-0123456789abcdef"


def broken_plan(model: str, *, in_summary: bool = False) -> Plan:
    profile = load_profile("kimi-k3")
    context = Context(model=model, profile=profile, think_mode="kimi")

    async def crash(send):
        await send({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        raise KeyError(f"bug with {SECRET} in it")

    def summarize(records, ctx):
        raise ZeroDivisionError(f"bug with {SECRET}")

    items = [Item("ok", [{"model": model, "messages": [{"role": "user", "content": "hi"}]}],
                  judge=lambda exchanges: passed("fine"))]
    if not in_summary:
        items.append(Item("crashes", [], run=crash, request_count=1))
    check = Check("buggy", "a check with a bug", "nothing: it crashes", ("preflight",), lambda ctx: items,
                  summarize=summarize if in_summary else None)
    return Plan([PlannedCheck(check, items, context)], {"tool-schema": "skipped by configuration"})


@pytest.mark.internal_errors_expected
@pytest.mark.parametrize("in_summary", [False, True])
def test_a_crash_is_internal_not_the_vendors_outage(simulate, tmp_path, in_summary):
    sim = simulate("kimi-k3")
    settings = Settings(base_url=sim.url, model="kimi-k3", output_dir=str(tmp_path / "out"))
    target = runner.resolve_target(settings)
    results = runner.run(settings, target, broken_plan("kimi-k3", in_summary=in_summary), SECRET)
    check = results["checks"][0]
    assert check["verdict"] == "error" and results["verdict"] == "error" and results["exit_code"] == 3
    assert check["errors"]["internal"] == 1 and results["totals"]["errors"]["internal"] == 1
    # No vendor error class is blamed: the simulator answered everything.
    assert all(v == 0 for k, v in results["totals"]["errors"].items() if k != "internal")
    if not in_summary:
        crashed = next(i for i in check["items"] if i["id"] == "crashes")
        assert crashed["internal"] is True and "kvv internal error (a bug in kvv" in crashed["message"]
    journal = (tmp_path / "out" / "journal.jsonl").read_text()
    tracebacks = [json.loads(line) for line in journal.splitlines() if '"kind": "internal"' in line]
    assert len(tracebacks) == 1 and "Traceback (most recent call last)" in tracebacks[0]["traceback"]
    assert SECRET not in journal and SECRET not in json.dumps(results)
    assert "kvv internal errors:** 1" in render_markdown(results)
    assert "kvv internal errors: 1" in render_terminal(results)
    # Skipped checks are accounted for, with their reason.
    assert [(c["id"], c["reason"]) for c in results["not_run"]] == [("tool-schema", "skipped by configuration")]


def test_every_check_is_accounted_for_with_the_generic_profile(kvv, simulator):
    """Tools checks the generic profile cannot run are listed with why, not silently dropped."""
    sim = simulator("generic")
    run = kvv("run", "--base-url", sim.url, "--model", "generic", "--profile", "generic", "--suite", "tools")
    assert run.exit_code == 0, run.output
    results = run.results
    ran, not_run = {c["id"] for c in results["checks"]}, {c["id"]: c["reason"] for c in results["not_run"]}
    from kvv.checks import registry
    tools = {c.id for c in registry(load_profile("generic")) if "tools" in c.suites}
    assert ran | set(not_run) == tools and not ran & set(not_run)
    assert "dynamic-tools" in not_run and "thinking-effort" in not_run
    assert all(reason for reason in not_run.values())
    summary = (run.out / "summary.md").read_text()
    assert "**Not run**" in summary and "`dynamic-tools`" in summary
    assert "not run:" in run.output and "dynamic-tools" in run.output


def test_disabled_and_skipped_checks_are_listed(kvv, simulator, tmp_path):
    sim = simulator("kimi-k3")
    config = tmp_path / "kvv.yaml"
    config.write_text("checks:\n  stream-parity: {enabled: false}\n")
    run = kvv("run", "--config", str(config), "--base-url", sim.url, "--model", "kimi-k3", "--skip", "n-applied")
    assert run.exit_code == 0, run.output
    not_run = {c["id"]: c["reason"] for c in run.results["not_run"]}
    assert not_run == {"stream-parity": "skipped by configuration", "n-applied": "skipped by configuration"}


def test_a_simulated_run_says_so(kvv):
    run = kvv("run", "--simulate", "--sim-fault", "ignore-temperature", "--only", "param-temperature")
    assert run.exit_code == 1
    target = run.results["target"]
    assert target["simulated"] is True and target["simulation"] == {"faults": {"ignore-temperature": None}, "seed": 0}
    assert "kvv's simulated vendor" in run.output.splitlines()[0]
    assert "Simulated: kvv's own simulated vendor (faults: ignore-temperature)" in run.output
