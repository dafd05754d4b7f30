"""Chat-completion bodies into `Choice`s: streamed as server-sent events, or whole.

Pure and incremental, so a stream costs O(its bytes) in time and O(its text) in memory:
`EventDecoder` turns network chunks into event data strings (WHATWG SSE framing), and
`StreamAssembler` folds OpenAI-style `chat.completion.chunk` deltas into `Choice`s.
`parse_completion` reads a non-streamed body with the same field rules.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .exchange import Choice, Message

DONE = "[DONE]"
AFTER_DONE_KEPT, AFTER_DONE_CHARS = 10, 300  # of data after [DONE], when frames are kept: evidence, not all

_BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark; the SSE spec ignores one at the stream's start
_LINE_END = re.compile(rb"\r\n|\r|\n")


class BodyError(Exception):
    """A body kvv cannot use: `error` is its class, the message says what and where."""

    def __init__(self, error: str, detail: str):
        self.error = error  # "protocol" (broken framing) or "bad_response" (malformed chunk)
        super().__init__(detail)


class EventDecoder:
    """Splits a byte stream into the `data` of each event, however the chunks are cut."""

    def __init__(self) -> None:
        self._line: list[bytes] = []  # pieces of the unterminated line, joined once it ends
        self._data: list[str] = []  # `data:` lines of the event being built
        self._after_cr = False  # last chunk ended in "\r": a leading "\n" completes it
        # The stream's first bytes while they may still be a BOM (one can arrive split across
        # chunks); None once the start is settled.
        self._start: bytes | None = b""

    def feed(self, chunk: bytes) -> list[str]:
        """The data of every event this chunk completes."""
        if not chunk:
            return []
        if self._start is not None:
            chunk, self._start = self._start + chunk, None
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._start = chunk  # too short to tell yet
                return []
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
                if not chunk:
                    return []
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._after_cr = False
        events: list[str] = []
        start = 0
        for end in _LINE_END.finditer(chunk):
            self._line.append(chunk[start : end.start()])
            self._end_line(events)
            start = end.end()
        if start < len(chunk):
            self._line.append(chunk[start:])
        self._after_cr = chunk.endswith(b"\r")
        return events

    def close(self) -> list[str]:
        """Flush at end of stream. Lenient: a last event missing its blank line still counts."""
        events: list[str] = []
        if self._start:  # the stream was only part of a BOM: bytes like any others
            self._line.append(self._start)
            self._start = None
        if self._line:
            self._end_line(events)
        self._end_line(events)
        return events

    def _end_line(self, events: list[str]) -> None:
        # Splitting on ASCII line ends never cuts a UTF-8 sequence, so each line decodes whole.
        line = b"".join(self._line).decode("utf-8", errors="replace")
        self._line.clear()
        if not line:
            if self._data:
                events.append("\n".join(self._data))
                self._data.clear()
            return
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        # Comments (":...") and the `event`, `id`, `retry` fields carry nothing kvv needs.


class StreamAssembler:
    """Merges chunk deltas by choice index; tool calls merge by their own `index`."""

    def __init__(self, keep_frames: int = 0) -> None:
        self.chunks = 0  # JSON events seen ([DONE] not counted)
        self.done = False
        self.usage: dict[str, Any] | None = None
        self.usage_location: str | None = None
        self._choices: dict[int, _ChoiceParts] = {}
        # keep_frames > 0: the first that many events as parsed JSON, and what came after [DONE].
        self._keep = keep_frames
        self.frames: list[Any] | None = [] if keep_frames else None
        self.after_done: list[str] | None = [] if keep_frames else None

    def add(self, data: str) -> None:
        """Fold one event's data in; raises `BodyError` for a chunk kvv cannot use."""
        if self.done:
            if self.after_done is not None and len(self.after_done) < AFTER_DONE_KEPT:
                self.after_done.append(data[:AFTER_DONE_CHARS])
            return
        if data.strip() == DONE:
            self.done = True
            return
        self.chunks += 1
        where = f"event {self.chunks}"
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise BodyError("protocol", f"{where}: data is not JSON ({exc}): {data[:200]!r}") from exc
        if self.frames is not None and len(self.frames) < self._keep:
            self.frames.append(chunk)
        if not isinstance(chunk, dict):
            raise BodyError("bad_response", f"{where}: data is {_kind(chunk)}, expected an object")
        if chunk.get("error") is not None and not chunk.get("choices"):
            error = json.dumps(chunk["error"], ensure_ascii=False)[:300]
            raise BodyError("protocol", f"{where}: stream carried an error: {error}")
        usage = _get(chunk, "usage", dict, where)
        if usage is not None:
            self.usage, self.usage_location = usage, "top"
        choices = _get(chunk, "choices", list, where) or []
        for position, choice in enumerate(choices):
            self._add_choice(choice, f"{where}: choices[{position}]")

    def choices(self) -> list[Choice]:
        return [self._choices[i].build(i) for i in sorted(self._choices)]

    def unusable(self) -> str | None:
        """Why a finished stream holds no answer at all, or None.

        The last chunk of a stream with include_usage legitimately has `choices: []`, so an
        empty list in one chunk says nothing; a stream is unusable only when no chunk had a
        choice, or every choice stayed empty (`delta: null` or `{}`, a role and nothing else).
        """
        if not self._choices:
            return f"2xx stream with no choices in {self.chunks} events"
        if all(parts.empty for parts in self._choices.values()):
            return (f"2xx stream whose choices carried nothing (no content, reasoning, tool calls "
                    f"or finish_reason) in {self.chunks} events")
        return None

    def _add_choice(self, choice: Any, where: str) -> None:
        if not isinstance(choice, dict):
            raise BodyError("bad_response", f"{where} is {_kind(choice)}, expected an object")
        index = _get(choice, "index", int, where) or 0
        parts = self._choices.setdefault(index, _ChoiceParts())
        usage = _get(choice, "usage", dict, where)
        if usage is not None:  # Moonshot puts usage in the last choice chunk
            self.usage, self.usage_location = usage, "choice"
        finish_reason = _get(choice, "finish_reason", str, where)
        if finish_reason is not None:
            parts.finish_reason = finish_reason
        delta = _get(choice, "delta", dict, where) or {}
        where = f"{where}.delta"
        role = _get(delta, "role", str, where)
        if role is not None:
            parts.role = role
        content = _get(delta, "content", str, where)
        if content is not None:
            parts.content.append(content)
        reasoning = _reasoning(delta, where)
        if reasoning is not None:
            parts.reasoning.append(reasoning)
        for position, call in enumerate(_get(delta, "tool_calls", list, where) or []):
            parts.add_tool_call(call, position, f"{where}.tool_calls[{position}]")


