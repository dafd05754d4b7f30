"""The tools a request declares and its tool_choice, as a Moonshot-style server validates them.

Tools come from the top-level `tools` and, where the model supports dynamic tools, from
`tools` inside a system message without content; all share one name space.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .rejection import Rejected

NAME = re.compile(r"(?![0-9])[A-Za-z0-9_.-]{1,256}")
CHOICES = ("auto", "none", "required")


@dataclass(frozen=True)
class Tool:
    name: str
    parameters: Any          # the JSON Schema as sent; None when the tool declares none


@dataclass(frozen=True)
class ToolChoice:
    mode: str                # auto | none | required | function
    name: str | None = None  # the forced tool, for mode "function"


def declared_tools(body: dict[str, Any], *, dynamic: bool) -> list[Tool]:
    """Global tools, then each system message's tools in message order; Rejected if malformed.

    `dynamic` says whether `messages[].tools` is honoured; without it any is rejected.
    """
    tools = _tool_list(body.get("tools"), "tools", "tools")
    for index, message in enumerate(body["messages"]):
        if message.get("tools") is None:
            continue
        where = f"messages[{index}].tools"
        if not dynamic:
            raise Rejected("messages", f"{where}: this model takes tools only in the top-level tools field")
        if message["role"] != "system":
            raise Rejected("messages", f"{where}: tools may only be declared in a system message")
        if message.get("content") not in (None, "", []):
            raise Rejected("messages", f"{where}: a system message that declares tools must have empty content")
        tools += _tool_list(message["tools"], where, "messages")
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise Rejected("tools", f"tool name {tool.name!r} is declared twice")
        seen.add(tool.name)
    return tools


def tool_choice(body: dict[str, Any], tools: list[Tool]) -> ToolChoice:
    """The validated tool_choice; absent means auto (and amounts to none without tools)."""
    value = body.get("tool_choice")
    if value is None:
        return ToolChoice("auto")
    if value in CHOICES:
        if value == "required" and not tools:
            raise Rejected("tool_choice", "tool_choice 'required' needs at least one tool")
        return ToolChoice(value)
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("function"), dict):
        name = value["function"].get("name")
        if name in {tool.name for tool in tools}:
            return ToolChoice("function", name)
        raise Rejected("tool_choice", f"tool_choice names {name!r}, which is not a declared tool")
    raise Rejected("tool_choice", "tool_choice must be 'auto', 'none', 'required' or "
                                  '{"type": "function", "function": {"name": ...}}')


def _tool_list(value: Any, where: str, param: str) -> list[Tool]:
    """The tools of one `tools` array; `where` locates it in messages, `param` is the field to blame."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise Rejected(param, f"{where} must be an array")
    return [_tool(item, f"{where}[{index}]", param) for index, item in enumerate(value)]


def _tool(item: Any, where: str, param: str) -> Tool:
    if not isinstance(item, dict):
        raise Rejected(param, f"{where} must be an object")
    if item.get("type") != "function":
        raise Rejected(param, f"{where}.type must be 'function'")
    function = item.get("function")
    if not isinstance(function, dict):
        raise Rejected(param, f"{where}.function must be an object")
    name = function.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise Rejected(param, f"{where}.function.name must be 1-256 characters of A-Z, a-z, 0-9, _, . or -, "
                              "not starting with a digit")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise Rejected(param, f"{where}.function.parameters must be a JSON Schema object")
    return Tool(name, parameters)
