"""API contracts as data: tool_choice, response_format, dynamic tools and thinking effort.

Each check reads its cases from kvv/data/contracts/<check id>.yaml (or the `cases` option):
a request body, the profile features it needs, and the expectations its answer must meet.
Every case runs non-streamed and streamed, because vendors often validate or render the two
paths differently. A rejection must be exactly HTTP 400 (or another status the profile's
rejection-statuses name); a 5xx on every retry while a valid request is answered is a finding, a
timeout or an endpoint that answers nothing is an infrastructure error, never a pass.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

from ..errors import ConfigError
from ..exchange import Exchange
from ..thinking import thinking_fields
from .base import Check, Context, Item, Outcome, error_message, failed, passed, answer_problem
from .cases import STREAM_MODES, load_yaml_file

# A case that names any of these chooses its thinking itself; kvv adds nothing.
THINKING_FIELDS = ("thinking", "reasoning_effort", "chat_template_kwargs")
CASE_KEYS = {"id", "requires", "mode", "request", "expect"}
MODES = ("thinking", "non-thinking")
JSON_TYPES: dict[str, type | tuple[type, ...]] = {"string": str, "number": (int, float), "integer": int,
                                                  "boolean": bool, "object": dict, "array": list, "null": type(None)}


# -- expectations ------------------------------------------------------------------------------
# Each takes the exchange and the expected value and returns what is wrong, or None. They run
# in the table's order, so an item reports what the model did (tool calls or not) before how
# the answer finished, and how it finished before what the content holds.

def _finish_reason(ex: Exchange, want: str) -> str | None:
    if ex.finish_reason != want:
        return f"finish_reason {ex.finish_reason!r}, expected {want!r}"
    return None


def _tool_calls(ex: Exchange, _: bool) -> str | None:
    if _names(ex):
        return None
    if ex.finish_reason == "length":      # a forced call that never opened: text until max_tokens
        return "no tool_calls: the answer ran to max_tokens (finish_reason 'length'), expected a call"
    return "no tool_calls, expected at least one"


def _no_tool_calls(ex: Exchange, _: bool) -> str | None:
    names = _names(ex)
    return f"tool_calls {names}, expected none" if names else None


def _tool_name(ex: Exchange, want: str) -> str | None:
    names = _names(ex)
    if not names or any(name != want for name in names):
        return f"tool_calls {names}, expected calls to {want!r} only"
    return None


def _tool_names_include(ex: Exchange, want: list[str]) -> str | None:
    names = _names(ex)
    missing = [name for name in want if name not in names]
    return f"tool_calls {names}, expected them to include {missing}" if missing else None


def _content(ex: Exchange, _: bool) -> str | None:
    return None if _text(ex).strip() else "empty content, expected text"


def _content_contains(ex: Exchange, want: str) -> str | None:
    if want.lower() not in _text(ex).lower():
        return f"content {_excerpt(ex)} does not contain {want!r}"
    return None


def _json(ex: Exchange, kind: str) -> str | None:
    value, problem = _parsed(ex)
    if problem:
        return problem
    if kind == "object" and not isinstance(value, dict):
        return f"content is JSON {type(value).__name__}, expected a JSON object"
    return None


def _json_keys(ex: Exchange, want: list[str]) -> str | None:
    value, problem = _parsed(ex)
    if problem or not isinstance(value, dict):
        return problem or "content is not a JSON object"
    missing = [key for key in want if key not in value]
    return f"JSON keys {sorted(value)}, missing {missing}" if missing else None


def _json_types(ex: Exchange, want: dict[str, str]) -> str | None:
    value, problem = _parsed(ex)
    if problem or not isinstance(value, dict):
        return problem or "content is not a JSON object"
    for key, kind in want.items():
        got = value.get(key)
        # bool is an int in Python, never a JSON number
        if key not in value or not isinstance(got, JSON_TYPES[kind]) or (isinstance(got, bool) and kind != "boolean"):
            return f"JSON {key!r} is {json.dumps(got) if key in value else 'absent'}, expected a {kind}"
    return None


def _compact(ex: Exchange, _: bool) -> str | None:
    text = _text(ex)
    if "\n" in text or "\t" in text:
        return f"content has {text.count(chr(10))} newline(s) and {text.count(chr(9))} tab(s), expected compact JSON"
    return None


def _reasoning(ex: Exchange, _: bool) -> str | None:
    return None if ex.message and ex.message.reasoning_content else "no reasoning_content, expected some"


def _flag(value: Any) -> bool:
    return value is True


def _word(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _words(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(map(_word, value))


def _types(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(v in JSON_TYPES for v in value.values())


# key -> (is the value well-formed, the expectation); `status` is every case's first check.
EXPECTATIONS: dict[str, tuple[Callable[[Any], bool], Callable[[Exchange, Any], str | None]]] = {
    "tool_calls": (_flag, _tool_calls),
    "no_tool_calls": (_flag, _no_tool_calls),
    "tool_name": (_word, _tool_name),
    "tool_names_include": (_words, _tool_names_include),
    "finish_reason": (_word, _finish_reason),
    "reasoning": (_flag, _reasoning),
    "content": (_flag, _content),
    "content_contains": (_word, _content_contains),
    "json": (lambda v: v in ("object", "any"), _json),
    "json_keys": (_words, _json_keys),
    "json_types": (_types, _json_types),
    "compact": (_flag, _compact),
}
STATUSES = (200, 400)   # 200: any success; 400: a rejection


def _names(ex: Exchange) -> list[str | None]:
    """The called tools' names, in order; None for a call that names none (the expectations show it as such)."""
    return [(call.get("function") or {}).get("name") for call in (ex.message.tool_calls if ex.message else [])]


