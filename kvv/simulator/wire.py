"""The simulated vendor's wire format (docs/architecture.md §6): the bodies server.py answers with.

A completion as one JSON body or as server-sent events, usage objects, error bodies, and the
faults that live in the frames (the usage and streaming stages of server.py). The functions here
only build: what is drawn at random (stream-cut) arrives as a fact, and each returns the faults
that changed what it built, for the server to count.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .faults import FaultValue
from .text import Answer

PIECES_PER_DELTA = 3          # tokens per streamed reasoning/content delta
# Faults that change the frames of a stream, not what it says (check stream-shape).
SHAPE_FAULTS = ("stream-tool-first-chunk", "stream-id-changes", "stream-raw-finish-reason", "stream-data-after-done",
                "stream-reasoning-after-content", "stream-null-delta-fields", "stream-id-format", "stream-end-delta")
MAX_DELTAS = 1024             # a 64k-token answer streams in this many deltas, not 22k (servers batch too)


@dataclass
class JsonReply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamReply:
    """Server-sent events, each written as one HTTP chunk."""

    events: list[str]
    status: int = 200


# -- usage -----------------------------------------------------------------------------------

def usage(prompt: int, completion: int, faults: Mapping[str, FaultValue], *,
          thinking_off: bool) -> tuple[dict[str, int], list[str]]:
    """The usage object of `prompt` and `completion` tokens, and the faults that changed it.
    `thinking_off`: the request turned thinking off on a model that has it (thinking-off-billed)."""
    applied = []
    if "thinking-off-billed" in faults and thinking_off:
        applied.append("thinking-off-billed")       # the thinking template rendered (and billed) on top
        prompt += int(faults["thinking-off-billed"] or 0)
    reported_prompt = prompt
    if "usage-off" in faults:
        applied.append("usage-off")
        delta = faults["usage-off"]
        assert isinstance(delta, int)               # a delta fault: resolve_faults made its value an int
        reported_prompt = max(0, prompt + delta)
    return {"prompt_tokens": reported_prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}, applied


def stream_usage_wanted(body: dict[str, Any], faults: Collection[str]) -> tuple[bool, list[str]]:
    """Whether a stream ends with usage (stream_options.include_usage), and the faults that decided it."""
    options = body.get("stream_options")
    wanted = isinstance(options, dict) and options.get("include_usage") is True
    if wanted and "no-stream-usage" in faults:
        return False, ["no-stream-usage"]
    return wanted, []


# -- completions -----------------------------------------------------------------------------

def head(body: dict[str, Any], kind: str, model_id: str) -> dict[str, Any]:
    """The fields an answer (each frame of a stream) starts with; the request's model, else `model_id`."""
    model = body.get("model")
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": kind, "created": int(time.time()),
            "model": model if isinstance(model, str) else model_id}


def completion(head: dict[str, Any], choices: list[tuple[Answer, str]], usage: dict[str, int]) -> dict[str, Any]:
    """The non-streamed body: each choice's answer and finish_reason."""
    return {
        **head,
        "choices": [{"index": index, "message": message(choice), "finish_reason": finish}
                    for index, (choice, finish) in enumerate(choices)],
        "usage": usage,
    }


