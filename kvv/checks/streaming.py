"""Streaming contracts: usage arrives in a stream when asked for, and a streamed answer has
the same shape as the non-streamed one (same finish_reason, usage, prompt count, reasoning)."""

from __future__ import annotations

from ..exchange import Exchange
from .base import STREAM, Check, Context, Item, Outcome, answer_problem, failed, passed
from .usage import judge_usage, tokens



def _stream_usage(ctx: Context) -> list[Item]:
    cap = ctx.options.get("max-tokens", 64)
    return [Item(f"include_usage carries usage [{mode}]", [ctx.body(mode, max_tokens=cap, **STREAM)],
                 judge_usage("streamed request with stream_options.include_usage"), mode, cap)
            for mode in ctx.modes()]


def _parity(ctx: Context) -> list[Item]:
    cap = ctx.options.get("max-tokens", 64)
    items = []
    for mode in ctx.modes():
        plain = ctx.body(mode, max_tokens=cap)
        items.append(Item(f"stream matches non-stream [{mode}]", [plain, {**plain, **STREAM}], _same_shape,
                          mode, 2 * cap))
    return items


def _same_shape(exchanges: list[Exchange]) -> Outcome:
    plain, streamed = exchanges
    for ex, name in ((plain, "non-streamed"), (streamed, "streamed")):
        if problem := answer_problem(ex):
            return failed(f"{name} request: {problem}", ex)
    differences = []
    if plain.finish_reason != streamed.finish_reason:
        differences.append(f"finish_reason {plain.finish_reason!r} vs {streamed.finish_reason!r}")
    if (plain.usage is None) != (streamed.usage is None):
        differences.append(f"usage {'present' if plain.usage else 'missing'} vs "
                           f"{'present' if streamed.usage else 'missing'}")
    elif tokens(plain, "prompt_tokens") != tokens(streamed, "prompt_tokens"):
        differences.append(f"prompt_tokens {tokens(plain, 'prompt_tokens')} vs {tokens(streamed, 'prompt_tokens')}")
    if bool(plain.reply.reasoning_content) != bool(streamed.reply.reasoning_content):
        differences.append("reasoning_content in one mode only")
    if bool(plain.reply.content) != bool(streamed.reply.content):
        differences.append("content in one mode only")
    if differences:
        return failed("non-streamed vs streamed: " + "; ".join(differences), streamed)
    return passed(f"same shape: finish_reason {plain.finish_reason}, prompt_tokens "
                  f"{tokens(plain, 'prompt_tokens')}", streamed)


CHECKS = [
    Check("stream-usage", "usage in streams",
          "stream_options.include_usage ignored: streamed requests cannot be billed or audited",
          ("preflight",), _stream_usage, {"max-tokens": 64}),
    Check("stream-parity", "stream and non-stream agree",
          "the streaming path differs from the non-streaming one (parser, template or usage bugs)",
          ("preflight",), _parity, {"max-tokens": 64}),
]