def _text(ex: Exchange) -> str:
    return (ex.message.content if ex.message else None) or ""


def _excerpt(ex: Exchange) -> str:
    text = _text(ex)
    return repr(text if len(text) <= 80 else text[:80] + "…")


def _parsed(ex: Exchange) -> tuple[Any, str | None]:
    try:
        return json.loads(_text(ex)), None
    except ValueError as exc:
        return None, f"content {_excerpt(ex)} is not valid JSON ({exc})"


def _judge(expect: dict[str, Any], rejections: tuple[int, ...]):
    def judge(exchanges: list[Exchange]) -> Outcome:
        ex = exchanges[0]
        problem = _status(ex, expect["status"], rejections)
        if problem is None:
            for key, (_, expectation) in EXPECTATIONS.items():
                if key in expect and (problem := expectation(ex, expect[key])):
                    break
        if problem:
            return failed(problem, ex)
        held = [key for key in EXPECTATIONS if key in expect]
        return passed(f"HTTP {ex.status}" + (f"; {', '.join(held)} as expected" if held else ""), ex)
    return judge


def _status(ex: Exchange, want: int, rejections: tuple[int, ...]) -> str | None:
    if want == 400:
        if ex.status in rejections:
            return None
        expected = " or ".join(map(str, rejections))
        if ex.ok:
            return f"HTTP {ex.status}: the request was accepted, expected a rejection with HTTP {expected}"
        return f"HTTP {ex.status} ({error_message(ex)}), expected HTTP {expected}"
    problem = answer_problem(ex)
    return None if problem is None else f"{problem}; expected success"


# -- cases -------------------------------------------------------------------------------------

def load_cases(check_id: str, path: str | None = None) -> list[dict[str, Any]]:
    """The cases of `check_id`: kvv's own file, or the user's (option `cases`), validated."""
    source, data = load_yaml_file(path, f"contracts/{check_id}.yaml")
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise ConfigError("expected a mapping with a list `cases`", source=source)
    seen: set[str] = set()
    for index, case in enumerate(data["cases"]):
        _validate(case, f"cases[{index}]", source)
        if case["id"] in seen:
            raise ConfigError(f"duplicate case id {case['id']!r}", source=source, path=f"cases[{index}].id")
        seen.add(case["id"])
    return data["cases"]


