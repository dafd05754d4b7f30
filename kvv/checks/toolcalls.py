"""Judging a tool call's arguments: a JSON string whose value validates against the tool's schema.

Shared by tool-schema, tool-workflow and toolcall-replay, so the three agree on what "valid" means.
`format` is an annotation here, as in upstream's jsonschema validation, so accuracies compare.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

UNPARSEABLE = "unparseable-json"
INVALID = "invalid-arguments"


def validator(schema: Any) -> Draft202012Validator:
    """A cached validator for `schema` (tools repeat across requests)."""
    return _cached(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=512)
def _cached(schema: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema))


def arguments_problem(arguments: Any, check: Draft202012Validator) -> tuple[str, str, str | None] | None:
    """(class, message, JSON path of the violation) for bad arguments, or None when they validate."""
    if not isinstance(arguments, str):
        return UNPARSEABLE, f"arguments are {type(arguments).__name__}, expected a JSON string", None
    try:
        value = json.loads(arguments, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        return UNPARSEABLE, f"arguments are not valid JSON ({exc}): {arguments[:120]!r}", None
    error = best_match(check.iter_errors(value))
    if error is not None:
        return INVALID, f"arguments violate the schema at {error.json_path}: {error.message[:200]}", error.json_path
    return None


def function_of(call: Any) -> dict[str, Any]:
    """A tool call's `function` object ({} when the call or its function is malformed)."""
    function = call.get("function") if isinstance(call, dict) else None
    return function if isinstance(function, dict) else {}


def call_problem(call: dict[str, Any], parameters: dict[str, Any]) -> str | None:
    """What is wrong with one call given the declared tools (name -> parameters schema), or None."""
    function = function_of(call)
    name = function.get("name")
    if name not in parameters:
        return f"call to undeclared tool {name!r} (declared: {', '.join(parameters) or 'none'})"
    problem = arguments_problem(function.get("arguments"), validator(parameters[name]))
    return None if problem is None else f"{name}: {problem[1]}"


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
