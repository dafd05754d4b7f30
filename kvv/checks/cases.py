"""What the tool-calling checks share: reading their case files and the two stream modes of an
item.

A case file is kvv's built-in one (under kvv/data) or the user's (a check option); every
problem with it is a ConfigError naming the file and, for JSONL, the line (kvv exits 2).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..schema import load_yaml
from .base import STREAM

# Every item of these checks runs once per entry: vendors often validate or render the two paths
# differently. Label -> the request fields that select the mode.
STREAM_MODES: dict[str, dict[str, Any]] = {"non-stream": {}, "stream": STREAM}


# -- case files -----------------------------------------------------------------------------------

def read_text(path: str | None, builtin: str) -> tuple[str, str]:
    """(source name, text) of the user's file `path`, or of kvv/data/`builtin` when None."""
    if path is None:
        file, source = resources.files("kvv") / "data" / builtin, f"kvv/data/{builtin} (built-in)"
    else:
        file, source = Path(path), path
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=source) from None
    try:
        return source, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 at byte {exc.start}", source=source) from None


def load_jsonl(path: str | None, builtin: str, kinds: tuple[type, ...] = (dict,),
               expected: str = "a JSON object") -> tuple[str, list[tuple[int, Any]]]:
    """(source name, [(1-based line number, value)]) for every non-blank line.

    Lines split on "\\n" only: U+2028 and friends may sit raw inside a JSON string. Each value
    must be an instance of `kinds` (`expected` says so in words).
    """
    source, text = read_text(path, builtin)
    lines = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"not JSON: {exc}", source=source, path=f"line {number}") from None
        if not isinstance(value, kinds):
            raise ConfigError(f"expected {expected}, got {type(value).__name__}", source=source,
                              path=f"line {number}")
        lines.append((number, value))
    return source, lines


def load_yaml_file(path: str | None, builtin: str) -> tuple[str, Any]:
    """(source name, parsed YAML) of the user's file `path`, or of kvv/data/`builtin` when None."""
    source, text = read_text(path, builtin)
    return source, load_yaml(text, source)
