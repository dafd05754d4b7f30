"""The thinking switch works: thinking on returns reasoning_content, thinking off returns none.

A vendor whose template ignores the switch either bills hidden reasoning the user turned off,
or silently serves a thinking model without its reasoning.
"""

from __future__ import annotations

from ..exchange import Exchange
from .base import Check, Context, Item, Outcome, answer_problem, failed, passed


def _items(ctx: Context) -> list[Item]:
    if ctx.profile.modes == ("non-thinking",):
        return []      # nothing to switch
    cap = ctx.options.get("max-tokens", 64)
    switched = ctx.think_mode != "none"
    items = []
    for mode in ctx.modes():
        label = f"thinking {'on' if mode == 'thinking' else 'off'}" if switched else f"server default ({mode})"
        items.append(Item(f"{label} [{mode}]", [ctx.body(mode, max_tokens=cap)], _expects(mode == "thinking"),
                          mode, cap))
    return items


def _expects(thinking: bool):
    def judge(exchanges: list[Exchange]) -> Outcome:
        ex = exchanges[0]
        if problem := answer_problem(ex):
            return failed(problem, ex)
        reasoning = ex.message.reasoning_content
        if thinking and not reasoning:
            return failed("thinking was on but the response has no reasoning_content", ex)
        if not thinking and reasoning:
            return failed(f"thinking was off but the response has {len(reasoning)} characters of "
                          "reasoning_content", ex)
        return passed("reasoning_content present" if thinking else "no reasoning_content", ex)
    return judge


CHECKS = [
    Check("thinking-toggle", "thinking switch takes effect",
          "the thinking on/off switch is ignored (wrong chat_template_kwargs or thinking field handling)",
          ("preflight",), _items, {"max-tokens": 64}),
]
