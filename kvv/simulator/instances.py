"""Minimal valid and deliberately invalid instances of a JSON Schema (draft 2020-12).

The simulated model fills tool arguments and json_schema answers with `minimal_instance`; the
`tool-args-invalid` fault uses `invalid_instance`. Generation proposes candidates keyword by
keyword and keeps the first one jsonschema accepts, so an approximation in a proposal (a merged
`allOf`, an ignored lookahead) costs a retry, never a wrong answer.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from itertools import islice
from typing import Any, Iterable, Iterator
from urllib.parse import unquote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import UnknownType
from referencing.exceptions import Unresolvable

from .patterns import matching_string

Schema = dict[str, Any] | bool

FORMAT_EXAMPLES = {
    "date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z", "time": "00:00:00Z",
    "duration": "P1D", "email": "a@example.com", "idn-email": "a@example.com",
    "hostname": "example.com", "idn-hostname": "example.com", "ipv4": "127.0.0.1", "ipv6": "::1",
    "uri": "https://example.com", "uri-reference": "https://example.com", "iri": "https://example.com",
    "iri-reference": "https://example.com", "uri-template": "https://example.com",
    "uuid": "00000000-0000-0000-0000-000000000000", "json-pointer": "", "relative-json-pointer": "0",
    "regex": ".*",
}
TYPE_ORDER = ("object", "null", "string", "number", "boolean", "array")   # for an untyped schema
TYPE_HINTS = {   # keywords that only constrain one type say which type the author meant
    "object": ("properties", "required", "additionalProperties", "patternProperties", "minProperties",
               "maxProperties", "propertyNames", "dependentRequired"),
    "array": ("items", "prefixItems", "contains", "minItems", "maxItems", "uniqueItems"),
    "string": ("minLength", "maxLength", "pattern", "format"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
}
REF_DEPTHS = (0, 1, 2, 3, 4, 6, 8, 12)    # iterative deepening: the shallowest recursion wins
CANDIDATES_PER_SCHEMA = 24
WORK_LIMIT = 20_000                       # candidate checks per schema before giving up
LONGEST_STRING = 10_000                   # a longer minLength is out of a model's reach too
FILLER = "abcdefghijklmnopqrstuvwxyz"
PROBES: tuple[object, ...] = (None, True, 0, 0.5, -1, "", "kvv", [], [None], {}, {"kvv_unexpected": None})
BROKEN_SCHEMA = (UnknownType, Unresolvable, re.error, RecursionError)   # what validating against one raises


class _Unsatisfiable(Exception):
    pass


def minimal_instance(schema: Schema) -> Any:
    """A small value valid against `schema`; ValueError("unsatisfiable ...") when none is found."""
    found, problem = _minimal_json(json.dumps(schema, ensure_ascii=False))   # key order kept: it orders the output
    if found is None:
        raise ValueError(problem)
    return json.loads(found)


def minimal_or_empty(schema: Schema) -> Any:
    """`minimal_instance`, or {} for an unsatisfiable schema (a real model cannot meet one either)."""
    try:
        return minimal_instance(schema)
    except ValueError:
        return {}


def invalid_instance(schema: Schema) -> Any:
    """A JSON value that violates `schema`, as close to a valid one as possible.

    Preferred, in order: the minimal instance with a required property left out, with a
    property of the wrong type, with an unexpected property; else a value of the wrong type.
    """
    validator = Draft202012Validator(schema)
    try:
        valid = minimal_instance(schema)
    except ValueError:
        valid = None
    for candidate in (*_mutations(valid), *PROBES):
        try:
            if not validator.is_valid(candidate):
                return candidate
        except BROKEN_SCHEMA:
            return candidate
    raise ValueError("every JSON value satisfies this schema")


@lru_cache(maxsize=512)
def _minimal_json(schema: str) -> tuple[str | None, str]:
    """(the instance's JSON or None, why not); cached, as the server sees the same schemas again and again."""
    try:
        return json.dumps(_Generator(json.loads(schema)).minimal(), ensure_ascii=False), ""
    except ValueError as problem:
        return None, str(problem)


def _key(value: Any) -> str:
    """Equal JSON values, equal keys."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _mutations(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for key in value:
            yield {k: v for k, v in value.items() if k != key}
        wrong: object
        for key in value:
            for wrong in ("kvv", 0, None, []):
                yield {**value, key: wrong}
        yield {**value, "kvv_unexpected": None}
    elif isinstance(value, list):
        yield [*value, None]
        yield value[1:]


class _Generator:
    def __init__(self, root: Schema):
        self.root = root
        self.validator = Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)
        self.work = 0
        self.ref_limit = 0
        self.limited = False           # whether the ref limit cut a branch off in this pass

    def minimal(self) -> Any:
        for limit in REF_DEPTHS:
            self.ref_limit, self.limited = limit, False
            try:
                return self.generate(self.root, 0)
            except _Unsatisfiable:
                if not self.limited or self.work > WORK_LIMIT:
                    break
        raise ValueError("unsatisfiable: no instance found for this schema")

    # -- the search --------------------------------------------------------------------------

    def generate(self, schema: Schema, refs: int, taken: set[str] | None = None) -> Any:
        """The first candidate valid against `schema` whose JSON is not in `taken` (for uniqueItems
        and property names)."""
        for candidate in islice(self.candidates(schema, refs), CANDIDATES_PER_SCHEMA):
            if not (taken and _key(candidate) in taken) and self.valid(schema, candidate):
                return candidate
        raise _Unsatisfiable

    def valid(self, schema: Schema, value: Any) -> bool:
        self.work += 1
        if self.work > WORK_LIMIT:
            raise _Unsatisfiable
        try:
            return self.validator.evolve(schema=schema).is_valid(value)
        except BROKEN_SCHEMA:
            return False

    def candidates(self, schema: Schema, refs: int) -> Iterator[Any]:
        try:
            schema, refs = self.flatten(schema, refs)
        except _Unsatisfiable:
            return
        if schema is False:
            return
        if schema is True:
            schema = {}
        if "const" in schema:
            yield schema["const"]
            return
        if "enum" in schema:
            yield from schema["enum"]
            return
        choice = _choice_point(schema)
        if choice is not None:
            keywords, branches = choice
            rest = {k: v for k, v in schema.items() if k not in keywords}
            for branch in branches:
                yield from self.candidates(_conjoin(rest, branch), refs)
            return
        for kind in _types(schema):
            try:
                yield from self.typed(kind, schema, refs)
            except _Unsatisfiable:
                continue

    def typed(self, kind: str, schema: dict[str, Any], refs: int) -> Iterator[Any]:
        if kind == "null":
            yield None
        elif kind == "boolean":
            yield from (False, True)
        elif kind in ("integer", "number"):
            yield from _numbers(schema, integer=kind == "integer")
        elif kind == "string":
            yield from _strings(schema)
        elif kind == "array":
            yield from self.arrays(schema, refs)
        elif kind == "object":
            yield from self.objects(schema, refs)

    def arrays(self, schema: dict[str, Any], refs: int) -> Iterator[list[Any]]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", True)
        contains = schema.get("contains")
        needed_matches = schema.get("minContains", 1) if contains is not None else 0
        length = max(schema.get("minItems", 0), needed_matches)
        values: list[Any] = []
        taken: set[str] = set()
        for position in range(length):
            item = prefix[position] if position < len(prefix) else items
            if position < needed_matches:
                item = {"allOf": [item, contains]}
            value = self.generate(item, refs, taken if schema.get("uniqueItems") else None)
            values.append(value)
            taken.add(_key(value))
        yield values

    def objects(self, schema: dict[str, Any], refs: int) -> Iterator[dict[str, Any]]:
        properties = schema.get("properties") or {}
        keys = list(dict.fromkeys(schema.get("required") or []))
        for key in keys:                     # dependentRequired: a present key brings its dependents
            keys += [k for k in (schema.get("dependentRequired") or {}).get(key, []) if k not in keys]
        wanted = schema.get("minProperties", 0)
        keys += [k for k in properties if k not in keys and properties[k] is not False][:max(0, wanted - len(keys))]
        keys += self.extra_names(schema, refs, keys, wanted - len(keys))
        order = [k for k in properties if k in keys] + [k for k in keys if k not in properties]
        yield {key: self.generate(_property_schema(schema, key), refs) for key in order}
        everything = [k for k in properties if properties[k] is not False and k not in keys]
        if everything:               # e.g. dependentSchemas or if/then asking for more than required
            yield {key: self.generate(_property_schema(schema, key), refs) for key in [*order, *everything]}

    def extra_names(self, schema: dict[str, Any], refs: int, keys: list[str], count: int) -> list[str]:
        """Names for properties beyond the declared ones (for minProperties)."""
        names_schema = _conjoin({"type": "string", "minLength": 1}, schema.get("propertyNames", True))
        taken = {_key(k) for k in [*keys, *(schema.get("properties") or {})]}
        names = []
        for _ in range(count):
            name = self.generate(names_schema, refs, taken)
            names.append(name)
            taken.add(_key(name))
        return names

    # -- $ref and allOf ----------------------------------------------------------------------

    def flatten(self, schema: Schema, refs: int) -> tuple[Schema, int]:
        """`schema` with its `$ref` and `allOf` merged in, and the refs followed so far."""
        if not isinstance(schema, dict):
            return schema, refs
        parts: list[Schema] = []
        deepest = refs
        if isinstance(schema.get("$ref"), str):
            if refs >= self.ref_limit:
                self.limited = True
                raise _Unsatisfiable
            target, deepest = self.flatten(self.resolve(schema["$ref"]), refs + 1)
            parts.append(target)
        for branch in schema.get("allOf") or []:
            flat, followed = self.flatten(branch, refs)
            parts.append(flat)
            deepest = max(deepest, followed)
        if not parts:
            return schema, refs
        rest = {k: v for k, v in schema.items() if k not in ("$ref", "allOf")}
        return _conjoin(rest, *parts), deepest

    def resolve(self, ref: str) -> Schema:
        """The schema a local `$ref` points to: "#", a JSON pointer, or an `$anchor`."""
        root_id = self.root.get("$id", "") if isinstance(self.root, dict) else ""
        document, _, fragment = ref.partition("#")
        if document not in ("", root_id.partition("#")[0]):
            raise _Unsatisfiable               # another document: nothing to fetch it from
        if fragment and not fragment.startswith("/"):
            return _anchor(self.root, fragment)
        target: Any = self.root
        for token in fragment.split("/")[1:]:
            token = unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(target, list) and token.isdigit() and int(token) < len(target):
                target = target[int(token)]
            elif isinstance(target, dict) and token in target:
                target = target[token]
            else:
                raise _Unsatisfiable
        return target


def _choice_point(schema: dict[str, Any]) -> tuple[tuple[str, ...], list[Schema]] | None:
    """The first keywords that offer a choice, and the branches to try in turn."""
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list):
            return (keyword,), schema[keyword]
    if "if" in schema:         # if/then/else: either meet `if` and `then`, or go the `else` way
        return ("if", "then", "else"), [_conjoin(schema["if"], schema.get("then", True)), schema.get("else", True)]
    return None


# -- proposals per type ------------------------------------------------------------------------

def _types(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        kinds = [declared]
    elif isinstance(declared, list):
        kinds = list(declared)
    else:
        hinted = [kind for kind, words in TYPE_HINTS.items() if any(w in schema for w in words)]
        kinds = hinted + [kind for kind in TYPE_ORDER if kind not in hinted]
    excluded = schema.get("not")
    if isinstance(excluded, dict) and set(excluded) == {"type"}:     # {"not": {"type": ...}}
        banned = excluded["type"] if isinstance(excluded["type"], list) else [excluded["type"]]
        kinds = [kind for kind in kinds if kind not in banned and not (kind == "integer" and "number" in banned)]
    if "integer" in kinds and "number" in kinds:
        kinds.remove("number")            # every integer is a number
    return kinds


def _numbers(schema: dict[str, Any], integer: bool) -> Iterator[int | float]:
    low = _bound(schema, "minimum", "exclusiveMinimum", max)
    high = _bound(schema, "maximum", "exclusiveMaximum", min)
    seeds: list[float] = [0, 1, -1]
    if low is not None:          # the bound itself, else the next whole number above it
        seeds += [low, math.floor(low) + 1, low + 1]
    if high is not None:
        seeds += [high, math.ceil(high) - 1, high - 1]
    if low is not None and high is not None:
        seeds += [(low + high) / 2]
    start = math.ceil(low) if low is not None else math.floor(high) if high is not None else 0
    direction = -1 if low is None and high is not None else 1
    seeds += [start + direction * k for k in range(2, 12)]       # distinct values for uniqueItems
    step = schema.get("multipleOf")
    if isinstance(step, (int, float)) and step > 0:
        seeds = [k * step for seed in seeds for k in _multiples(seed, step)]
    seen = set()
    for seed in seeds:
        value = _tidy(seed)
        if (integer and not float(value).is_integer()) or value in seen:
            continue
        seen.add(value)
        yield value


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, tighter: Any) -> float | None:
    values = [schema[name] for name in (inclusive, exclusive)
              if isinstance(schema.get(name), (int, float)) and not isinstance(schema.get(name), bool)]
    return tighter(values) if values else None


def _multiples(seed: float, step: float) -> list[int]:
    nearest = math.ceil(seed / step)
    return [nearest, nearest + 1, nearest - 1, nearest + 2, nearest * 2]   # *2: e.g. int multiples of 2.5


def _tidy(value: float) -> int | float:
    """Whole numbers as ints, others rounded off float noise (0.30000000000000004 -> 0.3)."""
    if float(value).is_integer():
        return int(value)
    return float(f"{value:.12g}")


def _strings(schema: dict[str, Any]) -> Iterator[str]:
    shortest = schema.get("minLength", 0)
    if shortest > LONGEST_STRING:
        raise _Unsatisfiable
    if isinstance(schema.get("pattern"), str):
        yield from _pattern_strings(schema["pattern"], shortest)
    example = FORMAT_EXAMPLES.get(schema.get("format", ""))   # "" names no format: none given, no example
    if example is not None:
        yield example
    if shortest == 0:
        yield ""
    yield from (letter * max(shortest, 1) for letter in FILLER[:4])
    yield from ("a" * (shortest + extra) for extra in (4, 16, 64))   # for `not` and `oneOf` ruling out short ones
    yield from (letter * max(shortest, 1) for letter in FILLER[4:])


def _pattern_strings(pattern: str, shortest: int) -> Iterator[str]:
    """Matches of growing length, then a match with letters after it (distinct names)."""
    try:
        matches = [matching_string(pattern, shortest + extra) for extra in (0, 1, 2, 4)]
    except (re.error, RecursionError):
        return
    yield from dict.fromkeys(matches)
    for letter in FILLER:
        yield matches[0] + letter


def _property_schema(schema: dict[str, Any], key: str) -> Schema:
    """What a property named `key` must satisfy: its declaration, matching patterns, or the rest."""
    parts: list[Schema] = []
    if key in (schema.get("properties") or {}):
        parts.append(schema["properties"][key])
    for pattern, part in (schema.get("patternProperties") or {}).items():
        try:
            if re.search(pattern, key):
                parts.append(part)
        except re.error:          # a broken pattern: the validator will not accept the value anyway
            continue
    if not parts:
        parts.append(schema.get("additionalProperties", True))
    return parts[0] if len(parts) == 1 else {"allOf": parts}


def _anchor(schema: Any, name: str) -> Schema:
    if isinstance(schema, dict):
        if schema.get("$anchor") == name:
            return schema
        children: Iterable[Any] = schema.values()
    elif isinstance(schema, list):
        children = schema
    else:
        raise _Unsatisfiable
    for child in children:
        try:
            return _anchor(child, name)
        except _Unsatisfiable:
            continue
    raise _Unsatisfiable


# -- merging schemas (allOf, $ref siblings, a branch with its parent) ----------------------------

LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains")
UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains")
BOTH_APPLY = ("items", "additionalProperties", "contains", "propertyNames", "unevaluatedItems",
              "unevaluatedProperties")
NOT_MERGED = ("$id", "$schema", "$anchor", "$defs", "definitions", "$comment")


def _conjoin(*schemas: Schema) -> Schema:
    """One schema a value must satisfy to satisfy all of `schemas` (approximately: see module doc)."""
    merged: dict[str, Any] = {}
    for schema in schemas:
        if schema is False:
            return False
        if schema is True:
            continue
        for keyword, value in schema.items():
            if keyword in NOT_MERGED:
                continue
            if keyword == "$ref" and "$ref" in merged:     # two references: flatten() follows both
                merged["allOf"] = [*merged.get("allOf", []), {"$ref": value}]
                continue
            merged[keyword] = value if keyword not in merged else _merge(keyword, merged[keyword], value)
    return merged


def _merge(keyword: str, first: Any, second: Any) -> Any:
    if first == second:
        return first
    if keyword == "type":
        return _common_types(first, second)
    if keyword == "allOf":
        return [*first, *second]
    if keyword == "required":
        return list(dict.fromkeys([*first, *second]))
    if keyword in ("properties", "patternProperties", "dependentSchemas"):
        return {key: {"allOf": [first[key], second[key]]} if key in first and key in second
                else first.get(key, second.get(key)) for key in {**first, **second}}
    if keyword == "prefixItems":
        longer, shorter = (first, second) if len(first) >= len(second) else (second, first)
        return [{"allOf": [item, shorter[i]]} if i < len(shorter) else item for i, item in enumerate(longer)]
    if keyword in BOTH_APPLY:
        return {"allOf": [first, second]}
    if keyword == "not":
        return {"anyOf": [first, second]}
    if keyword in ("anyOf", "oneOf"):       # (a1|a2) and (b1|b2): every pairing
        return [{"allOf": [a, b]} for a in first for b in second]
    if keyword == "enum":
        return [value for value in first if any(_same(value, other) for other in second)]
    if keyword in LOWER_BOUNDS:
        return max(first, second)
    if keyword in UPPER_BOUNDS:
        return min(first, second)
    if keyword == "uniqueItems":
        return first or second
    return first                            # pattern, format, if/then/else: the validator decides


def _common_types(first: str | list[str], second: str | list[str]) -> list[str]:
    firsts = [first] if isinstance(first, str) else first
    seconds = [second] if isinstance(second, str) else second

    def allows(kinds: list[str], kind: str) -> bool:
        return kind in kinds or (kind == "integer" and "number" in kinds)

    return [kind for kind in dict.fromkeys([*firsts, *seconds]) if allows(firsts, kind) and allows(seconds, kind)]


def _same(first: Any, second: Any) -> bool:
    """JSON equality: 1 and true differ, 1 and 1.0 do not."""
    return _key(first) == _key(second) or (
        type(first) in (int, float) and type(second) in (int, float) and first == second)
