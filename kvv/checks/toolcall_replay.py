"""K2VV's ToolCall replay: does the vendor call tools when the official model does, validly?

Recorded requests (one complete body per line) are replayed and each answer's finish_reason is
joined by data_index with a reference: a results file, or a live official endpoint
(`--reference-base-url`), which then gets the very same prepared request. Two failure axes,
as upstream's tables show: trigger drift (F1 of "ended in tool_calls" against the reference;
wrong template or sampling) and schema validity (share of tool-call answers whose every call
names a declared tool with arguments that validate; no guided decoding or a broken parser).
Upstream computes no F1 in code and no bounds at all; kvv gives both bounds and a verdict.

Options (checks.toolcall-replay.*): `requests` and `reference`, JSONL files (default: kvv's
built-in pair, whose reference is its simulator's answers and so holds only there, see
kvv.references; elsewhere the check is not applicable without a reference file or a live
reference; a requests file needs its own reference, or a live one); `temperature` and
`max-tokens` override every request's recorded value (the default 0 keeps it; write
temperature as a float, e.g. 0.6).

Answers kvv could not get (timeouts, 429/5xx after retries, a failing live reference) never
count as agreement or disagreement: F1's lower bound assumes they all went against the vendor,
its upper bound that they all went for it, and schema accuracy counts them like
threshold_verdict counts errors, so they make a verdict inconclusive instead of faking one.
A vendor's broken stream or rejected request is its own defect: a non-tool answer ("others").
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from typing import Any, Callable, Sequence

import jsonschema

from .. import references
from ..errors import ConfigError
from ..exchange import Exchange
from ..sequential import BettingTest
from ..stats import bootstrap, threshold_verdict
from ..verdict import ERROR, FAIL, INCONCLUSIVE, PASS, worst
from .base import Check, Context, Item, Outcome, Send, Summary, answer_problem, unusable
from .cases import load_jsonl
from .toolcalls import call_problem

CHECK = "toolcall-replay"
# kvv's own pair, the loaders' defaults; the reference holds only on its simulator (kvv.references).
BUILTIN_REQUESTS = "toolcall-replay/requests.jsonl"
BUILTIN_REFERENCE = "toolcall-replay/reference.jsonl"
ROLES = ("system", "user", "assistant", "tool", "_input")   # `_input` is K2VV's name for system
TOOL_CALLS = "tool_calls"
Row = tuple[bool | None, bool | None]     # (vendor ended in tool_calls, reference did); None: unknown


# -- input files ----------------------------------------------------------------------------------

def load_requests(path: str | None, builtin: str = BUILTIN_REQUESTS) -> list[tuple[int, dict[str, Any]]]:
    """[(data_index, recorded body)] of `path` (None: kvv/data/`builtin`): K2VV's data_index is
    the 1-based line number."""
    source, lines = load_jsonl(path, builtin)
    for position, (number, body) in enumerate(lines, 1):
        if number != position:      # data_index 1..n must name every request
            raise ConfigError("blank line: data_index is the line number, so requests leave none out",
                              source=source, path=f"line {position}")
        def bad(field: str, expected: str, number: int = number) -> ConfigError:
            return ConfigError(f"expected {expected}", source=source, path=f"line {number}: {field}")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad("messages", "a non-empty array of messages")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                raise bad(f"messages[{i}].role", f"one of {', '.join(ROLES)}")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise bad("stream", "true or false")
        for field, tools in _tool_lists(body):
            if not isinstance(tools, list):
                raise bad(field, "an array of tools")
            for j, tool in enumerate(tools):
                function = tool.get("function") if isinstance(tool, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    raise bad(f"{field}[{j}].function.name", "a tool {type, function: {name, parameters}}")
                try:
                    jsonschema.Draft202012Validator.check_schema(function.get("parameters", {}))
                except jsonschema.SchemaError as exc:
                    raise bad(f"{field}[{j}].function.parameters", f"a JSON Schema ({exc.message})") from None
    if not lines:
        raise ConfigError("no requests", source=source)
    return lines


def load_reference(path: str | None, requests: int, builtin: str = BUILTIN_REFERENCE) -> dict[int, str]:
    """data_index -> the reference's finish_reason, for every request and nothing else, from
    `path` (None: kvv/data/`builtin`)."""
    source, lines = load_jsonl(path, builtin)
    finishes: dict[int, str] = {}
    for number, record in lines:
        index, finish = record.get("data_index"), record.get("finish_reason")
        if not isinstance(index, int) or isinstance(index, bool) or not 1 <= index <= requests:
            raise ConfigError(f"data_index {index!r} matches no request (expected 1..{requests}, the line "
                              f"number in the requests file)", source=source, path=f"line {number}: data_index")
        if index in finishes:
            raise ConfigError(f"data_index {index} appears twice", source=source, path=f"line {number}: data_index")
        if not isinstance(finish, str):
            raise ConfigError(f"expected a string, got {finish!r}", source=source, path=f"line {number}: finish_reason")
        finishes[index] = finish
    missing = sorted(set(range(1, requests + 1)) - set(finishes))
    if missing:
        raise ConfigError(f"no record for data_index {', '.join(map(str, missing[:10]))}"
                          f"{' …' if len(missing) > 10 else ''}", source=source)
    return finishes


def _tool_lists(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """Global tools and dynamic tools (in system messages), with where they sit."""
    found = [("tools", body["tools"])] if "tools" in body else []
    return found + [(f"messages[{i}].tools", m["tools"]) for i, m in enumerate(body["messages"]) if "tools" in m]


def declared_tools(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {tool["function"]["name"]: tool["function"].get("parameters", {})
            for _, tools in _tool_lists(body) for tool in tools}


def prepare(recorded: dict[str, Any], model: str, temperature: float = 0.0, max_tokens: int = 0) -> dict[str, Any]:
    """The body kvv sends: our model, `_input` as system, overrides (0 keeps the recorded value),
    and usage asked for in streams. Everything else goes as recorded."""
    body = copy.deepcopy(recorded)
    body["model"] = model
    body["messages"] = [{**m, "role": "system"} if m["role"] == "_input" else m for m in body["messages"]]
    if temperature:
        body["temperature"] = temperature
    if max_tokens:
        body["max_tokens"] = max_tokens
    if body.get("stream") is True:
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return body


# -- the reference --------------------------------------------------------------------------------

def chosen(ctx: Context) -> tuple[list[tuple[int, dict[str, Any]]], dict[int, str] | None, dict[str, Any]]:
    """(the requests, each one's reference finish_reason by data_index or None for a live
    reference, the reference as results name it).

    A live reference or the user's reference file always applies; otherwise kvv's built-in
    pair where it holds (kvv.references), or none: then the check is not applicable.
    """
    requests_file, reference_file = ctx.options["requests"], ctx.options["reference"]
    if requests_file is not None and reference_file is None and not ctx.reference:
        raise ConfigError("a requests file needs its reference: set checks.toolcall-replay.reference, or "
                          "--reference-base-url to collect it live", source=requests_file)
    if ctx.reference:
        return load_requests(requests_file), None, references.LIVE
    if reference_file is not None:
        recorded = load_requests(requests_file)
        return (recorded, load_reference(reference_file, len(recorded)),
                references.supplied(reference_file, f"checks.{CHECK}.reference"))
    builtin = references.for_target(CHECK, ctx)
    if builtin is None:
        raise references.none_holds(CHECK, ctx, f"{CHECK} reference",
                                    f"set checks.{CHECK}.requests+reference (K2VV results of the official model), "
                                    "or --reference-base-url to collect the reference live")
    recorded = load_requests(None, builtin.requests or BUILTIN_REQUESTS)
    return recorded, load_reference(None, len(recorded), builtin.file), builtin.describe()


# -- items ----------------------------------------------------------------------------------------

def _build(ctx: Context) -> list[Item]:
    if not ctx.profile.feature("tools"):
        return []
    recorded, reference, _ = chosen(ctx)
    items = []
    for index, raw in recorded:
        body = prepare(raw, ctx.model, ctx.options["temperature"], ctx.options["max-tokens"])
        # The digest hashes `requests` and `expects`, so it covers every prepared field and the
        # reference answer; the live reference gets the same body (a paired item sends it twice,
        # and resumes only into a paired run).
        requests = [body, body] if ctx.reference else [body]
        expected = None if reference is None else reference[index]
        cap = body.get("max_tokens")
        items.append(Item(f"request {index} [{'stream' if body.get('stream') else 'non-stream'}]", requests,
                          token_ceiling=cap * len(requests) if isinstance(cap, int) else None,
                          run=_replay(index, body, expected), expects="live" if expected is None else expected,
                          line=index))
    return items


def _replay(index: int, body: dict[str, Any], recorded_reference: str | None):
    """The item's run; without a recorded reference finish_reason it asks the live reference."""
    tools = declared_tools(body)

    async def run(send: Send) -> Outcome:
        data: dict[str, Any] = {"data_index": index}
        if recorded_reference is None:
            ex, reference_ex = await asyncio.gather(send(body), send(body, reference=True))
            expected, reference_trouble = _reference_finish(reference_ex)
            if expected is not None:
                data["reference_finish_reason"] = expected
        else:
            ex, reference_ex = await send(body), None
            expected, reference_trouble = recorded_reference, None
        trouble = unusable(ex)
        if trouble is not None and trouble.verdict == ERROR:      # the vendor's answer is unknown
            return Outcome(ERROR, trouble.message, ex, data)
        unanswered = answer_problem(ex)     # set too for any `trouble`: rejected, broken, or no choices
        finish = ex.finish_reason if unanswered is None else None
        calls = ex.reply.tool_calls if unanswered is None else []
        problems = [p for p in (call_problem(c, tools) for c in calls) if p] if finish == TOOL_CALLS else []
        if finish == TOOL_CALLS and not calls:
            problems = ["finish_reason 'tool_calls' without any tool call"]
        valid = not problems if finish == TOOL_CALLS else None
        data.update(finish_reason=finish, tool_calls=len(calls), valid=valid)
        if unanswered is not None:          # refused, broken or empty: counted against the vendor
            data["unusable"] = True
        if reference_trouble is not None:
            return Outcome(ERROR, f"reference endpoint: {reference_trouble}", reference_ex, data)
        if trouble is not None:             # a broken stream or body: the vendor's defect, a non-tool answer
            return Outcome(FAIL, trouble.message, ex, data)
        if unanswered is not None:          # a non-tool answer, like a broken stream
            return Outcome(FAIL, f"recorded request not answered: {unanswered}", ex, data)
        if problems:
            return Outcome(FAIL, f"invalid tool call: {problems[0]}", ex, data)
        if (finish == TOOL_CALLS) != (expected == TOOL_CALLS):
            return Outcome(FAIL, f"finish_reason {finish!r}, reference {expected!r}", ex, data)
        shown = f"{len(calls)} valid tool call(s)" if finish == TOOL_CALLS else f"finish_reason {finish!r}"
        return Outcome(PASS, f"{shown}; reference {expected!r}", ex, data)
    return run


