"""The assistant history a client passes back is taken in: its reasoning and its tool-call ids.

Thinking models are fed their earlier reasoning_content (docs/upstream.md §2.5). A deployment
may reject it (400), or accept it and silently drop it in the chat template, so the model
loses its own earlier thinking: then prompt_tokens does not grow with it and the model cannot
recall what only it contains. Tool-call ids in the model's own format (functions.NAME:INDEX for
Kimi) are what its template expects back in the next turn; a gateway that rewrites them breaks
multi-turn tool use.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

from ..exchange import Exchange
from ..verdict import FAIL, PASS
from .base import Check, Context, Item, Outcome, answer_problem, failed, passed, rejection
from .cases import STREAM_MODES, load_yaml_file
from .usage import tokens

# Ids for a profile that pins no format: any id the client makes up must be accepted back.
FALLBACK_ID = "call_{index}"


@cache
def _data() -> dict[str, Any]:
    return load_yaml_file(None, "reasoning-history.yaml")[1]


def _tools(names: list[str] | None = None) -> list[dict[str, Any]]:
    tools = _data()["tools"]
    return [t for t in tools if names is None or t["function"]["name"] in names]


def _messages(id_format: str, reasoning: str, ask: str) -> list[dict[str, Any]]:
    """The history with ids filled in and `reasoning` in the answer turn, then `ask`."""
    messages = copy.deepcopy(_data()["history"])
    ids: list[str] = []
    results = 0
    for message in messages:
        for call in message.get("tool_calls", []):
            call["id"] = id_format.format(name=call["function"]["name"], index=len(ids))
            ids.append(call["id"])
        if message["role"] == "tool":           # results follow their calls in order
            message["tool_call_id"] = ids[results]
            results += 1
    messages[-1]["reasoning_content"] = reasoning
    return [*messages, {"role": "user", "content": ask}]


# -- reasoning-history -------------------------------------------------------------------------

def _history_items(ctx: Context) -> list[Item]:
    if "thinking" not in ctx.modes():
        return []
    data, cap = _data(), ctx.options.get("max-tokens", 4096)
    id_format = ctx.profile.feature("tool-call-id") or FALLBACK_ID
    keeps = ctx.profile.feature("reasoning-history") == "keep"

    def request(reasoning: str, ask: str, max_tokens: int, stream: dict[str, Any]) -> dict[str, Any]:
        # The tools stay declared, as in a real agent loop; tool_choice "none" keeps this check about
        # the history, not about whether the model decides to call again.
        return {**ctx.body("thinking"), "messages": _messages(id_format, reasoning, data["ask"][ask]),
                "tools": _tools(), "tool_choice": "none", "max_tokens": max_tokens, **stream}

    items = []
    for name, stream in STREAM_MODES.items():
        items.append(Item(f"history reasoning accepted [{name}]",
                          [request(data["reasoning"]["short"], "accept", 1, stream)], _accepted, "thinking", 1))
        if keeps:
            items.append(Item(f"prompt_tokens grow with history reasoning [{name}]",
                              [request(data["reasoning"][size], "accept", 1, stream) for size in ("short", "long")],
                              _grows, "thinking", 2))
            items.append(Item(f"history reasoning recalled [{name}]",
                              [request(data["reasoning"]["planted"], "recall", cap, stream)],
                              _recalls(data["number"]), "thinking", cap, expects=data["number"]))
    return items


def _rejected(ex: Exchange) -> Outcome | None:
    problem = answer_problem(ex)
    if problem is None:
        return None
    return failed(f"assistant history with reasoning_content and tool calls was not answered: {problem}", ex)


def _accepted(exchanges: list[Exchange]) -> Outcome:
    ex = exchanges[0]
    return _rejected(ex) or passed(f"HTTP {ex.status}: history reasoning accepted", ex)


def _grows(exchanges: list[Exchange]) -> Outcome:
    for ex in exchanges:
        problem = _rejected(ex)
        if problem:
            return problem
    short, long = (tokens(e, "prompt_tokens") for e in exchanges)
    ex = exchanges[1]
    data = {"short": short, "long": long, "delta": None if short is None or long is None else long - short}
    if short is None or long is None:
        return Outcome(FAIL, "no usage.prompt_tokens reported", ex, data)
    if long <= short:
        return Outcome(FAIL, f"prompt_tokens {short} with short history reasoning, {long} with long: the "
                             f"history reasoning is not in the prompt", ex, data)
    return Outcome(PASS, f"prompt_tokens {short} -> {long} (+{long - short}) with longer history reasoning",
                   ex, data)


def _recalls(number: str):
    def judge(exchanges: list[Exchange]) -> Outcome:
        ex = exchanges[0]
        problem = _rejected(ex)
        if problem:
            return problem
        content = (ex.message.content if ex.message else None) or ""
        if number not in content:
            return failed(f"the answer does not contain {number}, planted only in the history reasoning "
                          f"(finish_reason {ex.finish_reason}): {content[:120]!r}", ex)
        return passed(f"recalled {number} from the history reasoning", ex)
    return judge


# -- tool-call-id ------------------------------------------------------------------------------

def _id_items(ctx: Context) -> list[Item]:
    id_format = ctx.profile.feature("tool-call-id")
    if not id_format:
        return []
    mode, cap = ctx.profile.default_mode, ctx.options.get("max-tokens", 4096)
    items = []
    for case, spec in _data()["calls"].items():
        for name, stream in STREAM_MODES.items():
            body = ctx.body(mode, spec["ask"], tools=_tools(spec["tools"]), tool_choice="required",
                            max_tokens=cap, **stream)
            items.append(Item(f"{case} call ids [{name}]", [body], _ids_match(id_format), mode, cap))
    return items


def id_pattern(id_format: str, name: str) -> re.Pattern[str]:
    """`functions.{name}:{index}` for tool `name` -> ^functions\\.name:\\d+$."""
    parts = re.split(r"(\{name\}|\{index\})", id_format)
    fill = {"{name}": re.escape(name), "{index}": r"\d+"}
    return re.compile("^" + "".join(fill.get(p, re.escape(p)) for p in parts) + "$")


def _ids_match(id_format: str):
    def judge(exchanges: list[Exchange]) -> Outcome:
        ex = exchanges[0]
        if (problem := rejection(ex)) is not None:
            return failed(f"forced tool call not answered: {problem}", ex)
        calls = ex.message.tool_calls if ex.message else []
        if not calls:
            return failed(f"no tool call with tool_choice \"required\" (finish_reason {ex.finish_reason})", ex)
        ids = [call.get("id") for call in calls]
        wrong = []
        for call_id, call in zip(ids, calls, strict=True):
            name = str((call.get("function") or {}).get("name"))
            if not (isinstance(call_id, str) and id_pattern(id_format, name).match(call_id)):
                wrong.append(f"{call_id!r} for {name}")
        if wrong:
            return failed(f"tool-call ids not in the format {id_format}: {', '.join(wrong)}", ex)
        shown = ", ".join(map(str, ids))   # each id is a str here: it matched the pattern above
        if len(set(ids)) < len(ids):
            return failed(f"tool-call ids repeat within one turn: {shown}", ex)
        return passed(f"{len(ids)} id(s) in the format {id_format}: {shown}", ex)
    return judge


CHECKS = [
    Check("reasoning-history", "history reasoning_content is taken in",
          "reasoning_content passed back in the assistant history is rejected, or dropped by the chat template "
          "(not counted in prompt_tokens, not visible to the model)",
          ("tools",), _history_items, {"max-tokens": 4096}),
    Check("tool-call-id", "tool-call ids in the model's format",
          "tool-call ids are rewritten (e.g. call_<hex> instead of functions.NAME:INDEX) or repeat within a turn, "
          "so the model's template cannot match results to calls",
          ("tools",), _id_items, {"max-tokens": 4096}),
]
