"""Minimal and invalid instances of JSON Schemas (the simulated model's tool arguments)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from kvv.simulator.instances import invalid_instance, minimal_instance
from kvv.simulator.patterns import matching_string

from conftest import UPSTREAM_DATA

UPSTREAM_CASES = UPSTREAM_DATA / "tool-schema-cases.jsonl"
KVV_CASES = Path(__file__).resolve().parents[1] / "kvv" / "data" / "tool-schema-cases.jsonl"


def assert_valid(schema: Any, value: Any) -> None:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [error.message for error in validator.iter_errors(value)]
    assert not errors, (value, errors)


# One or more schemas per keyword family; each must yield a valid instance.
KEYWORD_FAMILIES = {
    "types": [{"type": t} for t in ("string", "number", "integer", "boolean", "null", "object", "array")],
    "unions with null": [{"type": ["string", "null"]}, {"type": ["null", "integer"], "minimum": 3},
                         {"anyOf": [{"type": "null"}, {"type": "array", "minItems": 1}]}],
    "enum and const": [{"enum": ["red", "green"]}, {"type": "string", "enum": ["", " ", "\n"]},
                       {"enum": [[1, 2], {"a": 1}, False]}, {"const": {"kind": "point", "xy": [1, 2]}},
                       {"type": ["string", "null"], "enum": ["value", None]},
                       {"type": "integer", "not": {"enum": [0, 1]}}],
    "numbers": [{"type": "integer", "minimum": 10, "maximum": 10}, {"type": "number", "exclusiveMinimum": 0,
                "exclusiveMaximum": 1}, {"type": "integer", "multipleOf": 7, "minimum": 1},
                {"type": "integer", "multipleOf": 3, "exclusiveMinimum": 10, "exclusiveMaximum": 14},
                {"type": "number", "multipleOf": 0.25, "minimum": 0.3},
                {"type": "integer", "multipleOf": 2.5, "minimum": 1},
                {"type": "number", "minimum": -10.5, "maximum": -3.2}, {"type": "integer", "maximum": -5}],
    "strings": [{"type": "string", "minLength": 5, "maxLength": 5}, {"type": "string", "maxLength": 0},
                {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"},
                {"type": "string", "pattern": "^(foo|bar)+$", "minLength": 7},
                {"type": "string", "pattern": "^[^aeiou]+$", "minLength": 2},
                {"type": "string", "not": {"maxLength": 5}}],
    "formats": [{"type": "string", "format": f} for f in
                ("date", "date-time", "time", "email", "uuid", "ipv4", "ipv6", "uri", "hostname")],
    "arrays": [{"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "string"}},
               {"type": "array", "uniqueItems": True, "minItems": 3, "items": {"enum": ["x", "y", "z"]}},
               {"type": "array", "uniqueItems": True, "minItems": 4, "items": {"type": "integer", "minimum": 0}},
               {"type": "array", "prefixItems": [{"const": "header"}, {"type": "number"}], "items": False,
                "minItems": 2},
               {"type": "array", "contains": {"type": "integer", "minimum": 5}, "minContains": 2},
               {"type": "array", "items": {"type": "array", "items": {"enum": [1, 2]}, "minItems": 1}, "minItems": 1}],
    "objects": [{"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["b"],
                 "additionalProperties": False},
                {"type": "object", "minProperties": 2, "maxProperties": 2},
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
                 "dependentRequired": {"a": ["b"]}},
                {"type": "object", "propertyNames": {"pattern": "^x_"}, "minProperties": 2},
                {"type": "object", "patternProperties": {"^n_": {"type": "integer", "minimum": 3}}, "required": ["n_1"],
                 "additionalProperties": False},
                {"type": "object", "properties": {"first name": {"type": "string"}, "鬒": {"type": "string"},
                                                  " ": {"type": "number"}}, "required": ["first name", "鬒", " "]}],
    "combinators": [{"anyOf": [{"type": "string", "minLength": 2}, {"type": "number"}]},
                    {"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]},
                    {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]},
                    {"allOf": [{"type": "number", "minimum": 3}, {"type": "integer", "maximum": 5}, {"multipleOf": 2}]},
                    {"allOf": [{"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
                               {"properties": {"rev": {"type": "integer", "minimum": 1}}, "required": ["rev"]}]},
                    {"type": "object", "properties": {"x": {"not": {"type": ["null", "object"]}}}, "required": ["x"]},
                    {"type": "object", "if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["b"]},
                     "properties": {"a": {"type": "integer", "minimum": 1}}, "required": ["a"]}],
    "references": [{"$defs": {"p": {"type": "integer", "minimum": 4}}, "$ref": "#/$defs/p"},
                   {"definitions": {"c": {"enum": ["red", "blue"]}}, "type": "array",
                    "items": {"$ref": "#/definitions/c"}, "minItems": 1},
                   {"$defs": {"a": {"$anchor": "pt", "type": "string", "minLength": 2}}, "$ref": "#pt"},
                   {"$defs": {"node": {"type": "object", "properties": {"value": {"type": "number"},
                                                                          "next": {"anyOf": [{"$ref": "#/$defs/node"},
                                                                                             {"type": "null"}]}},
                                       "required": ["value", "next"]}}, "$ref": "#/$defs/node"},
                   {"type": "object", "properties": {"child": {"$ref": "#"}, "name": {"type": "string"}},
                    "required": ["name"]},
                   {"$defs": {"a": {"type": "object", "properties": {"b": {"$ref": "#/$defs/b"}}, "required": ["b"]},
                              "b": {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}}},
                    "$ref": "#/$defs/a"},
                   {"type": "object", "properties": {"home": {"type": "object", "required": ["city"]},
                                                     "work": {"$ref": "#/properties/home"}}, "required": ["work"]},
                   {"$defs": {"tree": {"type": "object", "properties": {"kids": {"type": "array", "minItems": 1,
                                                                                 "items": {"$ref": "#/$defs/tree"}}}}},
                    "type": "object", "properties": {"root": {"$ref": "#/$defs/tree"}}, "required": ["root"]}],
    "empty": [{}, True, {"description": "anything at all"}],
}


@pytest.mark.parametrize("schema", [pytest.param(schema, id=f"{family}-{i}")
                                    for family, schemas in KEYWORD_FAMILIES.items()
                                    for i, schema in enumerate(schemas)])
def test_minimal_instance_is_valid_for_every_keyword_family(schema):
    assert_valid(schema, minimal_instance(schema))


def test_minimal_instances_are_minimal():
    assert minimal_instance({"type": "object", "properties": {"a": {"type": "string"}}}) == {}
    assert minimal_instance({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                             "required": ["a", "b"]}) == {"a": "", "b": 0}
    assert minimal_instance({"type": "array", "items": {"type": "string"}}) == []
    assert minimal_instance({"type": "integer", "minimum": 3}) == 3
    assert minimal_instance({"type": "string", "minLength": 3}) == "aaa"
    assert minimal_instance({"type": "string", "format": "date"}) == "2024-01-01"
    # Recursion stops as soon as it can: the shallowest valid linked list.
    linked = KEYWORD_FAMILIES["references"][3]
    assert minimal_instance(linked) == {"value": 0, "next": None}


@pytest.mark.parametrize("schema", [False, {"not": {}}, {"type": "integer", "minimum": 2, "maximum": 1},
                                    {"allOf": [{"const": 1}, {"const": 2}]}, {"type": "string", "minLength": 10**12},
                                    {"type": "array", "uniqueItems": True, "minItems": 3, "items": {"type": "boolean"}},
                                    {"type": "object", "required": ["a"], "additionalProperties": False},
                                    {"$ref": "#/$defs/missing"},
                                    {"$defs": {"x": {"type": "object", "properties": {"next": {"$ref": "#/$defs/x"}},
                                                     "required": ["next"]}}, "$ref": "#/$defs/x"}])
def test_unsatisfiable_schemas_raise(schema):
    with pytest.raises(ValueError, match="^unsatisfiable"):
        minimal_instance(schema)


@pytest.mark.parametrize("schema", [pytest.param(schema, id=f"{family}-{i}")
                                    for family, schemas in KEYWORD_FAMILIES.items() if family != "empty"
                                    for i, schema in enumerate(schemas)])
def test_invalid_instance_violates_the_schema(schema):
    value = invalid_instance(schema)
    json.dumps(value)                                     # plain JSON
    assert not Draft202012Validator(schema).is_valid(value)


def test_invalid_instance_of_an_object_schema_stays_an_object():
    schema = {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
              "required": ["a", "b"]}
    assert invalid_instance(schema) == {"b": 0}          # the first required property left out


@pytest.mark.parametrize("schema", [{}, True, {"description": "anything"}])
def test_invalid_instance_of_a_schema_that_takes_anything_raises(schema):
    with pytest.raises(ValueError):
        invalid_instance(schema)


@pytest.mark.parametrize("pattern, min_length", [
    ("^[a-z]+$", 0), ("^[a-z]+$", 6), (r"^\d{3}-\d{4}$", 0), ("^(ab|c)+x?$", 5), ("[^abc]", 0),
    (r"^(?!x)\w+@\w+\.com$", 0), (r"^([A-Z])\1$", 0), (r"^\S+\s\S+$", 0), ("^a{2,}?b*$", 4), ("colou?r", 0),
])
def test_matching_string(pattern, min_length):
    text = matching_string(pattern, min_length)
    assert re.search(pattern, text)
    assert len(text) >= min_length


# -- case corpora: upstream's (wrapped as upstream sends them) and kvv's own ----------------------

def strip_defaults(schema: Any, in_properties: bool = False) -> Any:
    """Every `default` keyword removed (a property named "default" stays)."""
    if isinstance(schema, dict):
        return {key: strip_defaults(value, key in ("properties", "patternProperties") and not in_properties)
                for key, value in schema.items() if in_properties or key != "default"}
    if isinstance(schema, list):
        return [strip_defaults(item) for item in schema]
    return schema


def references(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        return [*([schema["$ref"]] if "$ref" in schema else []), *(r for v in schema.values() for r in references(v))]
    if isinstance(schema, list):
        return [r for item in schema for r in references(item)]
    return []


def rewrite_root_references(schema: Any, target: str) -> Any:
    if isinstance(schema, dict):
        return {key: target if key == "$ref" and value == "#" else rewrite_root_references(value, target)
                for key, value in schema.items()}
    if isinstance(schema, list):
        return [rewrite_root_references(item, target) for item in schema]
    return schema


def upstream_wrapped(schema: dict[str, Any]) -> dict[str, Any]:
    """As upstream's validator.py sends a case: the single required property `value`."""
    wrapped: dict[str, Any] = {"type": "object", "required": ["value"], "additionalProperties": False}
    if "#" in references(schema):
        target = "#/$defs/__case_schema"
        rewritten = rewrite_root_references(schema, target)
        wrapped["$defs"] = {**rewritten.get("$defs", {}),
                            "__case_schema": {k: v for k, v in rewritten.items() if k not in ("$defs", "$id")}}
        wrapped["properties"] = {"value": {"$ref": target}}
    else:
        wrapped["properties"] = {"value": {k: v for k, v in schema.items() if k not in ("$defs", "$id")}}
        if "$defs" in schema:
            wrapped["$defs"] = schema["$defs"]
    if "$id" in schema:
        wrapped["$id"] = schema["$id"]
    return strip_defaults(wrapped)


def satisfied(schemas: list[Any]) -> tuple[int, list[int]]:
    """How many schemas get a valid minimal instance, and the 1-based lines of the others."""
    missed = []
    for line, schema in enumerate(schemas, 1):
        try:
            value = minimal_instance(schema)
        except ValueError:
            missed.append(line)
            continue
        if not Draft202012Validator(schema).is_valid(value):
            missed.append(line)
    return len(schemas) - len(missed), missed


def test_upstream_cases_are_satisfied():
    cases = [json.loads(line) for line in UPSTREAM_CASES.read_text(encoding="utf-8").splitlines()]
    schemas = [upstream_wrapped(case) for case in cases]
    assert len(schemas) == 212
    count, missed = satisfied(schemas)
    # The one miss is minLength 999999999999: no model writes that string either.
    assert (count, [cases[m - 1] for m in missed]) == (
        211, [{"minLength": 999999999999, "type": "string"}])
    assert all(not Draft202012Validator(s).is_valid(invalid_instance(s)) for s in schemas)


def test_kvv_cases_are_all_satisfied():
    schemas = [strip_defaults(json.loads(line)) for line in KVV_CASES.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    count, missed = satisfied(schemas)
    assert missed == [] and count == len(schemas)
