"""Parameter contracts: pinned decoding parameters are accepted at the right values and
rejected, with the status the profile names (400), at the wrong ones.

One check per parameter the profile pins, so a report names the parameter that broke.
A rejection of any other kind is never a pass: a 5xx on every retry while a valid request is
answered is a finding (the invalid value crashes the server, and clients retry it); a timeout, or
a 5xx for the valid request too, is an infrastructure error.
"""

from __future__ import annotations

from typing import Any

from ..exchange import Exchange
from .base import Check, Context, Item, Outcome, error_message, failed, passed

DEFAULT_MAX_TOKENS = 64   # the answer is irrelevant here; cap what each probe may cost


def check_id(parameter: str) -> str:
    return "param-" + parameter.replace("_", "-")


def param_check(parameter: str) -> Check:
    return Check(
        id=check_id(parameter),
        title=f"{parameter} contract",
        detects=f"{parameter} outside the model's contract is accepted (or a valid value refused)",
        suites=("preflight",),
        build=lambda ctx: _items(ctx, parameter),
        options={"max-tokens": DEFAULT_MAX_TOKENS},
    )


def _items(ctx: Context, parameter: str) -> list[Item]:
    items = []
    cap = ctx.options.get("max-tokens", DEFAULT_MAX_TOKENS)
    for mode in ctx.modes():
        rule = ctx.profile.rule(parameter, mode)
        if rule is None:
            continue
        for value in rule.accept:
            body = ctx.body(mode, **{parameter: value}, max_tokens=cap)
            items.append(Item(f"accept {parameter}={value} [{mode}]", [body],
                              _accepts(parameter, value), mode, token_ceiling=cap * _choices(parameter, value)))
        for value in rule.reject:
            body = ctx.body(mode, **{parameter: value}, max_tokens=cap)
            items.append(Item(f"reject {parameter}={value} [{mode}]", [body],
                              _rejects(parameter, value, ctx.profile.rejection_statuses), mode,
                              token_ceiling=cap * _choices(parameter, value), control=ctx.control(mode)))
    return items


def _choices(parameter: str, value: Any) -> int:
    """A vendor that wrongly honours n=2 bills two answers."""
    return int(value) if parameter == "n" and isinstance(value, (int, float)) and value >= 1 else 1


def _accepts(parameter: str, value: Any):
    def judge(exchanges: list[Exchange]) -> Outcome:
        ex = exchanges[0]
        if ex.status is not None and 400 <= ex.status < 500:
            return failed(f"{parameter}={value} was refused (HTTP {ex.status}: {error_message(ex)}); "
                          f"the contract accepts it", ex)
        if not ex.choices:
            return failed(f"{parameter}={value}: HTTP {ex.status} with no choices", ex)
        return passed(f"{parameter}={value} accepted (HTTP {ex.status})", ex)
    return judge


def _rejects(parameter: str, value: Any, statuses: tuple[int, ...]):
    expected = " or ".join(str(s) for s in statuses)

    def judge(exchanges: list[Exchange]) -> Outcome:
        ex = exchanges[0]
        if ex.status in statuses:
            return passed(f"{parameter}={value} rejected with HTTP {ex.status}", ex)
        if ex.status is not None and 200 <= ex.status < 300:
            return failed(f"{parameter}={value} was accepted (HTTP {ex.status}); expected HTTP {expected}", ex)
        return failed(f"{parameter}={value} answered HTTP {ex.status}; expected HTTP {expected}", ex)
    return judge
