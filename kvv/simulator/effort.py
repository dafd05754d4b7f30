"""Thinking effort (Kimi K3): the request fields that set it, and how long it makes the reasoning.

The effort may come from `thinking.effort` (kimi format), `chat_template_kwargs.thinking_effort`
(open-source format) or top-level `reasoning_effort`, in that order of precedence; without
any the model thinks at its highest level. `reasoning_effort: "none"` switches thinking off.
"""

from __future__ import annotations

import re
from typing import Any

from .conversation import last_user_text
from .rejection import Rejected

OFF = "none"
ASKS_FOR_EFFORT = re.compile(r"thinking\s+effort", re.IGNORECASE)


def requested_effort(body: dict[str, Any], levels: list[str]) -> str:
    """The effective effort level; Rejected when a field names a level the model lacks."""
    chosen = None
    for container, name, param in ((body.get("thinking"), "effort", "thinking"),
                                   (body.get("chat_template_kwargs"), "thinking_effort", "chat_template_kwargs"),
                                   (body, "reasoning_effort", "reasoning_effort")):
        value = container.get(name) if isinstance(container, dict) else None
        if value is None:
            continue
        allowed = [*levels, OFF] if name == "reasoning_effort" else levels
        if value not in allowed:             # every field is checked, even behind a winning one
            raise Rejected(param, f"{name} must be one of {', '.join(allowed)}")
        if chosen is None and value != OFF:
            chosen = value
    return chosen or levels[-1]


def switched_off(body: dict[str, Any]) -> bool:
    """Whether `reasoning_effort: "none"` asks for no thinking."""
    return body.get("reasoning_effort") == OFF


def reasoning_scale(effort: str, levels: list[str]) -> int:
    """How many times the lowest level's reasoning a level produces: 1, 2, 3, ..."""
    return levels.index(effort) + 1


def asks_for_effort(messages: list[dict[str, Any]]) -> bool:
    return bool(ASKS_FOR_EFFORT.search(last_user_text(messages)))


def effort_report(effort: str) -> str:
    return f"My current thinking effort is {effort}."
