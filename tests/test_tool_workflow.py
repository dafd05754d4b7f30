"""tool-workflow: kvv drives multi-step tool conversations, over real loopback sockets; each
way a turn can go wrong is also driven through a scripted `send`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from importlib import resources

import pytest
import yaml

from kvv.checks.base import Context
from kvv.checks.tool_workflow import CHECKS, Workbench, builtin_tasks
from kvv.checks.toolcalls import call_problem
from kvv.exchange import Choice, Exchange, Message
from kvv.profile import load_profile

WORKFLOWS = yaml.safe_load((resources.files("kvv") / "data" / "tool-workflows.yaml").read_text(encoding="utf-8"))
PLACEHOLDER = re.compile(r"\{r(\d+)\.(\d+)\}")


def workflow(kvv, sim, profile="kimi-k3", *extra):
    return kvv("run", "--base-url", sim.url, "--model", profile, "--profile", profile, "--suite", "tools",
               "--only", "tool-workflow", "--max-retries", "2", *extra)


def substitute(value, results, parse=True):
    """The simulator's placeholder rule: in arguments, a whole placeholder becomes the parsed result."""
    if not isinstance(value, str):
        return value
    whole = PLACEHOLDER.fullmatch(value)
    if whole and parse:
        text = results[int(whole[1])][int(whole[2])]
        try:
            return json.loads(text)
        except ValueError:
            return text
    return PLACEHOLDER.sub(lambda m: results[int(m[1])][int(m[2])], value)


@pytest.mark.parametrize("task", WORKFLOWS["tasks"], ids=lambda t: t["id"])
def test_scripts_solve_their_tasks_with_kvvs_tools(task):
    """The data is consistent: playing the script with kvv's tools yields `expect`."""
    bench = Workbench(task.get("state") or {})
    parameters = {name: WORKFLOWS["tools"][name]["parameters"] for name in task["tools"]}
    results = []
    for calls in task["script"]:
        round_results = []
        for call in calls:
            arguments = {k: substitute(v, results) for k, v in call["arguments"].items()}
            as_sent = {"id": "x", "function": {"name": call["name"], "arguments": json.dumps(arguments)}}
            assert call_problem(as_sent, parameters) is None
            round_results.append(bench.run(call["name"], arguments))
        results.append(round_results)
    assert not any(r.startswith("error") for rs in results for r in rs), results
    assert task["expect"] in substitute(task["final"], results, parse=False)
    assert max(len(calls) for calls in task["script"]) >= task["min-parallel"]


def test_the_tasks_cover_parallel_rounds_kv_and_files():
    tasks = WORKFLOWS["tasks"]
    assert 4 <= len(tasks) <= 6
    assert any(t["min-parallel"] >= 3 for t in tasks)
    assert any(len(t["script"]) >= 3 for t in tasks)
    used = {call["name"] for t in tasks for calls in t["script"] for call in calls}
    assert used == set(WORKFLOWS["tools"])


def test_call_problem_names_the_fault():
    parameters = {"add": WORKFLOWS["tools"]["add"]["parameters"]}
    call = lambda name, arguments: {"id": "c", "function": {"name": name, "arguments": arguments}}  # noqa: E731
    assert call_problem(call("add", '{"a": 1, "b": 2}'), parameters) is None
    assert "undeclared tool 'sub'" in call_problem(call("sub", "{}"), parameters)
    assert "not valid JSON" in call_problem(call("add", '{"a": 1, "b"'), parameters)
    assert "at $.b" in call_problem(call("add", '{"a": 1, "b": "2"}'), parameters)
    assert "expected a JSON string" in call_problem(call("add", {"a": 1, "b": 2}), parameters)


# -- each failure mode, through a scripted `send` ---------------------------------------------------

def context(profile="kimi-k3"):
    return Context(model="m", profile=load_profile(profile), think_mode="kimi", options={"max-tokens": 4096})


def item(task_id="sum-of-products", streamed=False):
    items = CHECKS[0].build(context())
    return next(i for i in items if i.id == f"{task_id} [{'stream' if streamed else 'non-stream'}]")


def reply(*calls, content=None, finish=None, reasoning=None):
    """An exchange whose message carries `calls` ((id, name, arguments) tuples)."""
    tool_calls = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls]
    finish = finish or ("tool_calls" if calls else "stop")
    message = Message(content=content, reasoning_content=reasoning, tool_calls=tool_calls)
    return Exchange(request={}, status=200, choices=[Choice(0, message, finish)])


def drive(replies, the_item=None):
    sent = []

    async def send(body, *, reference=False):
        sent.append(json.loads(json.dumps(body)))
        return replies[len(sent) - 1]
    outcome = asyncio.run((the_item or item()).execute(send))
    return outcome, sent


SOLVED = [
    reply(("a", "multiply", '{"a":3,"b":4}'), ("b", "multiply", '{"a":5,"b":6}'), reasoning="two products"),
    reply(("c", "add", '{"a":12,"b":30}')),
    reply(content="42"),
]


