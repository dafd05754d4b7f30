"""Reading and validating the `usage` block a vendor reports."""

from __future__ import annotations

from ..exchange import Exchange
from .base import Outcome, failed, passed, rejection

FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def usage_problem(ex: Exchange) -> str | None:
    """Why the usage block is unusable or dishonest, or None when it adds up."""
    usage = ex.usage
    if not isinstance(usage, dict):
        return "no usage reported"
    values = {}
    for name in FIELDS:
        value = usage.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"usage.{name} is {value!r}; expected a non-negative integer"
        values[name] = value
    if values["prompt_tokens"] == 0:
        return "usage.prompt_tokens is 0 for a non-empty prompt"
    if values["prompt_tokens"] + values["completion_tokens"] != values["total_tokens"]:
        return (f"usage does not add up: prompt {values['prompt_tokens']} + completion "
                f"{values['completion_tokens']} != total {values['total_tokens']}")
    return None


def tokens(ex: Exchange, name: str) -> int | None:
    value = (ex.usage or {}).get(name)
    return value if isinstance(value, int) else None


def judge_usage(what: str):
    """A judge for one request whose usage must be present and add up; `what` names the request."""
    def judge(exchanges: list[Exchange]) -> Outcome:
        ex = exchanges[0]
        if problem := rejection(ex):
            return failed(f"{what}: {problem}", ex)
        problem = usage_problem(ex)
        if problem:
            return failed(f"{what}: {problem}", ex)
        usage = ex.usage
        assert usage is not None   # usage_problem found none, so the block is a dict
        return passed(f"{what}: usage ({ex.usage_location} level) {usage['prompt_tokens']} + "
                      f"{usage['completion_tokens']} = {usage['total_tokens']}", ex)
    return judge
