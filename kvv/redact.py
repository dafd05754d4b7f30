"""Keep secrets out of everything kvv writes or prints."""

from __future__ import annotations

from typing import Any

MASK = "***"


class Redactor:
    """Replaces every registered secret with `***` (which also covers any `Bearer <key>` text)."""

    def __init__(self, *secrets: str | None):
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

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
