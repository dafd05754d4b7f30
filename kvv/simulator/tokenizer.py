"""A deterministic stand-in for the model's tokenizer and chat template.

A token is a run of word characters or one other non-space character. The simulator's
`usage` is honest by this measure, so a check can recount it from what it sent and received.
"""

from __future__ import annotations

import json
import re
from typing import Any

TOKEN = re.compile(r"\w+|[^\w\s]")

TEMPLATE_TOKENS = 3           # the generation prompt that opens the assistant's turn
MESSAGE_TOKENS = 4            # per message: its start/end markers and separators


def count(text: str) -> int:
    return len(TOKEN.findall(text))


def content_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part["text"] for part in content
                        if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    """The prompt's tokens after the chat template: messages, history reasoning, tool calls, tools."""
    total = TEMPLATE_TOKENS
    for message in body.get("messages") or []:
        total += MESSAGE_TOKENS + count(str(message.get("role", "")))
        total += count(content_text(message.get("content")))
        if isinstance(message.get("reasoning_content"), str):
            total += count(message["reasoning_content"])
        if message.get("tool_calls") is not None:
            total += count(json.dumps(message["tool_calls"]))
    if body.get("tools") is not None:
        total += count(json.dumps(body["tools"]))
    return total
