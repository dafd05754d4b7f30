"""A deterministic stand-in for the model's tokenizer and chat template.

A token is a run of word characters or one other non-space character. The simulator's
`usage` is honest by this measure, so a check can recount it from what it sent and received.
"""

from __future__ import annotations

import json
import re
from typing import Any

TOKEN = re.compile(r"\w+|[^\w\s]")
PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")     # one token with the whitespace before it

# Names for what counts prompt tokens; built-in references say which they were made with.
TOKENIZER_ID = "kvv-words-1"
TEMPLATE_ID = "kvv-chat-1"

TEMPLATE_TOKENS = 3           # the generation prompt that opens the assistant's turn
MESSAGE_TOKENS = 4            # per message: its start/end markers and separators


def count(text: str) -> int:
    return len(TOKEN.findall(text))


def pieces(text: str) -> tuple[str, ...]:
    """`text` cut into one-token pieces: they join back to `text`, and any prefix of k counts k."""
    found = PIECE.findall(text)
    trailing = text[sum(map(len, found)):]
    if found and trailing:
        found[-1] += trailing
    return tuple(found)


def content_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part["text"] for part in content
                        if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    """The prompt's tokens after the chat template.

    Per message: role, text, history `reasoning_content`, `tool_calls`, `tool_call_id` and
    dynamic `tools`; then the global `tools` and a `json_schema` response_format. Structured
    parts count as their JSON text (whitespace and key order do not matter).
    """
    total = TEMPLATE_TOKENS
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        total += MESSAGE_TOKENS + count(str(message.get("role", "")))
        total += count(content_text(message.get("content")))
        for name in ("reasoning_content", "tool_call_id"):
            if isinstance(message.get(name), str):
                total += count(message[name])
        for name in ("tool_calls", "tools"):
            if message.get(name) is not None:
                total += _json_tokens(message[name])
    if body.get("tools") is not None:
        total += _json_tokens(body["tools"])
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema" \
            and response_format.get("json_schema") is not None:
        total += _json_tokens(response_format["json_schema"])
    return total


def _json_tokens(value: Any) -> int:
    return count(json.dumps(value, ensure_ascii=False))