def _reference_finish(ex: Exchange) -> tuple[str | None, str | None]:
    """(the reference's finish_reason, None), or (None, why kvv could not get it)."""
    trouble = unusable(ex)
    if trouble is not None:
        return None, trouble.message
    if (problem := answer_problem(ex)) is not None:
        return None, problem
    if ex.finish_reason is None:
        return None, "the response has no finish_reason"
    return ex.finish_reason, None


# -- verdict --------------------------------------------------------------------------------------

CELLS = {(True, True): "tp", (True, False): "fp", (False, True): "fn", (False, False): "tn"}


def confusion(rows: Sequence[Row]) -> dict[str, int]:
    """tp/fp/fn/tn over rows with both sides known. Anything but tool_calls (stop, length) is non-tool."""
    counts = Counter(rows)          # rows with an unknown side match no cell
    return {name: counts[cell] for cell, name in CELLS.items()}


def precision(rows: Sequence[Row]) -> float | None:
    c = confusion(rows)
    return c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else None


def recall(rows: Sequence[Row]) -> float | None:
    c = confusion(rows)
    return c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else None


def f1(rows: Sequence[Row]) -> float | None:
    c = confusion(rows)
    return 2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]) if c["tp"] + c["fp"] + c["fn"] else None


def _imputed(rows: Sequence[Row], agree: bool) -> list[Row]:
    """Unknown sides filled in to agree with the known side (best case for the vendor) or to
    disagree (worst case); two unknowns become a true positive, or a false positive."""
    def fill(vendor: bool | None, reference: bool | None) -> Row:
        if vendor is None and reference is None:
            return True, agree
        if vendor is None:
            return reference == agree, reference
        if reference is None:
            return vendor, vendor == agree
        return vendor, reference
    return [fill(*row) for row in rows]


