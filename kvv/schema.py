"""Loading YAML and validating it against kvv's JSON Schemas, with errors that point at the key."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError


@lru_cache(maxsize=None)
def schema(name: str) -> dict[str, Any]:
    return json.loads((resources.files("kvv") / "schemas" / name).read_text(encoding="utf-8"))


def load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", source=source, path=where) from None


def key_path(path: Any) -> str:
    """`checks.param-temperature.enabled`, `thinking.modes[1]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(data: Any, schema_name: str, source: str) -> None:
    """Raise ConfigError for the first (most specific) violation."""
    validator = jsonschema.Draft202012Validator(schema(schema_name))
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        unknown = sorted(k for k in error.instance if k not in allowed)
        if unknown:
            expected = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(f"unknown key {unknown[0]!r}; expected one of: {expected}",
                              source=source, path=key_path(path + [unknown[0]]))
    raise ConfigError(f"{error.message}", source=source, path=key_path(path))
