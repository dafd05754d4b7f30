"""Deterministic stand-ins for a model's tokenizer and chat template.

A `Tokenizer` is a token rule plus the template's overheads, named by the ids the simulator
announces (X-KVV-Simulator) and built-in references say they were made with. The simulator's
`usage` is honest by its own tokenizer, so a check can recount it from what it sent and received.
Two ship: kvv's default, and a second one that counts differently, so kvv can be tried against
a healthy vendor whose numbers none of its built-in constants predict.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tokenizer:
    id: str                  # the token rule's name
    template: str            # the chat template's name
    token: str               # regex of one token (whitespace between tokens is free)
    template_tokens: int     # the generation prompt that opens the assistant's turn
    message_tokens: int      # per message: its start/end markers and separators
    roles_count: bool        # whether the role's name is rendered as text

    @property
    def identity(self) -> dict[str, str]:
        return {"tokenizer": self.id, "template": self.template}

    def count(self, text: str) -> int:
        return len(re.findall(self.token, text))

    def pieces(self, text: str) -> tuple[str, ...]:
        """`text` cut into one-token pieces: they join back to `text`, and any prefix of k counts k."""
        found = re.findall(rf"\s*(?:{self.token})", text)
        trailing = text[sum(map(len, found)):]
        if found and trailing:
            found[-1] += trailing
        return tuple(found)

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        """The prompt's tokens after the chat template.

        Per message: role, text, history `reasoning_content`, `tool_calls`, `tool_call_id` and
        dynamic `tools`; then the global `tools` and a `json_schema` response_format. Structured
        parts count as their JSON text (whitespace and key order do not matter).
        """
        total = self.template_tokens
        for message in body.get("messages") or []:
            if not isinstance(message, dict):
                continue
            total += self.message_tokens
            if self.roles_count:
                total += self.count(str(message.get("role", "")))
            total += self.count(content_text(message.get("content")))
            for name in ("reasoning_content", "tool_call_id"):
                if isinstance(message.get(name), str):
                    total += self.count(message[name])
            for name in ("tool_calls", "tools"):
                if message.get(name) is not None:
                    total += self._json_tokens(message[name])
        if body.get("tools") is not None:
            total += self._json_tokens(body["tools"])
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema" \
                and response_format.get("json_schema") is not None:
            total += self._json_tokens(response_format["json_schema"])
        return total

    def _json_tokens(self, value: Any) -> int:
        return self.count(json.dumps(value, ensure_ascii=False))


TOKENIZERS = {t.id: t for t in (
    # kvv's own: a run of word characters, or one other non-space character.
    Tokenizer("kvv-words-1", "kvv-chat-1", r"\w+|[^\w\s]", template_tokens=3, message_tokens=4, roles_count=True),
    # A second model: up to four non-space characters a token, a template with other markers.
    Tokenizer("kvv-chunks-1", "kvv-chat-2", r"\S{1,4}", template_tokens=11, message_tokens=2, roles_count=False),
)}
DEFAULT = TOKENIZERS["kvv-words-1"]
TOKENIZER_ID, TEMPLATE_ID = DEFAULT.id, DEFAULT.template

# The default tokenizer's functions, for the text the simulated model writes.
count, pieces, prompt_tokens = DEFAULT.count, DEFAULT.pieces, DEFAULT.prompt_tokens


def content_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part["text"] for part in content
                        if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""