def _validate(case: Any, where: str, source: str) -> None:
    def bad(message: str, key: str = "") -> ConfigError:
        return ConfigError(message, source=source, path=f"{where}.{key}".rstrip("."))

    if not isinstance(case, dict) or not _word(case.get("id")):
        raise bad("expected a mapping with a non-empty string `id`")
    if unknown := set(case) - CASE_KEYS:
        raise bad(f"unknown keys {sorted(unknown)}; expected {sorted(CASE_KEYS)}")
    if not isinstance(case.get("request"), dict) or not isinstance(case["request"].get("messages"), list):
        raise bad("expected a request body with a list `messages`", "request")
    if not isinstance(case.get("requires", {}), dict):
        raise bad("expected a mapping of profile feature to value(s)", "requires")
    if case.get("mode", MODES[0]) not in MODES:
        raise bad(f"expected one of {list(MODES)}", "mode")
    expect = case.get("expect")
    if not isinstance(expect, dict) or expect.get("status") not in STATUSES:
        raise bad(f"expected a mapping with `status` one of {list(STATUSES)}", "expect")
    for key, value in expect.items():
        if key == "status":
            continue
        if key not in EXPECTATIONS:
            raise bad(f"unknown expectation; expected one of {['status', *EXPECTATIONS]}", f"expect.{key}")
        if expect["status"] != 200:
            raise bad("only a successful answer (status 200) has content to check", f"expect.{key}")
        if not EXPECTATIONS[key][0](value):
            raise bad(f"malformed value {value!r}", f"expect.{key}")


def _supported(profile: Any, requires: dict[str, Any]) -> bool:
    """Whether the profile has every feature value the case needs."""
    for feature, wanted in requires.items():
        have = profile.feature(feature)
        wanted = wanted if isinstance(wanted, list) else [wanted]
        if not (all(w in have for w in wanted) if isinstance(have, list) else wanted == [have]):
            return False
    return True


# -- checks ------------------------------------------------------------------------------------

def _items(check_id: str, feature: str):
    def build(ctx: Context) -> list[Item]:
        if not ctx.profile.feature(feature):
            return []
        profile = ctx.profile
        rejections = tuple(sorted({400, *profile.rejection_statuses}))
        # Cases run in the profile's default mode (the effort cases switch thinking on: K3's default),
        # or in the case's `mode`, left out where kvv cannot switch the profile to it.
        items = []
        for case in load_cases(check_id, ctx.options.get("cases")):
            mode = case.get("mode", profile.default_mode)
            if not _supported(profile, case.get("requires", {})) or mode not in ctx.modes():
                continue
            thinking = thinking_fields(ctx.think_mode, mode == "thinking") if len(profile.modes) > 1 else {}
            request = copy.deepcopy(case["request"])
            own = any(name in request for name in THINKING_FIELDS)
            body = {"model": ctx.model, **({} if own else thinking), **request}
            judge = _judge(case["expect"], rejections)
            control = ctx.control(mode) if case["expect"]["status"] == 400 else None
            for label, extra in STREAM_MODES.items():
                items.append(Item(f"{case['id']} [{label}]", [{**body, **extra}], judge, mode,
                                  request.get("max_tokens"), control=control, expects=case["expect"]))
        return items
    return build


def _check(check_id: str, title: str, detects: str, feature: str) -> Check:
    return Check(check_id, title, detects, ("tools",), _items(check_id, feature), {"cases": None})


CHECKS = [
    _check("tool-choice", "tool_choice contract",
           "tool_choice not honoured or not validated: forced calls missing, 'none' still calling, "
           "tool calls not finished with 'tool_calls', invalid values accepted", "tool-choice"),
    _check("response-format", "response_format contract",
           "response_format not honoured or not validated: no JSON, schema not enforced, pretty-printed "
           "constrained output, malformed formats accepted", "response-format"),
    _check("dynamic-tools", "tools declared in system messages",
           "tools inside system messages (messages[].tools) dropped, misrendered or not validated",
           "dynamic-tools"),
    _check("thinking-effort", "thinking effort contract",
           "thinking.effort / reasoning_effort ignored, not validated, or applied in the wrong precedence",
           "thinking-effort"),
]
