"""Tool-call arguments obey the tool's JSON Schema (upstream's walle / MFJS suite, §1.2).

Each case schema becomes the `parameters` of one strict function tool; the model must call it,
and the arguments must parse as JSON and validate. Broken guided decoding, argument parsers and
stream reassembly all show up here as invalid or unparseable arguments. The verdict is an
accuracy against the profile's minimum, per stream mode, with one exception: arguments whose
non-ASCII property names (CJK, emoji, accents) came back clamped to ASCII fail the check
outright, since a grammar that clamps names does it every time, not as noise (kvv issue 10).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from ..errors import ConfigError
from ..exchange import Exchange
from ..sequential import BettingTest
from ..stats import threshold_verdict
from ..verdict import ERROR, FAIL, INCONCLUSIVE, PASS, SEVERITY
from .base import Check, Context, Item, Outcome, Send, Summary, rejection, unusable
from .cases import STREAM_MODES, load_jsonl
from .toolcalls import INVALID, arguments_problem, function_of

TOOL = "kvv_schema_case"
PROMPT = (f"Call the function {TOOL} exactly once. Its arguments must be the smallest JSON object that "
          "satisfies the function's parameter schema: respect every constraint (required properties, types, "
          "enum and const values, minimum and maximum, lengths, patterns, formats, item counts). "
          "Reply with the function call only, no text.")
MODES = tuple(STREAM_MODES)
SHOWN_FAILURES = 5
BUILTIN = "tool-schema-cases.jsonl"

# Where a schema holds subschemas (2020-12 plus draft-7 spellings). Any other keyword's value is
# data (enum, const, examples, required, ...) and is left alone, so a property named "default"
# or "$ref" is never mistaken for the keyword.
ONE_SCHEMA = {"additionalProperties", "items", "contains", "not", "if", "then", "else", "propertyNames",
              "unevaluatedItems", "unevaluatedProperties", "additionalItems", "contentSchema"}
SCHEMA_LIST = {"allOf", "anyOf", "oneOf", "prefixItems", "items"}
SCHEMA_MAP = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
HOISTED = ("$defs", "definitions")
# Keywords that only mean something at a document root: a wrapped case is not one, and its `$id`
# would re-base the rewritten `$ref`s onto a resource that no longer holds the definitions.
ROOT_ONLY = {"$id", "$schema", *HOISTED}


# --- the case file --------------------------------------------------------------------------

def load_cases(path: str | None) -> list[tuple[int, Any]]:
    """(line number, schema) for every non-blank line; a bad line is the user's error (exit 2)."""
    return _load(path)[1]


def _load(path: str | None) -> tuple[str, list[tuple[int, Any]]]:
    return load_jsonl(path, BUILTIN, (dict, bool), "a JSON Schema (an object or a boolean)")


# --- sending a case as upstream does ----------------------------------------------------------

def wrap(case: dict[str, Any] | bool) -> dict[str, Any]:
    """The tool's `parameters`: `{"value": case}`, required, nothing else allowed.

    Definitions move to the wrapper's root under the same keyword, so `#/$defs/...` and
    `#/definitions/...` keep their meaning; other pointers into the case gain the
    `/properties/value` prefix; `$ref: "#"` (the case itself) points at a copy of the case in
    `$defs`. Every `default` keyword goes: decoders stumble on them (upstream saw kimi-k2.5 omit
    required properties).
    """
    if isinstance(case, bool):
        return _wrapper(case)
    defs = {k: case[k] for k in HOISTED if isinstance(case.get(k), dict)}
    root_name = "kvv_case_root"
    while root_name in defs.get("$defs", {}):
        root_name += "_"
    self_referenced = False

    def ref(target: str) -> str:
        nonlocal self_referenced
        if target == "#":
            self_referenced = True
            return f"#/$defs/{root_name}"
        if target.startswith("#/") and not target.startswith(tuple(f"#/{k}/" for k in HOISTED)):
            return "#/properties/value" + target[1:]
        return target                          # hoisted definitions, anchors, other documents

    value = _rewrite({k: v for k, v in case.items() if k not in ROOT_ONLY}, ref)
    wrapper = _wrapper(value)
    for keyword, definitions in defs.items():
        wrapper[keyword] = {name: _rewrite(schema, ref) for name, schema in definitions.items()}
    if self_referenced:
        wrapper.setdefault("$defs", {})[root_name] = value
    return wrapper


def _wrapper(value: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"value": value}, "required": ["value"], "additionalProperties": False}