def parse_completion(body: Any) -> tuple[list[Choice], dict[str, Any] | None, str | None]:
    """`(choices, usage, usage_location)` of a `chat.completion` object; `BodyError` if malformed."""
    if not isinstance(body, dict):
        raise BodyError("bad_response", f"body is {_kind(body)}, expected an object")
    choices = _get(body, "choices", list, "body")
    if choices is None:
        error = body.get("error")
        said = f" (body has error: {json.dumps(error, ensure_ascii=False)[:300]})" if error else ""
        raise BodyError("bad_response", f"body.choices is missing, expected an array{said}")
    if not choices:  # nothing to judge, whatever the usage says
        raise BodyError("bad_response", "2xx with no choices: body.choices is an empty array")
    usage, usage_location = _get(body, "usage", dict, "body"), "top"
    parsed = []
    for position, choice in enumerate(choices):
        where = f"choices[{position}]"
        if not isinstance(choice, dict):
            raise BodyError("bad_response", f"{where} is {_kind(choice)}, expected an object")
        message = _get(choice, "message", dict, where)
        if message is None:
            raise BodyError("bad_response", f"{where}.message is missing, expected an object")
        if usage is None and _get(choice, "usage", dict, where) is not None:
            usage, usage_location = choice["usage"], "choice"
        tool_calls = _get(message, "tool_calls", list, f"{where}.message") or []
        for number, call in enumerate(tool_calls):
            if not isinstance(call, dict):
                raise BodyError(
                    "bad_response",
                    f"{where}.message.tool_calls[{number}] is {_kind(call)}, expected an object",
                )
        index = _get(choice, "index", int, where)
        parsed.append(
            Choice(
                index=position if index is None else index,
                message=Message(
                    role=_get(message, "role", str, f"{where}.message") or "assistant",
                    content=_get(message, "content", str, f"{where}.message"),
                    reasoning_content=_reasoning(message, f"{where}.message"),
                    tool_calls=list(tool_calls),
                ),
                finish_reason=_get(choice, "finish_reason", str, where),
            )
        )
    return parsed, usage, usage_location if usage is not None else None


class _ChoiceParts:
    """One choice while it streams: text kept as lists of pieces, joined once at the end."""

    def __init__(self) -> None:
        self.role: str | None = None
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.finish_reason: str | None = None
        self.tool_calls: dict[int, dict[str, Any]] = {}

    @property
    def empty(self) -> bool:
        """Nothing an answer is made of arrived: no text, reasoning, tool call or finish_reason."""
        return not (any(self.content) or any(self.reasoning) or self.tool_calls
                    or self.finish_reason is not None)

    def add_tool_call(self, call: Any, position: int, where: str) -> None:
        if not isinstance(call, dict):
            raise BodyError("bad_response", f"{where} is {_kind(call)}, expected an object")
        index = _get(call, "index", int, where)
        merged = self.tool_calls.setdefault(
            position if index is None else index,
            {"id": None, "type": None, "name": None, "arguments": []},
        )
        function = _get(call, "function", dict, where) or {}
        # id, type and name arrive once (usually in the first delta); later repeats don't win.
        for key, value in (
            ("id", _get(call, "id", str, where)),
            ("type", _get(call, "type", str, where)),
            ("name", _get(function, "name", str, f"{where}.function")),
        ):
            if value and not merged[key]:
                merged[key] = value
        arguments = _get(function, "arguments", str, f"{where}.function")
        if arguments is not None:
            merged["arguments"].append(arguments)

    def build(self, index: int) -> Choice:
        tool_calls = [
            {
                "id": call["id"],
                "type": call["type"] or "function",
                "function": {"name": call["name"], "arguments": "".join(call["arguments"])},
            }
            for _, call in sorted(self.tool_calls.items())
        ]
        message = Message(
            role=self.role or "assistant",
            content="".join(self.content) if self.content else None,
            reasoning_content="".join(self.reasoning) if self.reasoning else None,
            tool_calls=tool_calls,
        )
        return Choice(index=index, message=message, finish_reason=self.finish_reason)


def _reasoning(obj: dict[str, Any], where: str) -> str | None:
    """`reasoning_content`, else `reasoning` (vLLM and others), never both: some send both."""
    reasoning = _get(obj, "reasoning_content", str, where)
    return reasoning if reasoning is not None else _get(obj, "reasoning", str, where)


def _get(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """`obj[key]` if absent, null or of `kind`; a precise `bad_response` otherwise."""
    value = obj.get(key)
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise BodyError("bad_response", f"{where}.{key} is {_kind(value)}, expected {_KINDS[kind]}")


_KINDS: dict[type, str] = {dict: "an object", list: "an array", str: "a string", int: "an integer"}


def _kind(value: Any) -> str:
    """A JSON value's type as the spec names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return _KINDS.get(type(value), type(value).__name__)
