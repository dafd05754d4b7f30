"""The benchmark datasets as data (kvv/data/datasets.yaml), and a row's validation into a Record.

A spec names the dataset (Hugging Face id, config, split: each overridable per check, or a local
JSONL file instead), the row count upstream documents (for `kvv plan` with no network), and what
a row must hold: each field's type and whether it is required. `validate_row` turns a row into a
typed `Record` or raises a DatasetError naming the dataset, the row and the field.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..schema import load_yaml
from .errors import DatasetError
from .images import Image

CATALOGUE = "datasets.yaml"
TYPES = ("text", "text-list", "integer", "options", "letter", "image")
MAX_OPTIONS_CHARS = 100_000        # an options string longer than this is not a list of choices
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    required: bool = False
    choices_from: str | None = None      # letter: an index into this options field
    min_items: int | None = None         # text-list, options
    max_items: int | None = None


@dataclass(frozen=True)
class Placeholders:
    """`<image k>` in a text field needs image field `image_k`."""

    pattern: str                         # with {k}: "<image {k}>"
    field: str                           # with {k}: "image_{k}"
    fields: tuple[str, ...]              # the text fields that may hold one

    def regex(self) -> re.Pattern[str]:
        before, _, after = self.pattern.partition("{k}")
        return re.compile(re.escape(before) + r"(\d+)" + re.escape(after))


@dataclass(frozen=True)
class DatasetSpec:
    """Where a benchmark's rows come from and what each must hold."""

    id: str                              # Hugging Face dataset id, e.g. echo840/OCRBench
    config: str = "default"
    split: str = "test"
    key: str | None = None               # kvv's name for it (ocrbench); None for an ad hoc dataset
    rows: int | None = None              # as upstream documents it (no network needed)
    rows_source: str | None = None
    fields: tuple[FieldSpec, ...] = ()
    min_images: int = 0
    placeholders: Placeholders | None = None
    description: str | None = None
    licence: str | None = None
    local: Path | None = None            # a JSONL file to read instead of the server

    @property
    def label(self) -> str:
        """How messages name it: `echo840/OCRBench (default/test)`, or the local file."""
        if self.local is not None:
            return str(self.local)
        return f"{self.id} ({self.config}/{self.split})"

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def image_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.type == "image")

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    def override(self, dataset: str | os.PathLike[str] | None = None, config: str | None = None,
                 split: str | None = None) -> DatasetSpec:
        """The same fields from elsewhere: another id, config or split, or a local JSONL file
        (a path: see `is_local_path`)."""
        spec = self
        if dataset is not None:
            if isinstance(dataset, os.PathLike) or is_local_path(str(dataset)):
                spec = replace(spec, local=Path(dataset), rows=None, rows_source=None)
            else:
                spec = replace(spec, id=str(dataset), local=None, rows=None, rows_source=None)
        if config is not None:
            spec = replace(spec, config=config, rows=None, rows_source=None)
        if split is not None:
            spec = replace(spec, split=split, rows=None, rows_source=None)
        return spec


def is_local_path(value: str) -> bool:
    """A dataset value that names a file, not a Hugging Face id: it ends in .jsonl, starts with
    `.`, `/` or `~`, holds a backslash, or has more than one slash (ids are `owner/name`)."""
    return (value.lower().endswith(".jsonl") or value.startswith((".", "/", "~")) or "\\" in value
            or value.count("/") > 1)


@dataclass(frozen=True)
class Record:
    """One validated row. `fields` holds every non-image column (typed where the spec says:
    text-list a list of str, integer an int, options a list of str, letter one capital letter);
    `images` the non-null image columns, in the spec's order (image_1 … image_7).
    `digest` identifies the row's content (fields and image hashes)."""

    dataset: str                         # the dataset's label
    index: int                           # row index in the split (0-based)
    fields: Mapping[str, Any]
    images: Mapping[str, Image] = field(default_factory=dict)
    line: int | None = None              # its line in a local file

    @property
    def answer(self) -> Any:
        return self.fields.get("answer")

    def image_list(self) -> list[Image]:
        return list(self.images.values())

    @property
    def digest(self) -> str:
        """sha256 of the fields and image hashes: the same row gives the same digest anywhere."""
        content = {"fields": self.fields, "images": {k: v.sha256 for k, v in self.images.items()}}
        return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
                              .encode()).hexdigest()