def _rewrite(schema: Any, ref) -> Any:
    """A copy of `schema` without `default` keywords and with every `$ref` passed through `ref`."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "default":
            continue
        if key == "$ref" and isinstance(value, str):
            out[key] = ref(value)
        elif key in SCHEMA_MAP and isinstance(value, dict):
            out[key] = {name: _rewrite(sub, ref) for name, sub in value.items()}
        elif key in SCHEMA_LIST and isinstance(value, list):
            out[key] = [_rewrite(sub, ref) for sub in value]
        elif key in ONE_SCHEMA:
            out[key] = _rewrite(value, ref)
        else:
            out[key] = value
    return out


def request(ctx: Context, parameters: dict[str, Any], mode: str) -> dict[str, Any]:
    """The request of one case in stream mode `mode` (a key of STREAM_MODES)."""
    tool = {"type": "function", "function": {"name": TOOL, "description": "Receives one test value.",
                                             "parameters": parameters, "strict": True}}
    return ctx.body(ctx.profile.default_mode, PROMPT, tools=[tool], tool_choice="required",
                    max_tokens=ctx.options.get("max-tokens", 2048), **STREAM_MODES[mode])


# --- judging one response -------------------------------------------------------------------

def classify(ex: Exchange, validator: Draft202012Validator, mode: str, line: int) -> Outcome:
    """The outcome of one case; `data["class"]` says which way it went."""
    def outcome(verdict: str, kind: str, message: str, **extra: Any) -> Outcome:
        return Outcome(verdict, message, ex, {"class": kind, "mode": mode, "line": line, **extra})

    problem = unusable(ex)
    if problem is not None:
        # Transient failures left after retries: kvv could not run the case. A broken stream
        # or malformed body is the vendor's defect.
        return outcome(problem.verdict, "error" if problem.verdict == ERROR else "bad-response", problem.message)
    if (rejected := rejection(ex)) is not None:
        return outcome(FAIL, "rejected", rejected)
    calls = ex.message.tool_calls if ex.message else []
    if len(calls) != 1:
        said = f"{len(calls)} tool calls" if calls else "no tool call"
        return outcome(FAIL, "no-tool-call", f"{said} (finish_reason {ex.finish_reason!r}); expected exactly one "
                                             "call, tool_choice was \"required\"")
    function = function_of(calls[0])
    if function.get("name") != TOOL:
        return outcome(FAIL, "wrong-tool-name", f"called {function.get('name')!r}; the only tool is {TOOL!r}")
    invalid = arguments_problem(function.get("arguments"), validator)
    if invalid is not None:
        kind, message, path = invalid
        clamp = _clamped_name(json.loads(function["arguments"]), validator.schema) if kind == INVALID else None
        if clamp is not None:
            kind, message = CLAMPED, f"property name {clamp[0]!r} came back clamped to ASCII as {clamp[1]!r}; {message}"
        return outcome(FAIL, kind, message, **({"path": path} if path else {}))
    return outcome(PASS, "valid", "arguments are valid")


CLAMPED = "ascii-property-names"


def _clamped_name(value: Any, schema: Any) -> tuple[str, str] | None:
    """(declared name, name sent) where an object in `value` lacks a non-ASCII property its schema
    declares and carries an undeclared ASCII-only key instead: the names clamped to ASCII. Follows
    `properties` and `items` only (kvv's non-ASCII cases need no more)."""
    if not isinstance(schema, dict):
        return None
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return next(filter(None, (_clamped_name(item, schema["items"]) for item in value)), None)
    properties = schema.get("properties")
    if not isinstance(value, dict) or not isinstance(properties, dict):
        return None
    missing = [name for name in properties if not name.isascii() and name not in value]
    extra = [key for key in value if key not in properties and key.isascii()]
    if missing and extra:
        return missing[0], extra[0]
    return next(filter(None, (_clamped_name(value[name], sub) for name, sub in properties.items() if name in value)),
                None)


# --- the check ------------------------------------------------------------------------------

def _build(ctx: Context) -> list[Item]:
    if not ctx.profile.feature("tools"):
        return []
    source, cases = _load(ctx.options.get("cases"))
    items = []
    for line, case in cases:
        parameters = wrap(case)
        try:
            Draft202012Validator.check_schema(parameters)
        except SchemaError as exc:
            raise ConfigError(f"not a valid JSON Schema: {exc.message}", source=source, path=f"line {line}") from None
        # Format assertions stay off, as upstream: formats are annotations in 2020-12.
        validator = Draft202012Validator(parameters)
        for mode in MODES:
            body = request(ctx, parameters, mode)
            items.append(Item(f"case {line} [{mode}]", [body], mode=ctx.profile.default_mode,
                              token_ceiling=body["max_tokens"], run=_runner(body, validator, mode, line),
                              request_count=1, line=line))
    return items


def _runner(body: dict[str, Any], validator: Draft202012Validator, mode: str, line: int):
    async def run(send: Send) -> Outcome:
        return classify(await send(body), validator, mode, line)
    return run


def _summarize(items: list[dict[str, Any]], ctx: Context) -> Summary:
    """Accuracy per stream mode; the check is as bad as its worse mode."""
    minimum = ctx.profile.threshold("tool-schema-accuracy", 0.95)
    judged = {mode: _judge_mode([i for i in items if i["id"].endswith(f"[{mode}]")], minimum) for mode in MODES}
    worse = max(MODES, key=lambda m: (SEVERITY.index(judged[m][0]), -judged[m][1]["lower"]))
    verdict, metric, _ = judged[worse]
    details = {"minimum": minimum, "worse_mode": worse, **{m: judged[m][2] for m in MODES}}
    early = _early_failure(items, minimum)
    message = None
    clamped = [_failure(i) for i in items if _data(i).get("class") == CLAMPED]
    if clamped and verdict != ERROR:
        verdict, details["ascii_property_names"] = FAIL, clamped[:SHOWN_FAILURES]
        message = (f"FAIL: {len(clamped)} case(s) came back with non-ASCII property names clamped to ASCII "
                   f"(line {clamped[0]['line']}: {clamped[0]['message'][:160]}); a clamp is systematic, "
                   "whatever the accuracy")
    if early is not None:
        # The sequential test is valid however early it decided; the Wilson bounds shown are
        # those of the cases that ran.
        verdict, details["sequential_failure"] = FAIL, early
        message = (f"FAIL after {len(items)} of the cases: {early} schema accuracy shown below {minimum:g} by "
                   f"a sequential test (α = {EARLY_ALPHA:g}), so the rest were not sent")
    return Summary(verdict, {"name": "schema_accuracy", **metric}, details, message)


EARLY_ALPHA = 0.01     # the sequential test that lets a clearly broken vendor fail early


def _early_failure(items: list[dict[str, Any]], minimum: float) -> str | None:
    """The stream mode whose schema accuracy an anytime-valid betting test (kvv.sequential)
    already shows below the minimum, or None. Errors count for the vendor (they blur, never fake)."""
    for mode in MODES:
        test = BettingTest(minimum, alpha=EARLY_ALPHA)
        for item in items:
            if item["id"].endswith(f"[{mode}]"):
                test.update(None if item["verdict"] == ERROR else 1.0 if item["verdict"] == PASS else 0.0)
        if test.verdict == FAIL:
            return mode
    return None


def _settled(items: list[dict[str, Any]], ctx: Context) -> bool:
    return _early_failure(items, ctx.profile.threshold("tool-schema-accuracy", 0.95)) is not None


def _judge_mode(items: list[dict[str, Any]], minimum: float) -> tuple[str, dict[str, Any], dict[str, Any]]:
    count = Counter(i["verdict"] for i in items)
    verdict, metric = threshold_verdict(count[PASS], count[FAIL], count[ERROR], minimum)
    if verdict == INCONCLUSIVE and count[ERROR]:
        verdict = ERROR                          # undecided because kvv could not run enough cases
    details = {"accuracy": metric["value"], "lower": metric["lower"], "upper": metric["upper"],
               "verdict": verdict, "n": len(items),
               "classes": dict(Counter(_data(i).get("class", "error") for i in items)),
               "failures": [_failure(i) for i in items if i["verdict"] != PASS][:SHOWN_FAILURES]}
    return verdict, metric, details


def _data(item: dict[str, Any]) -> dict[str, Any]:
    return item.get("data") or {}     # none when kvv itself broke on the item


def _failure(item: dict[str, Any]) -> dict[str, Any]:
    data = _data(item)
    entry = {"line": data.get("line"), "class": data.get("class", "error"), "message": item["message"]}
    if "path" in data:
        entry["path"] = data["path"]
    return entry


CHECKS = [
    Check("tool-schema", "tool-call arguments obey the tool's JSON Schema",
          "tool calls whose arguments break the schema: missing or weak guided decoding, argument parsers "
          "or stream reassembly that corrupt JSON",
          ("tools",), _build, {"cases": None, "max-tokens": 2048}, _summarize, settled=_settled),
]
