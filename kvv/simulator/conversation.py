"""Reading a chat history the way the simulated model does."""

from __future__ import annotations

from typing import Any

from .tokenizer import content_text


def last_user_text(messages: list[dict[str, Any]]) -> str:
    return _user_text(messages, -1)


def first_user_text(messages: list[dict[str, Any]]) -> str:
    return _user_text(messages, 0)


def _user_text(messages: list[dict[str, Any]], position: int) -> str:
    """The text of the user message at `position` among the user messages ("" without any)."""
    users = [message for message in messages if message.get("role") == "user"]
    return content_text(users[position].get("content")) if users else ""


def tool_call_turns(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The tool calls of each assistant turn that made some, in order."""
    return [message["tool_calls"] for message in messages
            if message.get("role") == "assistant" and isinstance(message.get("tool_calls"), list)
            and message["tool_calls"]]


def tool_results(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Tool result text by the tool_call_id it answers."""
    return {message["tool_call_id"]: content_text(message.get("content")) for message in messages
            if message.get("role") == "tool" and isinstance(message.get("tool_call_id"), str)}


def history_reasoning(messages: list[dict[str, Any]]) -> list[str]:
    return [message["reasoning_content"] for message in messages
            if isinstance(message.get("reasoning_content"), str)]