# -- the catalogue ------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _catalogue() -> tuple[dict[str, DatasetSpec], dict[str, tuple[str, ...]]]:
    source = f"kvv/data/{CATALOGUE}"
    data = load_yaml((resources.files("kvv") / "data" / CATALOGUE).read_text(encoding="utf-8"), source)
    specs = {key: _spec(key, entry) for key, entry in data["datasets"].items()}
    suites = {name: tuple(keys) for name, keys in data["suites"].items()}
    for name, keys in suites.items():
        unknown = [k for k in keys if k not in specs]
        if unknown:
            raise AssertionError(f"{source}: suite {name} names unknown datasets {unknown}")
    return specs, suites


def _spec(key: str, entry: dict[str, Any]) -> DatasetSpec:
    fields = []
    for name, f in entry.get("fields", {}).items():
        if f["type"] not in TYPES:
            raise AssertionError(f"kvv/data/{CATALOGUE}: {key}.{name}: unknown type {f['type']!r}")
        fields.append(FieldSpec(name=name, type=f["type"], required=bool(f.get("required", False)),
                                choices_from=f.get("choices-from"), min_items=f.get("min-items"),
                                max_items=f.get("max-items")))
    ph = entry.get("image-placeholders")
    return DatasetSpec(
        id=entry["id"], config=str(entry.get("config", "default")), split=str(entry.get("split", "test")),
        key=key, rows=entry.get("rows"), rows_source=entry.get("rows-source"), fields=tuple(fields),
        min_images=int(entry.get("min-images", 0)),
        placeholders=Placeholders(ph["pattern"], ph["field"], tuple(ph["in"])) if ph else None,
        description=entry.get("description"), licence=entry.get("licence"))


def builtin_specs() -> dict[str, DatasetSpec]:
    """kvv's key (ocrbench, mmmu-pro, aime2025) -> spec."""
    return dict(_catalogue()[0])


def suites() -> dict[str, tuple[str, ...]]:
    """Suite name (bench) -> the keys of the datasets it needs."""
    return dict(_catalogue()[1])


def suite_specs(name: str) -> list[DatasetSpec]:
    """The datasets a suite needs; `all` is every suite's. KeyError for an unknown suite."""
    specs, known = _catalogue()
    keys = [k for s in known.values() for k in s] if name == "all" else list(known[name])
    return [specs[k] for k in dict.fromkeys(keys)]


def find_spec(name: str, config: str | None = None, split: str | None = None) -> DatasetSpec:
    """A built-in spec by key (ocrbench) or Hugging Face id (echo840/OCRBench); any other id is an
    ad hoc dataset (config `default`, split `test` unless given) whose rows are taken as they
    are, images found from the server's features; a path is a local JSONL file."""
    specs = builtin_specs()
    spec = specs.get(name) or next((s for s in specs.values() if s.id.lower() == name.lower()), None)
    if spec is None:
        if is_local_path(name):
            spec = DatasetSpec(id=name, local=Path(name))
        else:
            spec = DatasetSpec(id=name)
    return spec.override(config=config, split=split) if (config or split) else spec


# -- validation ---------------------------------------------------------------------------------