def stream(head: dict[str, Any], choices: list[tuple[Answer, str]], faults: Collection[str], *,
           usage: dict[str, int] | None, usage_in_choice: bool, cut: bool) -> tuple[StreamReply, list[str]]:
    """The streamed body of `choices`, and the faults that changed its frames.

    `faults` are the faults switched on (stream-tool-index-bug and SHAPE_FAULTS act here);
    `usage` ends the stream unless None, inside the finishing chunk if `usage_in_choice`;
    `cut`: stream-cut hit this request."""
    payloads: list[dict[str, Any]] = []
    applied: list[str] = []

    def delta(index: int, fields: dict[str, Any], finish: str | None = None) -> None:
        payloads.append({**head, "choices": [{"index": index, "delta": fields, "finish_reason": finish}]})

    index_bug = "stream-tool-index-bug" in faults and any(len(c.calls) > 1 for c, _ in choices)
    if index_bug:
        applied.append("stream-tool-index-bug")
    shape = {name for name in SHAPE_FAULTS if name in faults}
    nulls = "stream-null-delta-fields" in shape        # OpenAI's habit: the other fields as null
    if nulls:
        applied.append("stream-null-delta-fields")
    for index, (choice, finish) in enumerate(choices):
        delta(index, {"role": "assistant", "content": None if nulls else ""})
        for name, parts in (("reasoning_content", choice.reasoning), ("content", choice.content)):
            other = "content" if name == "reasoning_content" else "reasoning_content"
            for text in batches(parts):
                delta(index, {name: text, **({other: None} if nulls else {})})
                if name == "content" and choice.reasoning and "stream-reasoning-after-content" in shape:
                    shape.discard("stream-reasoning-after-content")   # once: reasoning resumes after content
                    delta(index, {"reasoning_content": choice.reasoning[-1]})
                    applied.append("stream-reasoning-after-content")
        for position, call in enumerate(choice.calls):
            slot = 0 if index_bug else position      # the bug: every call claims slot 0
            pieces = batches(call.arguments)
            first = ""
            if pieces and "stream-tool-first-chunk" in shape:   # the first chunk already carries arguments
                first = pieces.pop(0)
                applied.append("stream-tool-first-chunk")
            delta(index, {"tool_calls": [{"index": slot, "id": call.id, "type": "function",
                                          "function": {"name": call.name, "arguments": first}}]})
            for text in pieces:
                delta(index, {"tool_calls": [{"index": slot, "function": {"arguments": text}}]})
        if finish == "stop" and "stream-raw-finish-reason" in shape:
            finish = "stop_163586"                   # the stop token's id where the name belongs
            applied.append("stream-raw-finish-reason")
        end: dict[str, Any] = {}
        if "stream-end-delta" in shape:
            end = {"content": ""}                    # the finishing frame still carries a field
            applied.append("stream-end-delta")
        delta(index, end, finish)
    if usage is not None:
        if usage_in_choice:                           # Moonshot: inside the finishing chunk
            payloads[-1]["choices"][0]["usage"] = usage
        else:                                          # OpenAI: a last chunk without choices
            payloads.append({**head, "choices": [], "usage": usage})
    applied += reshape(payloads, shape)
    events = [f"data: {json.dumps(payload)}\n\n" for payload in payloads]
    if cut:
        # Half the events, then half an event line (`data: {"id"...`), and no [DONE].
        applied.append("stream-cut")
        half = len(events) // 2
        return StreamReply(events[:half] + [events[half][:len(events[half]) // 2]]), applied
    after = []
    if "stream-data-after-done" in shape:          # a proxy that appends its own last chunk
        after = [events[-1]]
        applied.append("stream-data-after-done")
    return StreamReply(events + ["data: [DONE]\n\n"] + after), applied


def reshape(payloads: list[dict[str, Any]], shape: set[str]) -> list[str]:
    """The id faults, applied to the finished frames (each frame has its own copy of the head);
    the ones applied."""
    applied = []
    if "stream-id-format" in shape:
        applied.append("stream-id-format")
        wrong = f"cmpl-{uuid.uuid4().hex[:12]}"    # an id of another form: not chatcmpl- + 24 hex
        for payload in payloads:
            payload["id"] = wrong
    if "stream-id-changes" in shape and len(payloads) > 1:
        applied.append("stream-id-changes")
        changed = f"chatcmpl-{uuid.uuid4().hex[:24]}"   # a gateway that restarts the upstream stream
        for payload in payloads[len(payloads) // 2:]:
            payload["id"] = changed
    return applied


def message(choice: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(choice.content)}
    if choice.reasoning:
        message["reasoning_content"] = "".join(choice.reasoning)
    if choice.calls:
        message["tool_calls"] = [{"id": call.id, "type": "function",
                                  "function": {"name": call.name, "arguments": "".join(call.arguments)}}
                                 for call in choice.calls]
    return message


def batches(parts: tuple[str, ...]) -> list[str]:
    """Token pieces joined PIECES_PER_DELTA at a time (more for a long answer, at most
    MAX_DELTAS deltas): the text of each streamed delta."""
    size = max(PIECES_PER_DELTA, -(-len(parts) // MAX_DELTAS))
    return ["".join(parts[start:start + size]) for start in range(0, len(parts), size)]


def broken(arguments: tuple[str, ...]) -> tuple[str, ...]:
    """Arguments cut off half-way (a parser that loses the tail), so they never parse as JSON."""
    cut = arguments[:len(arguments) // 2]
    try:
        json.loads("".join(cut))
    except ValueError:
        return cut
    return ()


# -- errors ----------------------------------------------------------------------------------

def error(status: int, message: str, kind: str, *, headers: dict[str, str] | None = None,
          **extra: Any) -> JsonReply:
    return JsonReply(status, {"error": {"message": message, "type": kind, **extra}}, headers or {})


def seconds(value: float) -> str:
    """Retry-After: whole seconds as an integer, anything else as written."""
    return str(int(value)) if float(value).is_integer() else str(value)
