"""The tools suite end to end: no false alarm on a healthy vendor under every profile, and each
tool-calling fault caught by the checks that exist for it (and by no unrelated check)."""

from __future__ import annotations

import jsonschema
import pytest

from kvv.schema import schema

TOOLS_CHECKS = {"tool-schema", "tool-choice", "response-format", "dynamic-tools", "thinking-effort",
                "reasoning-history", "tool-call-id", "prompt-tokens", "tool-workflow", "toolcall-replay"}


def run_tools(kvv, sim, profile="kimi-k3", *extra):
    return kvv("run", "--base-url", sim.url, "--model", profile, "--profile", profile, "--suite", "tools",
               "--max-retries", "2", "--concurrency", "8", *extra)


@pytest.mark.parametrize("profile,applicable", [
    ("kimi-k3", TOOLS_CHECKS),
    ("kimi-k2.5", TOOLS_CHECKS - {"dynamic-tools", "thinking-effort"}),
    ("generic", TOOLS_CHECKS - {"dynamic-tools", "thinking-effort", "reasoning-history", "tool-call-id"}),
])
def test_healthy_vendor_passes_the_tools_suite(kvv, simulator, profile, applicable):
    run = run_tools(kvv, simulator(profile), profile)
    assert run.exit_code == 0, run.output
    assert run.verdicts() == dict.fromkeys(run.verdicts(), "pass")
    assert set(run.verdicts()) == applicable
    jsonschema.Draft202012Validator(schema("results.schema.json")).validate(run.results)


# Each fault, and every check that must catch it. A fault that breaks tool calls in general is
# also caught by the multi-turn workflow; that is a true detection, not an unrelated alarm.
FAULTS = {
    "tool-args-invalid=0.5": {"tool-schema", "toolcall-replay", "tool-workflow"},
    "tool-args-broken-json=0.5": {"tool-schema", "toolcall-replay", "tool-workflow"},
    "tool-finish-reason-stop": {"tool-choice", "dynamic-tools", "toolcall-replay", "tool-workflow"},
    "stream-tool-index-bug": {"tool-workflow", "toolcall-replay"},
    "tool-trigger-drift=0.5": {"tool-choice", "toolcall-replay", "tool-workflow"},
    "tool-choice-ignored": {"tool-choice"},
    "response-format-ignored": {"response-format"},
    "dynamic-tools-ignored": {"dynamic-tools"},
    "drop-reasoning-history": {"reasoning-history", "prompt-tokens"},
    "tool-id-format": {"tool-call-id"},
    "usage-off=7": {"prompt-tokens"},
}


@pytest.mark.parametrize("fault", FAULTS)
def test_tool_fault_is_caught_by_its_checks(kvv, simulator, fault):
    run = run_tools(kvv, simulator("kimi-k3", fault))
    run.assert_fails_exactly(FAULTS[fault])
    summary = (run.out / "summary.md").read_text()
    assert all(f"`{check}`" in summary for check in FAULTS[fault])
    jsonschema.Draft202012Validator(schema("results.schema.json")).validate(run.results)
