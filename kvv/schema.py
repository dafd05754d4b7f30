"""Reading input files, loading YAML and validating it against kvv's JSON Schemas, with errors
that point at the file, the key or line, and what was expected (a ConfigError: kvv exits 2)."""

from __future__ import annotations

import json
import math
import os
import stat
from functools import lru_cache
from importlib import resources
from typing import Any, BinaryIO, Iterator

import jsonschema
import yaml

from .errors import ConfigError

MiB = 1 << 20
# No setting or case needs more. Deeper input only makes the readers behind (jsonschema, the
# simulator's instance builder, repr in a message) exceed Python's recursion limit.
MAX_DEPTH = 64
# More values than a 1 MiB file can spell without YAML aliases: what is left is an alias bomb
# (or a value that contains itself), and everything after the loader would walk it expanded.
MAX_VALUES = 1_000_000


@lru_cache(maxsize=None)
def schema(name: str) -> dict[str, Any]:
    return json.loads((resources.files("kvv") / "schemas" / name).read_text(encoding="utf-8"))


def open_input(path: str | os.PathLike[str], source: str, max_bytes: int | None = None) -> BinaryIO:
    """A user's file opened for reading bytes, refused unless it is a regular, readable file.

    Checked before opening: opening a FIFO blocks until a writer comes, and a device or
    /dev/stdin never ends.
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=source) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{_kind(info.st_mode)}, not a regular file; expected a text file",
                          source=source)
    if max_bytes is not None and info.st_size > max_bytes:
        raise ConfigError(f"the file is {info.st_size:,} bytes; at most {_size(max_bytes)}", source=source)
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=source) from None


def read_input(path: str | os.PathLike[str], source: str, max_bytes: int | None = None) -> str:
    """The text of a user's file, refused unless it is a regular, readable UTF-8 text file.
    A leading UTF-8 BOM (as Windows editors write) is dropped."""
    with open_input(path, source, max_bytes) as file:
        try:
            raw = file.read() if max_bytes is None else file.read(max_bytes + 1)   # it may have grown
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror or exc}", source=source) from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise ConfigError(f"the file is over {_size(max_bytes)}; at most {_size(max_bytes)}", source=source)
    return _text(raw, source, offset=0, where=None).removeprefix("\ufeff")


def input_lines(path: str | os.PathLike[str], source: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of a user's UTF-8 file, read a line at a time so a big case
    file is never held whole. Lines split on "\n" only (U+2028 may sit raw inside a JSON
    string); the BOM of the first line is dropped."""
    with open_input(path, source) as file:
        offset = 0
        for number, raw in enumerate(file, 1):
            text = _text(raw, source, offset, where=f"line {number}")
            yield number, text.removeprefix("\ufeff") if number == 1 else text
            offset += len(raw)


def _text(raw: bytes, source: str, offset: int, where: str | None) -> str:
    """`raw` decoded, refused if binary or not UTF-8; `offset`: where `raw` starts in the file."""
    if b"\0" in raw:
        at = offset + raw.index(b"\0")
        raise ConfigError(f"a binary file (NUL byte at byte offset {at}); expected UTF-8 text",
                          source=source, path=where)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8: byte 0x{raw[exc.start]:02x} at byte offset {offset + exc.start} "
                          f"({exc.reason}); expected UTF-8 text", source=source, path=where) from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n:,} bytes"


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML (safe: plain data only), then check_values() it."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        raise ConfigError(f"not valid YAML: {exc.problem or exc}", source=source, path=where) from None
    except yaml.reader.ReaderError as exc:          # a control character; `position` counts characters
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ConfigError(f"not valid YAML: unacceptable character #x{exc.character:04x}; expected printable text",
                          source=source, path=f"line {line}, column {column}") from None
    except RecursionError:
        # PyYAML composes nodes recursively: `[[[[…` or `- - - …` thousands deep overflows it.
        raise ConfigError(f"nested too deeply to read; expected at most {MAX_DEPTH} levels", source=source) from None
    except Exception as exc:                        # noqa: BLE001 - e.g. ValueError from `2026-02-30` or `!!int x`
        raise ConfigError(f"not valid YAML: {exc}", source=source) from None
    check_values(data, source)
    return data


def check_values(data: Any, source: str, where: str | None = None) -> None:
    """Refuse what a parser builds but no setting or case means: NaN or infinity where a number
    goes (every comparison with NaN is false, so it slips past `minimum`), nesting beyond
    MAX_DEPTH, and more than MAX_VALUES values once aliases are expanded.

    Iterative, with each path kept as a linked (key, parent) pair: the input may be deeper than
    the recursion limit, or contain itself.
    """
    stack: list[tuple[Any, tuple | None, int]] = [(data, None, 0)]
    count = 0
    while stack:
        value, path, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(f"more than {MAX_VALUES:,} values once YAML aliases are expanded; "
                              "expected a file of plain settings", source=source, path=where)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"expected a finite number, got {value}", source=source,
                              path=_where(where, _unlink(path)))
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        entries = [(child, (key, path), depth + 1) for key, child in children]
        if entries and depth + 1 > MAX_DEPTH:      # the key path would be as long: name where it starts
            start = key_path(_unlink(path)[:3])
            raise ConfigError(f"nested more than {MAX_DEPTH} levels deep (from {start} …); expected at most "
                              f"{MAX_DEPTH}", source=source, path=where)
        stack.extend(reversed(entries))           # reversed: the first problem in reading order


def _unlink(path: tuple | None) -> list[Any]:
    keys = []
    while path is not None:
        key, path = path
        keys.append(key)
    return keys[::-1]


def _where(where: str | None, keys: list[Any]) -> str:
    return ": ".join(p for p in (where, key_path(keys) if keys else None) if p) or "(top level)"


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
