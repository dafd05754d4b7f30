"""The simulated vendor's tools, tool_choice, response_format, thinking effort, reasoning history and
workflow tasks, and the faults that break them; spoken to over loopback with plain httpx."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator

from kvv.simulator import Simulator
from kvv.simulator.tokenizer import count, prompt_tokens
from kvv.simulator.workflows import load_tasks

HTTP = httpx.Client(timeout=10)


@pytest.fixture(scope="module", autouse=True)
def close_http_pool():
    yield
    HTTP.close()


def tool(name: str, parameters: dict[str, Any] | None = None, **function: Any) -> dict[str, Any]:
    parameters = parameters or {"type": "object", "properties": {"city": {"type": "string", "minLength": 2}},
                                "required": ["city"], "additionalProperties": False}
    return {"type": "function", "function": {"name": name, "description": f"The {name} tool.",
                                             "parameters": parameters, **function}}


WEATHER, TIME, NEWS = tool("get_weather"), tool("get_time"), tool("get_news", {
    "type": "object", "properties": {"topic": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
    "required": ["topic", "limit"]})
QUIET = {"thinking": {"type": "disabled"}}      # no reasoning: shorter answers, same tool behaviour


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def body(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages) or [user("What is the weather in Paris?")], **fields}


def post(simulator: Simulator, payload: Any) -> httpx.Response:
    return HTTP.post(f"{simulator.url}/chat/completions", json=payload)


def completion(simulator: Simulator, payload: dict[str, Any]) -> dict[str, Any]:
    response = post(simulator, payload)
    assert response.status_code == 200, response.text
    return response.json()


def message(simulator: Simulator, payload: dict[str, Any]) -> dict[str, Any]:
    return completion(simulator, payload)["choices"][0]["message"]


def streamed(simulator: Simulator, payload: dict[str, Any]) -> list[dict[str, Any]]:
    with HTTP.stream("POST", f"{simulator.url}/chat/completions", json={**payload, "stream": True}) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def merged(events: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """Choice 0 of a stream as a client rebuilds it: text concatenated, tool-call deltas merged by index."""
    built: dict[str, Any] = {"role": "assistant", "content": ""}
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for event in events:
        for choice in event["choices"]:
            delta = choice["delta"]
            for name in ("content", "reasoning_content"):
                if delta.get(name):
                    built[name] = built.get(name, "") + delta[name]
            for part in delta.get("tool_calls") or []:
                call = calls.setdefault(part["index"], {"function": {"name": "", "arguments": ""}})
                for name in ("id", "type"):
                    if name in part:
                        call[name] = part[name]
                call["function"]["name"] += part.get("function", {}).get("name", "")
                call["function"]["arguments"] += part.get("function", {}).get("arguments", "")
            finish = choice["finish_reason"] or finish
    if calls:
        built["tool_calls"] = [calls[index] for index in sorted(calls)]
    return built, finish


def called(reply: dict[str, Any]) -> list[str]:
    return [call["function"]["name"] for call in reply.get("tool_calls") or []]


def ids(reply: dict[str, Any]) -> list[str]:
    return [call["id"] for call in reply.get("tool_calls") or []]


# -- validation: each rule answers exactly 400 -------------------------------------------------

def system_tools(*tools: Any, **fields: Any) -> dict[str, Any]:
    return {"role": "system", "tools": list(tools), **fields}


REJECTED = {
    "dynamic tools on a user message": body({**user("Hi"), "tools": [WEATHER]}),
    "dynamic tools on an assistant message": body(user("Hi"), {"role": "assistant", "content": "Hello",
                                                               "tools": [WEATHER]}, user("Weather?")),
    "system message with content and tools": body(system_tools(WEATHER, content="Be brief."), user("Weather?")),
    "tool without type": body(tools=[{"function": WEATHER["function"]}]),
    "dynamic tool without type": body(system_tools({"function": WEATHER["function"]}), user("Weather?")),
    "tool without function": body(tools=[{"type": "function"}]),
    "tool without name": body(tools=[{"type": "function", "function": {"parameters": {}}}]),
    "type bogus": body(tools=[{**WEATHER, "type": "bogus"}]),
    "type bogus next to a valid tool": body(system_tools(TIME, {**WEATHER, "type": "bogus"}), user("Weather?")),
    "name starting with a digit": body(tools=[tool("1weather")]),
    "name with @": body(tools=[tool("get@weather")]),
    "empty name": body(tools=[tool("")]),
    "name of 257 characters": body(tools=[tool("a" * 257)]),
    "tools not an array": body(tools=WEATHER),
    "dynamic tools not an array": body(system_tools() | {"tools": WEATHER}, user("Weather?")),
    "a null tool": body(tools=[WEATHER, None]),
    "parameters not an object": body(tools=[tool("get_weather") | {"function": {"name": "x", "parameters": "{}"}}]),
    "duplicate names in one message": body(system_tools(WEATHER, WEATHER), user("Weather?")),
    "duplicate names across dynamic messages": body(system_tools(WEATHER), system_tools(WEATHER), user("Weather?")),
    "duplicate names global and dynamic": body(system_tools(WEATHER), user("Weather?"), tools=[WEATHER]),
    "duplicate global names": body(tools=[WEATHER, WEATHER]),
    "tool message without tool_call_id": body(user("Weather?"), {"role": "tool", "content": "sunny"}),
    "tool_choice bogus": body(tools=[WEATHER], tool_choice="bogus"),
    "tool_choice required without tools": body(tool_choice="required"),
    "tool_choice required with empty tools": body(tools=[], tool_choice="required"),
    "tool_choice naming an undeclared tool": body(tools=[WEATHER], tool_choice={"type": "function",
                                                                                "function": {"name": "get_time"}}),
    "tool_choice object without function": body(tools=[WEATHER], tool_choice={"type": "function"}),
    "response_format not an object": body(response_format="json_object"),
    "response_format type bogus": body(response_format={"type": "bogus"}),
    "json_schema missing": body(response_format={"type": "json_schema"}),
    "json_schema not an object": body(response_format={"type": "json_schema", "json_schema": "x"}),
    "json_schema without name": body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
    "json_schema without schema": body(response_format={"type": "json_schema", "json_schema": {"name": "r"}}),
    "json_schema schema not an object": body(response_format={"type": "json_schema",
                                                              "json_schema": {"name": "r", "schema": "x"}}),
    "json_schema strict not a boolean": body(response_format={"type": "json_schema", "json_schema": {
        "name": "r", "schema": {}, "strict": "yes"}}),
    "thinking.effort extreme": body(thinking={"type": "enabled", "effort": "extreme"}),
    "reasoning_effort extreme": body(reasoning_effort="extreme"),
    "chat_template_kwargs.thinking_effort extreme": body(chat_template_kwargs={"thinking": True,
                                                                               "thinking_effort": "extreme"}),
}


@pytest.mark.parametrize("case", REJECTED)
def test_malformed_requests_get_exactly_400(simulate, case):
    response = post(simulate("kimi-k3"), REJECTED[case])
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("payload", [
    body(system_tools(WEATHER), user("Weather?")),
    body(system_tools(WEATHER, content=""), user("Weather?")),
    body(system_tools(WEATHER, content=[]), user("Weather?")),
    body(system_tools(WEATHER), user("Weather?"), tools=[TIME]),
    body(tools=[tool("a" * 256), tool("Get.weather-v2_x")]),
    body(tools=[tool("get_weather", strict=False)]),
    body(tools=None, tool_choice="none"),
    body(tool_choice="auto"),
    body(response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": {}, "strict": False}}),
    body(reasoning_effort="none"),
], ids=str)
def test_well_formed_requests_are_accepted(simulate, payload):
    assert post(simulate("kimi-k3"), payload).status_code == 200


def test_a_model_without_dynamic_tools_rejects_them(simulate):
    response = post(simulate("kimi-k2.5"), body(system_tools(WEATHER), user("Weather?")))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_a_model_without_effort_levels_ignores_effort_fields(simulate):
    payload = body(thinking={"type": "enabled", "effort": "extreme"}, reasoning_effort="extreme")
    assert post(simulate("kimi-k2.5"), payload).status_code == 200


# -- tool_choice and the decision to call ------------------------------------------------------

@pytest.mark.parametrize("choice, prompt, calls", [
    ("auto", "What is the weather in Paris?", True),
    (None, "What is the weather in Paris?", True),
    ("auto", "Do not use any tool. What is the weather in Paris?", False),
    ("auto", "Answer WITHOUT USING ANY TOOL: is Paris in France?", False),
    ("auto", "don't use any tool, just guess", False),
    ("auto", "Please do not call anything.", False),
    ("none", "Check the weather in Paris with get_weather.", False),
    ("required", "Good morning!", True),
    ("required", "Do not use any tool.", True),
    ({"type": "function", "function": {"name": "get_time"}}, "What is the weather in Paris?", True),
])
def test_tool_choice_decides_whether_to_call(simulate, choice, prompt, calls):
    payload = body(user(prompt), tools=[WEATHER, TIME], **QUIET, **({} if choice is None else {"tool_choice": choice}))
    data = completion(simulate(), payload)
    reply, finish = data["choices"][0]["message"], data["choices"][0]["finish_reason"]
    assert bool(reply.get("tool_calls")) == calls
    assert finish == ("tool_calls" if calls else "stop")
    if calls:
        expected = ["get_time"] if isinstance(choice, dict) else ["get_weather"]
        assert called(reply) == expected
    else:
        assert reply["content"]


def test_auto_answers_a_tool_result_in_text_and_calls_for_a_trailing_system_message(simulate):
    simulator = simulate()
    call = {"id": "functions.get_weather:0", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    after_result = body(user("Weather in Paris?"), {"role": "assistant", "content": "", "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}, tools=[WEATHER], **QUIET)
    reply = message(simulator, after_result)
    assert "tool_calls" not in reply and reply["content"]
    system_last = body(user("I'm flying to Lisbon."), system_tools(WEATHER), tool_choice="auto", **QUIET)
    assert called(message(simulator, system_last)) == ["get_weather"]


def test_the_named_tool_is_called_else_the_first_declared(simulate):
    simulator = simulate()
    dynamic_and_global = body(system_tools(WEATHER, NEWS), user("Headlines please."), tools=[TIME], **QUIET)
    assert called(message(simulator, dynamic_and_global)) == ["get_time"]          # global first
    named = body(system_tools(WEATHER, NEWS), user("Use get_news for sailing."), tools=[TIME], **QUIET)
    assert called(message(simulator, named)) == ["get_news"]
    not_a_word = body(user("Use get_newsletter."), tools=[WEATHER, NEWS], **QUIET)     # a name inside another word
    assert called(message(simulator, not_a_word)) == ["get_weather"]


def test_arguments_are_a_compact_minimal_valid_instance(simulate):
    reply = message(simulate(), body(user("Use get_news."), tools=[NEWS], **QUIET))
    arguments = reply["tool_calls"][0]["function"]["arguments"]
    assert arguments == '{"topic":"","limit":1}'
    assert Draft202012Validator(NEWS["function"]["parameters"]).is_valid(json.loads(arguments))


def test_an_unsatisfiable_schema_gets_empty_arguments(simulate):
    impossible = tool("impossible", {"type": "object", "properties": {"x": {"type": "integer", "minimum": 2,
                                                                           "maximum": 1}}, "required": ["x"]})
    reply = message(simulate(), body(tools=[impossible], tool_choice="required", **QUIET))
    assert reply["tool_calls"][0]["function"]["arguments"] == "{}"


# -- parallel calls and ids --------------------------------------------------------------------

PARALLEL = body(user("Call get_time and then get_weather for Paris, both in this turn."), tools=[WEATHER, TIME],
                **QUIET)


def test_parallel_calls_in_order_of_mention_with_ids_and_honest_usage(simulate):
    data = completion(simulate(), PARALLEL)
    reply = data["choices"][0]["message"]
    assert called(reply) == ["get_time", "get_weather"]
    assert ids(reply) == ["functions.get_time:0", "functions.get_weather:1"]
    assert all(call["type"] == "function" for call in reply["tool_calls"])
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    arguments = sum(count(call["function"]["arguments"]) for call in reply["tool_calls"])
    assert data["usage"]["completion_tokens"] == count(reply["content"]) + arguments
    assert data["usage"]["prompt_tokens"] == prompt_tokens(PARALLEL)


@pytest.mark.parametrize("payload", [PARALLEL, body(user("Use get_news."), tools=[NEWS]),
                                     body(system_tools(WEATHER), user("Use get_weather."))], ids=str)
def test_stream_deltas_merged_by_index_reproduce_the_message(simulate, payload):
    simulator = simulate()
    expected = completion(simulator, payload)["choices"][0]
    events = streamed(simulator, payload)
    rebuilt, finish = merged(events)
    assert (rebuilt, finish) == (expected["message"], expected["finish_reason"])
    deltas = [part for e in events for c in e["choices"] for part in c["delta"].get("tool_calls") or []]
    firsts = [part for part in deltas if "id" in part]
    assert all(part["function"]["arguments"] == "" and part["type"] == "function" for part in firsts)
    for index in range(len(expected["message"]["tool_calls"])):    # the arguments come in several deltas
        assert len([part for part in deltas if part["index"] == index and "id" not in part]) >= 2


def test_ids_count_the_calls_already_in_the_history(simulate):
    simulator = simulate()
    history = [user("Weather in Paris?"),
               {"role": "assistant", "content": "", "tool_calls": [
                   {"id": "functions.get_weather:0", "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                   {"id": "functions.get_time:1", "type": "function",
                    "function": {"name": "get_time", "arguments": '{"city":"Paris"}'}}]},
               {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "sunny"},
               {"role": "tool", "tool_call_id": "functions.get_time:1", "content": "noon"},
               {"role": "assistant", "content": "Sunny at noon."},
               user("Now call get_weather and get_time for Rome.")]
    reply = message(simulator, body(*history, tools=[WEATHER, TIME], **QUIET))
    assert ids(reply) == ["functions.get_weather:2", "functions.get_time:3"]


def test_max_tokens_cuts_into_the_arguments(simulate):
    simulator = simulate()
    data = completion(simulator, {**PARALLEL, "max_tokens": 9})
    choice = data["choices"][0]
    assert choice["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 9
    assert sum(count(call["function"]["arguments"]) for call in choice["message"]["tool_calls"]) == 9


def test_tool_answers_are_deterministic_per_seed(simulate):
    first, again = simulate(seed=5), simulate(seed=5)
    payload = {**PARALLEL, "thinking": {"type": "enabled"}}
    assert completion(first, payload)["choices"] == completion(again, payload)["choices"]


# -- response_format ---------------------------------------------------------------------------

REPORT_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temperature": {"type": "number"},
                                                  "tags": {"type": "array", "items": {"type": "string"}}},
                 "required": ["city", "temperature"], "additionalProperties": False}


@pytest.mark.parametrize("stream", [False, True])
def test_response_formats(simulate, stream):
    simulator = simulate()

    def content(payload: dict[str, Any]) -> str:
        if stream:
            rebuilt, finish = merged(streamed(simulator, payload))
        else:
            choice = completion(simulator, payload)["choices"][0]
            rebuilt, finish = choice["message"], choice["finish_reason"]
        assert finish == "stop"
        return rebuilt["content"]

    keys = json.loads(content(body(user('Reply as JSON with the keys "city" and "country".'),
                                   response_format={"type": "json_object"}, **QUIET)))
    assert list(keys) == ["city", "country"] and all(isinstance(v, str) and v for v in keys.values())
    assert list(json.loads(content(body(user("Capital of Japan?"), response_format={"type": "json_object"},
                                        **QUIET)))) == ["answer"]
    for strict in (True, False):
        text = content(body(user("Weather report for Cairo."), **QUIET, response_format={
            "type": "json_schema", "json_schema": {"name": "report", "strict": strict, "schema": REPORT_SCHEMA}}))
        assert text == '{"city":"","temperature":0}'
    plain = content(body(user("Name a colour."), response_format={"type": "text"}, **QUIET))
    with pytest.raises(ValueError):
        json.loads(plain)


# -- thinking effort ---------------------------------------------------------------------------

def reasoning_tokens(simulator: Simulator, **fields: Any) -> int:
    return count(message(simulator, body(user("How many legs do three spiders have?"), **fields))["reasoning_content"])


def test_reasoning_grows_with_effort(simulate):
    simulator = simulate()
    by_effort = [reasoning_tokens(simulator, thinking={"type": "enabled", "keep": "all", "effort": e})
                 for e in ("low", "high", "max")]
    assert by_effort[0] < by_effort[1] < by_effort[2]
    assert [reasoning_tokens(simulator, reasoning_effort=e) for e in ("low", "high", "max")] == by_effort
    assert [reasoning_tokens(simulator, chat_template_kwargs={"thinking": True, "thinking_effort": e})
            for e in ("low", "high", "max")] == by_effort
    assert reasoning_tokens(simulator) == by_effort[2]                     # default: max
    low_wins = reasoning_tokens(simulator, thinking={"type": "enabled", "effort": "low"}, reasoning_effort="max")
    assert low_wins == by_effort[0]


@pytest.mark.parametrize("fields, effort", [
    ({}, "max"), ({"reasoning_effort": "low"}, "low"), ({"reasoning_effort": "high"}, "high"),
    ({"thinking": {"type": "enabled", "keep": "all", "effort": "low"}, "reasoning_effort": "max"}, "low"),
    ({"thinking": {"type": "enabled", "keep": "all"}}, "max"),
])
def test_the_model_reports_its_effective_effort(simulate, fields, effort):
    reply = message(simulate(), body(user("Which thinking effort level are you at?"), **fields))
    assert reply["content"] == f"My current thinking effort is {effort}."


def test_reasoning_effort_none_switches_thinking_off(simulate):
    assert "reasoning_content" not in message(simulate(), body(reasoning_effort="none"))
    assert "reasoning_content" in message(simulate("kimi-k2.5"), body(reasoning_effort="none"))   # no such field there


# -- reasoning history -------------------------------------------------------------------------

def history(*reasonings: str) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for number, reasoning in enumerate(reasonings):
        turns += [user(f"Question {number}?"), {"role": "assistant", "content": "An answer.",
                                                 "reasoning_content": reasoning}]
    return turns


RECALL = user("Do not use any tool. Which 4-digit number did you note in your previous reasoning? Number only.")


def test_recall_finds_the_last_four_digit_number_in_history_reasoning(simulate):
    simulator = simulate()
    planted = history("I note 1234 and 12345.", "Also 7351, then 20 and 99999.")
    assert message(simulator, body(*planted, RECALL, tools=[WEATHER], **QUIET))["content"] == "7351"
    nothing_planted = body(*history("Nothing here.", "Nor 123."), RECALL, **QUIET)
    assert message(simulator, nothing_planted)["content"] == "I don't know."


def test_history_reasoning_is_counted_in_prompt_tokens(simulate):
    simulator = simulate()
    short = body(*history("Short."), RECALL)
    long = body(*history("A much longer line of thought, step by step."), RECALL)
    usages = [completion(simulator, payload)["usage"]["prompt_tokens"] for payload in (short, long)]
    assert usages == [prompt_tokens(short), prompt_tokens(long)]
    assert usages[1] - usages[0] == count("A much longer line of thought, step by step.") - count("Short.")


# -- prompt tokens of the new parts ------------------------------------------------------------

def test_prompt_tokens_count_tools_history_calls_and_json_schema():
    base = body(user("Hello"))
    calls = [{"id": "functions.get_weather:0", "type": "function",
              "function": {"name": "get_weather", "arguments": '{"city":"巴黎"}'}}]
    schema = {"name": "report", "schema": REPORT_SCHEMA, "strict": True}

    def extra(payload: dict[str, Any]) -> int:
        return prompt_tokens(payload) - prompt_tokens(base)

    def json_count(value: Any) -> int:
        return count(json.dumps(value, ensure_ascii=False))

    assert extra({**base, "tools": [WEATHER]}) == json_count([WEATHER])
    assert extra({**base, "messages": [system_tools(WEATHER), *base["messages"]]}) == 4 + 1 + json_count([WEATHER])
    assert extra({**base, "response_format": {"type": "json_schema", "json_schema": schema}}) == json_count(schema)
    assert extra({**base, "response_format": {"type": "json_object"}}) == 0
    with_history = {**base, "messages": [{"role": "assistant", "content": "", "reasoning_content": "Think 1 2.",
                                          "tool_calls": calls},
                                         {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "晴"},
                                         *base["messages"]]}
    assert extra(with_history) == (4 + 1 + count("Think 1 2.") + json_count(calls)
                                   + 4 + 1 + count("functions.get_weather:0") + count("晴"))
    # Whitespace and key order do not matter.
    assert prompt_tokens({**base, "tools": [WEATHER]}) == prompt_tokens(json.loads(json.dumps(
        {**base, "tools": [WEATHER]}, indent=2, sort_keys=True)))


def test_usage_reports_prompt_tokens_of_a_request_with_every_part(simulate):
    payload = body(system_tools(TIME), user("Weather in Paris?"),
                   {"role": "assistant", "content": "", "reasoning_content": "Call it.", "tool_calls": [
                       {"id": "functions.get_weather:0", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
                   {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "sunny"},
                   user("And in JSON?"), tools=[WEATHER], tool_choice="auto",
                   response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": REPORT_SCHEMA}},
                   thinking={"type": "enabled", "effort": "high"})
    assert completion(simulate(), payload)["usage"]["prompt_tokens"] == prompt_tokens(payload)


# -- workflow tasks ----------------------------------------------------------------------------

ARITHMETIC = {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
              "required": ["a", "b"], "additionalProperties": False}
WORKFLOWS = {
    "tools": {"add": {"description": "Add.", "parameters": ARITHMETIC},
              "multiply": {"description": "Multiply.", "parameters": ARITHMETIC}},
    "tasks": [{"id": "sum-of-products",
               "instruction": "Multiply 3*4 and 5*6 in parallel, then add the products. Reply with the number.",
               "tools": ["add", "multiply"],
               "script": [[{"name": "multiply", "arguments": {"a": 3, "b": 4}},
                           {"name": "multiply", "arguments": {"a": 5, "b": 6}}],
                          [{"name": "add", "arguments": {"a": "{r0.0}", "b": "{r0.1}"}}]],
               "final": "The sum is {r1.0}.", "expect": "42", "min-parallel": 2}],
}
TOOLS = [{"type": "function", "function": {"name": name, **spec}} for name, spec in WORKFLOWS["tools"].items()]
EXECUTE = {"add": lambda a, b: a + b, "multiply": lambda a, b: a * b}


@pytest.fixture
def workflows(tmp_path):
    path = tmp_path / "workflows.yaml"
    path.write_text(yaml.safe_dump(WORKFLOWS), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("stream", [False, True])
def test_a_workflow_task_is_played_round_by_round(simulate, workflows, stream):
    simulator = simulate(workflows=workflows)
    messages = [user(WORKFLOWS["tasks"][0]["instruction"])]
    widths = []
    for _ in range(4):
        payload = body(*messages, tools=TOOLS, **QUIET)
        if stream:
            reply, finish = merged(streamed(simulator, payload))
        else:
            choice = completion(simulator, payload)["choices"][0]
            reply, finish = choice["message"], choice["finish_reason"]
        if finish == "stop":
            break
        widths.append(len(reply["tool_calls"]))
        messages.append(reply)
        for call in reply["tool_calls"]:
            result = EXECUTE[call["function"]["name"]](**json.loads(call["function"]["arguments"]))
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": str(result)})
    assert widths == [2, 1]
    assert [call["function"]["arguments"] for call in messages[4]["tool_calls"]] == ['{"a":12,"b":30}']
    assert ids(messages[4]) == ["functions.add:2"]
    assert reply["content"] == "The sum is 42."


def test_a_missing_tool_result_is_named(simulate, workflows):
    simulator = simulate(workflows=workflows)
    instruction = user(WORKFLOWS["tasks"][0]["instruction"])
    first = message(simulator, body(instruction, tools=TOOLS, **QUIET))
    only_one_result = body(instruction, first, {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"],
                                                "content": "12"}, tools=TOOLS, **QUIET)
    reply = message(simulator, only_one_result)
    assert "tool_calls" not in reply
    assert reply["content"] == "missing tool result for functions.multiply:1"


def test_the_packaged_workflows_load():
    tasks = load_tasks()
    assert tasks and all(task.script and task.instruction == instruction for instruction, task in tasks.items())


# -- faults ------------------------------------------------------------------------------------

def test_tool_args_invalid(simulate):
    simulator = simulate(faults={"tool-args-invalid": 1.0})
    reply = message(simulator, PARALLEL)
    for call in reply["tool_calls"]:
        arguments = json.loads(call["function"]["arguments"])
        assert not Draft202012Validator(WEATHER["function"]["parameters"]).is_valid(arguments)
    assert simulator.stats["faults"] == {"tool-args-invalid": 1}
    message(simulator, body(user("Do not use any tool."), tools=[WEATHER]))    # no call, nothing to break
    assert simulator.stats["faults"] == {"tool-args-invalid": 1}


def test_tool_args_broken_json(simulate):
    simulator = simulate(faults={"tool-args-broken-json": 1.0})
    for payload in (PARALLEL, body(user("Use get_news."), tools=[NEWS], **QUIET)):
        for call in message(simulator, payload)["tool_calls"]:
            with pytest.raises(ValueError):
                json.loads(call["function"]["arguments"])
        rebuilt, _ = merged(streamed(simulator, payload))
        with pytest.raises(ValueError):
            json.loads(rebuilt["tool_calls"][0]["function"]["arguments"])


def test_tool_finish_reason_stop(simulate):
    simulator = simulate(faults={"tool-finish-reason-stop": None})
    choice = completion(simulator, PARALLEL)["choices"][0]
    assert choice["finish_reason"] == "stop" and len(choice["message"]["tool_calls"]) == 2
    assert merged(streamed(simulator, PARALLEL))[1] == "stop"


def test_stream_tool_index_bug_merges_parallel_calls(simulate):
    simulator = simulate(faults={"stream-tool-index-bug": None})
    assert len(message(simulator, PARALLEL)["tool_calls"]) == 2                   # non-stream is fine
    rebuilt, _ = merged(streamed(simulator, PARALLEL))
    assert len(rebuilt["tool_calls"]) == 1
    assert rebuilt["tool_calls"][0]["function"]["arguments"] == '{"city":"aa"}{"city":"aa"}'
    single, _ = merged(streamed(simulator, body(user("Use get_news."), tools=[NEWS], **QUIET)))
    assert len(single["tool_calls"]) == 1 and json.loads(single["tool_calls"][0]["function"]["arguments"])
    assert simulator.stats["faults"] == {"stream-tool-index-bug": 1}


def test_tool_trigger_drift_flips_auto_decisions_only(simulate):
    simulator = simulate(faults={"tool-trigger-drift": 1.0})
    assert "tool_calls" not in message(simulator, body(tools=[WEATHER], **QUIET))
    assert called(message(simulator, body(user("Do not use any tool."), tools=[WEATHER], **QUIET))) == ["get_weather"]
    assert called(message(simulator, body(tools=[WEATHER], tool_choice="required", **QUIET))) == ["get_weather"]
    assert "tool_calls" not in message(simulator, body(tools=[WEATHER], tool_choice="none", **QUIET))


def test_tool_trigger_drift_hits_about_its_rate(simulate):
    simulator = simulate(faults={"tool-trigger-drift": 0.3})
    outcomes = [bool(message(simulator, body(user(f"Weather in town {i}?"), tools=[WEATHER], **QUIET))
                     .get("tool_calls")) for i in range(60)]
    assert 8 <= outcomes.count(False) <= 30


def test_tool_choice_ignored(simulate):
    simulator = simulate(faults={"tool-choice-ignored": None})
    assert called(message(simulator, body(tools=[WEATHER], tool_choice="none", **QUIET))) == ["get_weather"]
    assert "tool_calls" not in message(simulator, body(user("Do not use any tool."), tools=[WEATHER],
                                                       tool_choice="required", **QUIET))
    for invalid in ("bogus", "required"):
        assert post(simulator, body(tool_choice=invalid)).status_code == 200
    assert simulator.stats["faults"] == {"tool-choice-ignored": 4}


def test_response_format_ignored(simulate):
    simulator = simulate(faults={"response-format-ignored": None})
    content = message(simulator, body(user('JSON with "city".'), response_format={"type": "json_object"}))["content"]
    with pytest.raises(ValueError):
        json.loads(content)
    assert post(simulator, body(response_format={"type": "bogus"})).status_code == 200


def test_dynamic_tools_ignored(simulate):
    simulator = simulate(faults={"dynamic-tools-ignored": None})
    reply = message(simulator, body(system_tools(WEATHER), user("Use get_weather."), tools=[TIME], **QUIET))
    assert called(reply) == ["get_time"]
    assert post(simulator, body(system_tools(WEATHER), user("Weather?"), tool_choice="required")).status_code == 400
    assert post(simulator, body({**user("Hi"), "tools": [None]})).status_code == 200   # never validated


def test_drop_reasoning_history(simulate):
    simulator = simulate(faults={"drop-reasoning-history": None})
    payload = body(*history("I note 7351."), RECALL, **QUIET)
    data = completion(simulator, payload)
    assert data["choices"][0]["message"]["content"] == "I don't know."
    without = body(*[{k: v for k, v in m.items() if k != "reasoning_content"} for m in payload["messages"]])
    assert data["usage"]["prompt_tokens"] == prompt_tokens(without) < prompt_tokens(payload)


def test_tool_id_format(simulate):
    simulator = simulate(faults={"tool-id-format": None})
    first, again = message(simulator, PARALLEL), message(simulator, PARALLEL)
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", call_id) for call_id in ids(first))
    assert len(set(ids(first))) == 2 and ids(first) == ids(again)
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", call["id"])
               for call in merged(streamed(simulator, PARALLEL))[0]["tool_calls"])
