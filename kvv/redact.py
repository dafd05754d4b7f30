"""Keep secrets out of everything kvv writes or prints."""

from __future__ import annotations

import json
from typing import Any

MASK = "***"


class Redactor:
    """Replaces every registered secret with `***` (which also covers any `Bearer <key>` text)."""

    def __init__(self, *secrets: str | None):
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        # Each as it reads inside a JSON string (escapes and all); still longest first.
        self._in_json = [json.dumps(s, ensure_ascii=False)[1:-1] for s in self.secrets]

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, MASK)
        return value

    def obj(self, value: Any) -> Any:
        """A deep copy of a JSON-like value with secrets masked in every string."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.obj(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v) for v in value]
        return value

    def dumps(self, value: Any) -> str:
        """`value` as JSON text (ensure_ascii off) with secrets masked: the text of `obj(value)`,
        without the deep copy. JSON escapes a string a character at a time, so a secret inside any
        string of `value` appears in the text exactly as it is written alone."""
        text = json.dumps(value, ensure_ascii=False)
        for written in self._in_json:
            text = text.replace(written, MASK)
        return text