def test_a_correct_conversation_passes_and_round_trips_everything():
    outcome, sent = drive(SOLVED)
    assert outcome.verdict == "pass", outcome.message
    assert outcome.data == {"turns": 3, "calls": 3, "widest_turn": 2}
    second = sent[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool", "tool"]
    assert second[1]["reasoning_content"] == "two products"          # reasoning goes back with tool calls
    assert second[1]["tool_calls"] == SOLVED[0].message.tool_calls    # exactly as returned
    assert [(m["tool_call_id"], m["content"]) for m in second[2:]] == [("a", "12"), ("b", "30")]
    assert sent[2]["messages"][-1] == {"role": "tool", "tool_call_id": "c", "content": "42"}


@pytest.mark.parametrize("replies,message", [
    ([reply(("a", "divide", "{}"))], "undeclared tool 'divide'"),
    ([reply(("a", "multiply", '{"a":3,'))], "not valid JSON"),
    ([reply(("a", "multiply", '{"a":3}'))], "violate the schema"),
    ([reply(("", "multiply", '{"a":3,"b":4}'))], "has no id"),
    ([reply(("a", "multiply", '{"a":3,"b":4}'), ("a", "multiply", '{"a":5,"b":6}'))], "already used"),
    ([SOLVED[0], reply(("a", "add", '{"a":12,"b":30}'))], "already used"),
    ([reply(("a", "multiply", '{"a":3,"b":4}'), ("b", "multiply", '{"a":5,"b":6}'), finish="stop")],
     "finish_reason 'stop'; expected 'tool_calls'"),
    ([reply(("a", "multiply", '{"a":3,"b":4}')), reply(("b", "multiply", '{"a":5,"b":6}')),
      reply(("c", "add", '{"a":12,"b":30}')), reply(content="42")], "no turn carried 2 tool calls at once"),
    ([reply(content="42")], "without calling a tool"),
    ([*SOLVED[:2], reply(content="The answer is 41.")], "does not contain '42'"),
    ([*SOLVED[:2], reply(content="42", finish="length")], "finish_reason 'length'"),
    ([SOLVED[0], *[reply((f"x{n}", "add", '{"a":1,"b":1}')) for n in range(3)]], "still calling tools after 4"),
])
def test_each_broken_turn_fails_precisely(replies, message):
    outcome, sent = drive(replies)
    assert outcome.verdict == "fail"
    assert message in outcome.message
    assert len(sent) == len(replies)


def test_transport_trouble_is_an_error_not_a_verdict():
    outcome, _ = drive([Exchange(request={}, error="timeout", error_detail="read timed out")])
    assert outcome.verdict == "error"


def test_not_applicable_without_tools():
    profile = load_profile("generic")
    no_tools = dataclasses.replace(profile, features={**profile.features, "tools": False})
    assert CHECKS[0].build(dataclasses.replace(context(), profile=no_tools)) == []


def test_items_and_request_budget():
    items = CHECKS[0].build(context())
    assert len(items) == 2 * len(builtin_tasks())
    assert {i.request_count for i in items} == {t.request_limit for t in builtin_tasks()}
    streamed = [i for i in items if i.id.endswith("[stream]")]
    assert all(i.requests[0]["stream_options"] == {"include_usage": True} for i in streamed)
    assert all(i.requests[0]["thinking"] == {"type": "enabled"} for i in items)   # the profile's default


# -- against the simulator ------------------------------------------------------------------------

@pytest.mark.parametrize("profile", ["kimi-k3", "kimi-k2.5", "generic"])
def test_healthy_vendor_passes_stream_and_non_stream(kvv, simulator, profile):
    run = workflow(kvv, simulator(profile), profile)
    assert run.exit_code == 0, run.output
    check = run.check("tool-workflow")
    assert check["verdict"] == "pass", [i["message"] for i in check["items"]]
    assert check["n"] == 2 * len(builtin_tasks())
    assert {i["id"].rsplit(" ", 1)[1] for i in check["items"]} == {"[stream]", "[non-stream]"}


def test_stream_tool_index_bug_breaks_parallel_calls_in_streams_only(kvv, simulator):
    run = workflow(kvv, simulator("kimi-k3", "stream-tool-index-bug"))
    assert run.exit_code == 1
    check = run.check("tool-workflow")
    failing = {i["id"] for i in check["items"] if i["verdict"] == "fail"}
    parallel = {t.id for t in builtin_tasks() if t.min_parallel >= 2}
    assert failing == {f"{task} [stream]" for task in parallel}, failing
    assert check["evidence"]


def test_broken_argument_json_fails(kvv, simulator):
    run = workflow(kvv, simulator("kimi-k3", "tool-args-broken-json=0.5"))
    assert run.exit_code == 1
    check = run.check("tool-workflow")
    assert any("not valid JSON" in i["message"] for i in check["items"] if i["verdict"] == "fail")
