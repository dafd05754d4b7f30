"""reasoning-history and tool-call-id over real loopback sockets: a healthy simulator passes,
a template that drops history reasoning and a gateway that rewrites tool-call ids are caught."""

from __future__ import annotations

import pytest

from kvv.checks.base import Context
from kvv.checks.reasoning_history import CHECKS, id_pattern
from kvv.profile import load_profile

ONLY = "reasoning-history,tool-call-id"
FULL = {"history reasoning accepted", "prompt_tokens grow with history reasoning", "history reasoning recalled"}


def run_against(kvv, sim, *extra: str, profile: str = "kimi-k3"):
    return kvv("run", "--base-url", sim.url, "--model", profile, "--profile", profile,
               "--max-retries", "1", "--only", ONLY, *extra)


def kinds(check) -> dict[str, set[str]]:
    """Item kind (id without its mode) -> verdicts over both modes."""
    out: dict[str, set[str]] = {}
    for item in check["items"]:
        out.setdefault(item["id"].rsplit(" [", 1)[0], set()).add(item["verdict"])
    return out


def test_id_pattern_follows_the_profile_format():
    pattern = id_pattern("functions.{name}:{index}", "get_weather")
    assert pattern.pattern == r"^functions\.get_weather:\d+$"
    assert pattern.match("functions.get_weather:0") and pattern.match("functions.get_weather:12")
    for wrong in ("functions.get_time:0", "functionsXget_weather:0", "call_0123456789abcdef01234567",
                  "functions.get_weather:", "functions.get_weather:0 "):
        assert not pattern.match(wrong), wrong


def test_history_carries_ids_in_the_profile_format_and_modes():
    ctx = Context("m", load_profile("kimi-k3"), "kimi")
    history, ids = CHECKS
    items = history.build(ctx)
    assert {i.id for i in items} == {f"{k} [{m}]" for k in FULL for m in ("stream", "non-stream")}
    assert sum(len(i.requests) for i in items) == 8
    body = items[0].requests[0]
    assert body["thinking"] == {"type": "enabled"}
    calls = [c for m in body["messages"] for c in m.get("tool_calls", [])]
    results = [m for m in body["messages"] if m["role"] == "tool"]
    assert [c["id"] for c in calls] == ["functions.get_weather:0"] == [m["tool_call_id"] for m in results]
    assert any(m.get("reasoning_content") and m.get("tool_calls") for m in body["messages"])
    assert all(i.requests[0].get("stream") is True for i in items if i.id.endswith("[stream]"))
    assert {i.id for i in ids.build(ctx)} == {f"{k} call ids [{m}]" for k in ("single", "parallel")
                                             for m in ("stream", "non-stream")}


def test_applicability_follows_the_profile():
    history, ids = CHECKS
    generic = Context("m", load_profile("generic"), "none")
    assert history.build(generic) == [] and ids.build(generic) == []      # no thinking mode, no id format
    k3_off = Context("m", load_profile("kimi-k3"), "none")                # server default: thinking
    assert len(history.build(k3_off)) == 6 and "thinking" not in history.build(k3_off)[0].requests[0]


@pytest.mark.parametrize("profile,think_mode", [("kimi-k3", "kimi"), ("kimi-k3", "opensource"),
                                                ("kimi-k2.5", "kimi"), ("kimi-k3", "none")])
def test_healthy_vendor_passes(kvv, simulator, profile, think_mode):
    run = run_against(kvv, simulator(profile), "--think-mode", think_mode, profile=profile)
    assert run.exit_code == 0, run.output
    assert run.verdicts() == {"reasoning-history": "pass", "tool-call-id": "pass"}
    assert run.check("reasoning-history")["n"] == 6 and run.check("tool-call-id")["n"] == 4
    for item in run.check("reasoning-history")["items"]:
        if item["id"].startswith("prompt_tokens grow"):
            assert item["data"]["delta"] > 0, item
    parallel = [i for i in run.check("tool-call-id")["items"] if i["id"].startswith("parallel")]
    assert all("2 id(s)" in i["message"] for i in parallel), parallel


def test_generic_profile_runs_only_prompt_tokens(kvv, simulator):
    run = kvv("run", "--base-url", simulator("generic").url, "--model", "generic", "--profile", "generic",
              "--suite", "tools", "--only", f"{ONLY},prompt-tokens")
    assert run.exit_code == 0, run.output
    assert run.verdicts() == {"prompt-tokens": "pass"}


def test_dropped_history_reasoning_is_caught(kvv, simulator):
    run = run_against(kvv, simulator("kimi-k3", "drop-reasoning-history"))
    assert run.exit_code == 1, run.output
    assert run.verdicts() == {"reasoning-history": "fail", "tool-call-id": "pass"}
    assert kinds(run.check("reasoning-history")) == {
        "history reasoning accepted": {"pass"},
        "prompt_tokens grow with history reasoning": {"fail"},
        "history reasoning recalled": {"fail"},
    }
    assert run.check("reasoning-history")["evidence"]


def test_rewritten_tool_call_ids_are_caught(kvv, simulator):
    run = run_against(kvv, simulator("kimi-k3", "tool-id-format"))
    assert run.exit_code == 1, run.output
    assert run.verdicts() == {"reasoning-history": "pass", "tool-call-id": "fail"}
    items = run.check("tool-call-id")["items"]
    assert all(i["verdict"] == "fail" and "call_" in i["message"] for i in items), items


def test_miscounted_usage_does_not_fail_history(kvv, simulator):
    run = run_against(kvv, simulator("kimi-k3", "usage-off=7"))
    assert run.verdicts() == {"reasoning-history": "pass", "tool-call-id": "pass"}
