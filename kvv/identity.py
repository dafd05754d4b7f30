"""How kvv's simulator says what it is, on every reply: `X-KVV-Simulator: tokenizer=ID;
template=ID`. The simulator writes it, the probe reads it; built-in references made on a
simulator hold only where this identity matches (kvv.references)."""

from __future__ import annotations

from typing import Mapping

HEADER = "X-KVV-Simulator"


def header_value(identity: Mapping[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in identity.items())


def parse(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The identity in a response's headers (names lower-cased), or None: not kvv's simulator."""
    value = headers.get(HEADER.lower())
    if not value:
        return None
    pairs = (part.split("=", 1) for part in value.split(";") if "=" in part)
    found = {k.strip(): v.strip() for k, v in pairs if k.strip() and v.strip()}
    return found or None
