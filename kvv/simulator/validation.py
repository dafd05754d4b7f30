"""Whether a chat request is well-formed, before any stage of server.py reads it (docs/architecture.md §6).

A body that is not a JSON object, or whose messages or token limits are malformed, raises
`Rejected` (rejection.py); what the request asks for within the profile's contract is the
contract stage's to judge.
"""

from __future__ import annotations

import json
from typing import Any

from .rejection import Rejected

ROLES = ("system", "user", "assistant", "tool")


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise Rejected(None, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Rejected(None, "request body must be a JSON object")
    return body


def validate(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Rejected("messages", "messages must be a non-empty list")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise Rejected("messages", f"messages[{index}] must be an object with a role in {', '.join(ROLES)}")
        if message["role"] == "tool" and not (isinstance(message.get("tool_call_id"), str) and message["tool_call_id"]):
            raise Rejected("messages", f"messages[{index}] is a tool result without tool_call_id")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(name)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise Rejected(name, f"{name} must be a positive integer")


def requested_mode(body: dict[str, Any]) -> str | None:
    """The mode the request asks for, in the kimi or the opensource format (kimi wins)."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"):
        return "thinking" if thinking["type"] == "enabled" else "non-thinking"
    kwargs = body.get("chat_template_kwargs")
    if isinstance(kwargs, dict) and isinstance(kwargs.get("thinking"), bool):
        return "thinking" if kwargs["thinking"] else "non-thinking"
    return None


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    """`body` with `key` taken out of every message (what a template that drops it renders)."""
    return {**body, "messages": [{k: v for k, v in m.items() if k != key} for m in body["messages"]]}