def interval(rows: Sequence[Row], statistic: Callable[[Sequence[Row]], float | None]) -> dict[str, float | None]:
    """The statistic on the known rows, bounded like threshold_verdict treats errors: the lower
    bound assumes every unknown answer went against the vendor, the upper bound for it."""
    worst_case, best_case = _imputed(rows, agree=False), _imputed(rows, agree=True)
    lower, upper = bootstrap(worst_case, statistic)
    if best_case != worst_case:
        _, upper = bootstrap(best_case, statistic)
    value = statistic(rows)
    return {k: None if v is None else round(v, 4) for k, v in (("value", value), ("lower", lower), ("upper", upper))}


def _summarize(records: list[dict[str, Any]], ctx: Context) -> Summary:
    _, reference, described = chosen(ctx)
    rows: list[Row] = []
    valid = invalid = unknown = 0
    for record in records:
        data = record.get("data") or {}           # none only when kvv itself broke on the item
        if reference is None:
            expected = data.get("reference_finish_reason")
        else:
            index = data.get("data_index")   # the reference is keyed by int: no index, no reference answer
            expected = None if index is None else reference.get(index)
        vendor = data["finish_reason"] == TOOL_CALLS if "finish_reason" in data else None
        wanted = None if expected is None else expected == TOOL_CALLS
        if data.get("unusable"):
            # No answer to judge is never agreement: the worst case, the opposite of the reference
            # (and, for all kvv knows, a broken tool call).
            vendor = None if wanted is None else not wanted
            invalid += 1
        rows.append((vendor, wanted))
        valid += data.get("valid") is True
        invalid += data.get("valid") is False
        unknown += vendor is None
    f1_minimum = ctx.profile.threshold("toolcall-f1", 0.80)
    score = interval(rows, f1)
    if score["lower"] is not None and score["lower"] >= f1_minimum:
        f1_verdict = PASS
    elif score["upper"] is not None and score["upper"] < f1_minimum:
        f1_verdict = FAIL
    else:
        f1_verdict = INCONCLUSIVE
    # Every unknown vendor answer might have been an (invalid) tool-call answer.
    schema_minimum = ctx.profile.threshold("tool-schema-accuracy", 0.95)
    schema_verdict, schema = threshold_verdict(valid, invalid, unknown, schema_minimum)
    verdict = worst([f1_verdict, schema_verdict])
    if verdict == INCONCLUSIVE and any(r["verdict"] == ERROR for r in records):
        verdict = ERROR                            # undecided because kvv could not run enough requests
    counts = confusion(rows)
    details = {
        "n": len(records),
        **counts,
        "unknown": sum(1 for row in rows if None in row),
        "precision": interval(rows, precision),
        "recall": interval(rows, recall),
        "f1": {**score, "minimum": f1_minimum, "verdict": f1_verdict},
        "schema_accuracy": {**{k: schema[k] for k in ("value", "lower", "upper", "minimum")},
                            "verdict": schema_verdict, "valid": valid, "tool_call_answers": valid + invalid},
        "finish_reasons": dict(Counter(_finish_label(r.get("data") or {}) for r in records)),
        "reference": described,
    }
    message = None
    if _schema_broken(records, schema_minimum):
        # Anytime-valid, so it holds however early it decided; F1 is over the requests that ran.
        verdict, details["sequential_failure"] = FAIL, "schema_accuracy"
        message = (f"FAIL after {len(records)} requests: schema accuracy of the tool-call answers shown below "
                   f"{schema_minimum:g} by a sequential test (α = {EARLY_ALPHA:g}), so the rest were not sent")
    return Summary(verdict, {"name": "f1", **{k: score[k] for k in ("value", "lower", "upper")}, "confidence": 0.95},
                   details, message)


