"""The thinking switch works: thinking on returns reasoning_content, thinking off returns none,
and thinking off does not bill the thinking template.

A vendor whose template ignores the switch either bills hidden reasoning the user turned off,
or silently serves a thinking model without its reasoning.

The billing rule (kvv issue 10 item 4; sglang billed 67 tokens): for the same message,
usage.prompt_tokens with thinking off must not exceed the count with thinking on by more than
the profile's prompt-token-slack. Kimi's templates differ only in what thinking adds: K3's
thinking template carries the effort system message and K2.5's opens a think block, while the
off template at most closes an empty one (`<think></think>`, a token or two: docs/upstream.md
§2.5, §2.6). So off is at most on plus that stub; a count above it is the thinking template (or
its system prompt) rendered and billed although the request turned thinking off. Off below on is
the healthy K3 case, and off equal to on is what a template without a thinking preamble gives,
so neither is a finding here: whether thinking was really off is the reasoning_content items' job.
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
    if switched and set(ctx.profile.modes) >= {"thinking", "non-thinking"}:
        slack = ctx.profile.threshold("prompt-token-slack", 3)
        items.append(Item("thinking off bills no more prompt tokens than on",
                          [ctx.body("thinking", max_tokens=cap), ctx.body("non-thinking", max_tokens=cap)],
                          _billed_alike(slack), "non-thinking", cap, expects={"slack": slack}))
    return items


def _billed_alike(slack: int):
    def judge(exchanges: list[Exchange]) -> Outcome:
        on, off = exchanges
        counts = {}
        for label, ex in (("on", on), ("off", off)):
            if problem := answer_problem(ex):
                return failed(f"thinking {label}: {problem}", ex)
            tokens = (ex.usage or {}).get("prompt_tokens")
            if not isinstance(tokens, int) or isinstance(tokens, bool):
                return failed(f"thinking {label}: the response has no usage.prompt_tokens to compare", ex)
            counts[label] = tokens
        extra = counts["off"] - counts["on"]
        if extra > slack:
            return failed(f"thinking off billed {extra} more prompt tokens than thinking on ({counts['off']} vs "
                          f"{counts['on']}, at most {slack} more allowed): the thinking template was billed", off)
        return passed(f"prompt_tokens {counts['off']} with thinking off, {counts['on']} with it on", off)
    return judge


def _expects(thinking: bool):
    def judge(exchanges: list[Exchange]) -> Outcome:
        ex = exchanges[0]
        if problem := answer_problem(ex):
            return failed(problem, ex)
        reasoning = ex.reply.reasoning_content
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
