"""response_format: which forms a request may ask for, and the JSON answer each one gets."""

from __future__ import annotations

import json
import re
from typing import Any

from .instances import minimal_or_empty
from .rejection import Rejected

TYPES = ("text", "json_object", "json_schema")
QUOTED = re.compile(r'"([^"\n]+)"')


def response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    """The validated response_format, or None for plain text."""
    value = body.get("response_format")
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in TYPES:
        raise Rejected("response_format", f"response_format.type must be one of {', '.join(TYPES)}")
    if value["type"] == "text":
        return None
    if value["type"] == "json_object":
        return value
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise Rejected("response_format", "response_format.json_schema must be an object")
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        raise Rejected("response_format", "response_format.json_schema.name is required")
    if not isinstance(spec.get("schema"), dict):
        raise Rejected("response_format", "response_format.json_schema.schema must be a JSON Schema object")
    if "strict" in spec and not isinstance(spec["strict"], bool):
        raise Rejected("response_format", "response_format.json_schema.strict must be a boolean")
    return value


def json_content(form: dict[str, Any], question: str, words: list[str]) -> str:
    """Compact JSON for a json_object or json_schema answer.

    json_object: the double-quoted words of `question` as keys, each with one of `words`;
    {"answer": <all the words>} when it quotes none. json_schema: the schema's minimal instance.
    """
    if form["type"] == "json_schema":
        return compact_json(minimal_or_empty(form["json_schema"]["schema"]))
    keys = list(dict.fromkeys(QUOTED.findall(question)))
    return compact_json({key: words[i % len(words)] for i, key in enumerate(keys)} if keys
                        else {"answer": " ".join(words)})


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