EARLY_ALPHA = 0.01     # the sequential test that lets broken tool calls fail early


def _schema_broken(records: list[dict[str, Any]], minimum: float) -> bool:
    """Whether an anytime-valid betting test (kvv.sequential) already shows the tool-call answers'
    schema accuracy below `minimum`. F1 has no such test (it is no mean), so only this axis stops early;
    answers kvv could not get count for the vendor."""
    test = BettingTest(minimum, alpha=EARLY_ALPHA)
    for record in records:
        data = record.get("data") or {}
        if data.get("unusable") or data.get("valid") is False:
            test.update(0.0)
        elif data.get("valid") is True:
            test.update(1.0)
        elif record["verdict"] == ERROR:
            test.update(None)
    return test.verdict == FAIL


def _settled(records: list[dict[str, Any]], ctx: Context) -> bool:
    return _schema_broken(records, ctx.profile.threshold("tool-schema-accuracy", 0.95))


def _finish_label(data: dict[str, Any]) -> str:
    if "finish_reason" not in data:
        return "(not run)"
    return data["finish_reason"] or "(no answer)"


CHECKS = [
    Check(CHECK, "recorded tool-use requests replayed against a reference (K2VV)",
          "tool calls triggered when the official model answers in text, or the reverse (chat template, "
          "tool parser or sampling), and tool calls whose arguments break the declared schema",
          ("tools",), _build,
          # temperature 0 and max-tokens 0 keep each request's recorded value.
          {"requests": None, "reference": None, "temperature": 0.0, "max-tokens": 0}, _summarize,
          endpoint_sensitive=True, settled=_settled),
]
