"""A local JSONL file instead of the server: one row a line, the same shape as the viewer's
`rows[].row` (a line may also be the whole `{"row_idx", "row"}` item, as the cache stores it).

An image cell is a base64 data URL, a path relative to the file (inside its directory), or an
object with `src` or `path` holding one of those (and optional `width`/`height`). Images are
read and mime-checked (the bytes decide the type). Anything wrong is a ConfigError naming the
file, the line and the field: the CLI exits 2.
"""

from __future__ import annotations

import json
import math
import mimetypes
import os
import stat
from pathlib import Path, PurePath
from typing import Any

from ..errors import ConfigError
from ..schema import check_values, read_input
from .errors import DatasetError
from .images import MAX_IMAGE_BYTES, Image, decode_data_url, is_data_url
from .specs import DatasetSpec, Record, validate_row

MAX_FILE_BYTES = 1 << 30


class _NotFinite(ValueError):
    pass


def _constant(text: str) -> float:
    raise _NotFinite(f"{text} is not a JSON number; expected a finite number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        _constant(text)
    return value


def read_rows(path: str | os.PathLike[str], spec: DatasetSpec, *,
              max_image_bytes: int = MAX_IMAGE_BYTES) -> list[Record]:
    """The file's rows as validated Records (index: the row's 0-based position; line: its line)."""
    source = str(path)
    text = read_input(path, source, max_bytes=MAX_FILE_BYTES)
    base = Path(path).resolve().parent
    records: list[Record] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            value = json.loads(line, parse_constant=_constant, parse_float=_float)
        except _NotFinite as exc:
            raise ConfigError(str(exc), source=source, path=where) from None
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"not JSON: {exc}", source=source, path=where) from None
        if isinstance(value, dict) and isinstance(value.get("row"), dict) and set(value) <= {
                "row", "row_idx", "truncated_cells"}:
            value = value["row"]
        if not isinstance(value, dict):
            raise ConfigError(f"expected a JSON object (one row), got {type(value).__name__}", source=source,
                              path=where)
        check_values(value, source, where)
        names = [n for n in dict.fromkeys([*spec.image_fields, *(k for k, v in value.items() if _looks_image(v))])]
        images = {}
        for name in names:
            if value.get(name) is None:
                continue
            try:
                images[name] = _image(value[name], base, max_image_bytes)
            except ValueError as exc:
                raise ConfigError(str(exc), source=source, path=f"{where}, field {name!r}") from None
        try:
            record = validate_row(spec, value, len(records), images, image_fields=names)
        except DatasetError as exc:
            at = f"{where}, field {exc.field!r}" if exc.field else where
            raise ConfigError(exc.reason, source=source, path=at) from None
        records.append(Record(dataset=source, index=record.index, fields=record.fields, images=record.images,
                              line=number))
    if not records:
        raise ConfigError("no rows: the file is empty" + (" (only blank lines)" if text else ""), source=source)
    return records


def count_rows(path: str | os.PathLike[str]) -> int:
    """Non-blank lines, without parsing them (for `kvv plan`)."""
    count = 0
    with open(path, "rb") as file:
        for line in file:
            count += bool(line.strip())
    return count


def _looks_image(value: Any) -> bool:
    if isinstance(value, str):
        return is_data_url(value) and value[5:11].lower() == "image/"
    return isinstance(value, dict) and set(value) <= {"src", "path", "width", "height", "bytes"} and (
        isinstance(value.get("src"), str) or isinstance(value.get("path"), str))


def _image(cell: Any, base: Path, cap: int) -> Image:
    width = height = None
    if isinstance(cell, dict):
        width, height = cell.get("width"), cell.get("height")
        cell = cell.get("src") or cell.get("path")
    if not isinstance(cell, str) or not cell:
        raise ValueError("expected an image: a data URL, a path relative to the file, or {src|path: ...}")
    size = {k: v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None
            for k, v in (("width", width), ("height", height))}
    if is_data_url(cell):
        data, declared = decode_data_url(cell, cap)
        return Image.from_bytes(data, declared, width=size["width"], height=size["height"])
    return _file_image(cell, base, cap, size)


def _file_image(name: str, base: Path, cap: int, size: dict[str, int | None]) -> Image:
    pure = PurePath(name)
    if pure.is_absolute() or Path(name).drive or name.startswith("~"):
        raise ValueError(f"image path {name!r} is absolute; expected a path relative to the file")
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        raise ValueError(f"image path {name!r} leads outside the file's directory {base}")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ValueError(f"image {name!r} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"image {name!r} is not a regular file")
    if info.st_size > cap:
        raise ValueError(f"image {name!r} is {info.st_size:,} bytes; at most {cap:,}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"image {name!r} cannot be read: {exc.strerror or exc}") from None
    declared = mimetypes.guess_type(path.name)[0]
    return Image.from_bytes(data, declared, width=size["width"], height=size["height"], path=path, keep=False)