def validate_row(spec: DatasetSpec, row: Any, index: int, images: Mapping[str, Image] | None = None,
                 image_fields: Sequence[str] | None = None) -> Record:
    """The typed record of `row` (its image cells already turned into `images`, or not yet: then
    only their presence is checked), or DatasetError naming the dataset, row and field.

    `image_fields`: every image column (default: the spec's); the server's features may add some."""
    def fail(message: str, name: str | None = None) -> DatasetError:
        return DatasetError(message, dataset=spec.label, row=index, field=name)

    if not isinstance(row, dict):
        raise fail(f"expected an object of fields, got {_kind(row)}")
    image_names = list(dict.fromkeys([*spec.image_fields, *(image_fields or ())]))
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name in image_names:
            continue
        f = spec.field(name)
        if f is None or value is None:
            out[name] = value
            continue
        try:
            out[name] = _typed(f, value)
        except ValueError as exc:
            raise fail(str(exc), name) from None
    for f in spec.fields:
        if f.required and row.get(f.name) is None:
            raise fail("missing" if f.name not in row else "is null", f.name) from None
    for f in spec.fields:
        if f.type == "letter" and f.choices_from and out.get(f.name) is not None:
            choices = out.get(f.choices_from)
            if isinstance(choices, list) and LETTERS.index(out[f.name]) >= len(choices):
                raise fail(f"answer {out[f.name]!r} is not one of the {len(choices)} options "
                           f"(A–{LETTERS[len(choices) - 1]})", f.name)
    present = [n for n in image_names if row.get(n) is not None]
    if len(present) < spec.min_images:
        raise fail(f"has {len(present)} images; expected at least {spec.min_images} "
                   f"({', '.join(spec.image_fields) or 'image fields'})")
    if spec.placeholders is not None:
        _check_placeholders(spec, row, out, present, fail)
    found: dict[str, Image] = {}
    if images is not None:
        for name in present:
            if name not in images:
                raise fail("image not loaded", name)
            found[name] = images[name]
    return Record(dataset=spec.label, index=index, fields=out, images=found)


def _check_placeholders(spec: DatasetSpec, row: dict[str, Any], out: dict[str, Any], present: list[str],
                        fail: Any) -> None:
    ph = spec.placeholders
    assert ph is not None
    regex = ph.regex()
    for name in ph.fields:
        for text in _strings(out.get(name)):
            for k in regex.findall(text):
                image = ph.field.format(k=k)
                if image not in present:
                    state = "missing" if image not in row else "null"
                    raise fail(f"refers to {ph.pattern.format(k=k)} but {image} is {state}", name)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                yield item


def _typed(f: FieldSpec, value: Any) -> Any:
    """The value as its type says, or ValueError with what was expected."""
    if f.type == "text":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_kind(value)}")
        if f.required and not value.strip():
            raise ValueError("is empty; expected text")
        return value
    if f.type == "text-list":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"expected a list of strings, got {_kind(value)}")
        _count(f, items)
        return items
    if f.type == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"expected an integer, got {_kind(value)}")
        if isinstance(value, str):
            if not re.fullmatch(r"\s*[+-]?\d{1,30}\s*", value, re.ASCII):
                raise ValueError(f"expected an integer, got {_short(value)}")
            value = int(value)
        return value
    if f.type == "options":
        return _options(f, value)
    if f.type == "letter":
        if not isinstance(value, str) or not re.fullmatch(r"[A-Z]", value.strip(), re.ASCII):
            raise ValueError(f"expected one capital letter (A, B, …), got {_short(value)}")
        return value.strip()
    if f.type == "image":       # never reached: image columns are taken apart by the loaders
        return value
    raise AssertionError(f.type)


def _options(f: FieldSpec, value: Any) -> list[str]:
    """A list of strings, or the Python-list string MMMU ships ("['a', 'b']"): parsed with
    ast.literal_eval (literals only, never code) and accepted only as a list of strings."""
    items = value
    if isinstance(value, str):
        if len(value) > MAX_OPTIONS_CHARS:
            raise ValueError(f"the options string is {len(value):,} characters; expected a short list")
        try:
            items = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
            raise ValueError(f"expected a Python list of strings, got {_short(value)} "
                             f"({type(exc).__name__})") from None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"expected a list of strings, got {_short(value)}")
    _count(f, items)
    return items


def _count(f: FieldSpec, items: list[str]) -> None:
    if f.min_items is not None and len(items) < f.min_items:
        raise ValueError(f"has {len(items)} items; expected at least {f.min_items}")
    if f.max_items is not None and len(items) > f.max_items:
        raise ValueError(f"has {len(items)} items; expected at most {f.max_items}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
