"""The `long-output` probe: copy a long sequence exactly, at a ladder of output lengths.

kvv writes, from the run's --seed, the rung and the item, numbered lines of words drawn from a
fixed vocabulary (kvv/data/probe-words.txt) — "0001 river stone …" — that no model can have
memorised, as long as the rung's completion-token count by kvv's estimate, and asks the model
to write them back and nothing else. Copying needs no knowledge: a sound deployment copies
nearly always, and what breaks it is the deployment — a KV-cache or quantisation fault garbles
the output after some length (`corrupted`, at about the same token every time), a gateway that
caps generation cuts it (`truncated`, finish_reason length, or a stream cut without a finish).

Estimates. A line is WORDS_PER_LINE words and costs TOKENS_PER_LINE tokens by kvv's estimate
(each common word one token with its space, the line number about two in tokenizers that cut
digits in threes, the newline one), so a rung of N tokens has N / TOKENS_PER_LINE lines. The
vendor's own completion_tokens on exact copies calibrate where a divergence lies in its tokens.

Requests. Non-thinking where the profile can switch (reasoning would eat the budget); else its
default mode, with the budget raised and the reasoning ignored. max_tokens is the estimate times
HEADROOM (a tokenizer that cuts finer still fits), at most the profile's limits.output-tokens; a
rung above that limit, or whose prompt and output would not fit limits.context-tokens (or
--max-prompt-tokens), is left out and the summary says so. The first item of each rung is
streamed: a proxy or timeout that cuts long streams shows as a copy cut without a finish (a
non-streamed body that breaks off has no text to show where), the rest are not, which keeps the
run cheap to parse. A 64k-token copy at 30 tokens/s takes about half an hour, the client's
default cap per request: raise --request-deadline for a slow endpoint, or a sound one times out
(an error, never a pass or a fail).

Judging. Exact means the text equals the sequence after the surrounding whitespace and a code
fence around it are dropped and each line's trailing spaces trimmed; nothing else is forgiven
(one wrong word in 64k tokens is not exact). The data say how much diverged (the share of lines
right, matched by their numbers), so a single slip is told from a collapse.
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
from functools import lru_cache
from importlib import resources
from typing import Any

from ..exchange import Exchange
from ..verdict import ERROR, FAIL, PASS
from . import ladder
from .base import STREAM, Context, Item, NotApplicable, Outcome, Send, answer_problem, transport_problem
from .ladder import Rung

PROBE = "long-output"
DEFAULT_RUNGS = [1024, 4096, 16384, 65536]
WORDS_PER_LINE = 8
TOKENS_PER_LINE = WORDS_PER_LINE + 3      # the words, the line number (≈ 2) and the newline
HEADROOM = 1.5                            # max_tokens over the estimate: finer tokenizers still fit
THINKING_ALLOWANCE = 1.0                  # a thinking-only model may think about as long as it copies
PROMPT_OVERHEAD = 120                     # the instruction and the markers, in tokens

INSTRUCTION = ("Copy the numbered lines between BEGIN LINES and END LINES below exactly, in order: the same "
               "numbers, the same words, nothing changed, added or left out. Output only the lines, starting "
               "with the first one: no introduction, no markers, no code block, nothing after the last line.")
BEGIN, END = "BEGIN LINES", "END LINES"

KINDS = ("exact", "truncated", "corrupted", "no answer")


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    text = (resources.files("kvv.data") / "probe-words.txt").read_text(encoding="utf-8")
    return tuple(word for word in text.split() if word)


def _vocabulary_digest() -> str:
    return hashlib.sha256("\n".join(vocabulary()).encode()).hexdigest()[:12]


# -- the sequence ------------------------------------------------------------------------------

def line_count(size: int) -> int:
    return max(1, round(size / TOKENS_PER_LINE))


def sequence(seed: int, size: int, index: int) -> list[str]:
    """The lines item `index` of the `size`-token rung asks to copy: a pure function of its arguments."""
    count = line_count(size)
    width = max(4, len(str(count)))
    rng = random.Random(f"{seed}:{PROBE}:{size}:{index}")
    drawn = rng.choices(vocabulary(), k=count * WORDS_PER_LINE)       # one call: 48k words in ~10 ms
    return [f"{n + 1:0{width}d} " + " ".join(drawn[n * WORDS_PER_LINE:(n + 1) * WORDS_PER_LINE])
            for n in range(count)]


def prompt(lines: list[str]) -> str:
    return f"{INSTRUCTION}\n\n{BEGIN}\n" + "\n".join(lines) + f"\n{END}"


def copied_text(prompt_text: str) -> str | None:
    """The lines a probe prompt asks to copy (for the simulated model), or None if it is not one."""
    if not prompt_text.startswith(INSTRUCTION):
        return None
    head, _, rest = prompt_text.partition(f"\n\n{BEGIN}\n")
    body, found, tail = rest.rpartition(f"\n{END}")
    return body if head == INSTRUCTION and found and not tail else None


# -- the ladder --------------------------------------------------------------------------------

def _label(size: int) -> str:
    return f"{size // 1024}k tokens" if size % 1024 == 0 else f"{size} tokens"


def _max_tokens(ctx: Context, size: int, mode: str) -> int:
    estimate = line_count(size) * TOKENS_PER_LINE
    wanted = math.ceil(estimate * (HEADROOM + (THINKING_ALLOWANCE if mode == "thinking" else 0)))
    limit = ctx.profile.limits.get("output-tokens")
    return min(wanted, limit) if limit else wanted


def _mode(ctx: Context) -> str:
    return "non-thinking" if "non-thinking" in ctx.modes() else ctx.profile.default_mode


def _ladder(ctx: Context) -> tuple[list[Rung], list[str]]:
    """The rungs the profile's limits allow, least demanding first, and why the others are left out."""
    sizes = sorted(set(ladder.sizes(ctx, PROBE, "rungs", DEFAULT_RUNGS)))
    limits = ctx.profile.limits
    output, context = limits.get("output-tokens"), limits.get("context-tokens")
    max_prompt = getattr(ctx, "max_prompt_tokens", None)
    mode = _mode(ctx)
    kept, left_out = [], []
    for size in sizes:
        prompt_tokens = _prompt_tokens(size)
        if output and size > output:
            left_out.append(f"{_label(size)}: above the profile's limits.output-tokens {output}")
        elif context and prompt_tokens + _max_tokens(ctx, size, mode) > context:
            left_out.append(f"{_label(size)}: its prompt and output (≈ {prompt_tokens + size:,} tokens) "
                            f"exceed the profile's limits.context-tokens {context}")
        elif max_prompt and prompt_tokens > max_prompt:
            left_out.append(f"{_label(size)}: its prompt (≈ {prompt_tokens:,} tokens) exceeds --max-prompt-tokens "
                            f"{max_prompt}")
        else:
            kept.append(Rung(_label(size), size))
    return kept, left_out


def rungs_of(ctx: Context) -> list[Rung]:
    return _ladder(ctx)[0]


def left_out(ctx: Context) -> list[str]:
    return _ladder(ctx)[1]


def _prompt_tokens(size: int) -> int:
    return line_count(size) * TOKENS_PER_LINE + PROMPT_OVERHEAD


# -- items -------------------------------------------------------------------------------------

def build(ctx: Context) -> list[Item]:
    rungs, omitted = _ladder(ctx)
    if not rungs:
        raise NotApplicable(f"every rung is beyond profile {ctx.profile.id}'s limits ({'; '.join(omitted)}); "
                            f"set checks.{PROBE}.rungs to lengths it serves")
    mode, per_rung, sends = _mode(ctx), ladder.items_per_rung(ctx, PROBE), 2 if ctx.reference else 1
    items = []
    for rung in rungs:
        max_tokens = _max_tokens(ctx, rung.size, mode)
        row = []
        for k in range(per_rung):
            stream = k == 0
            expects = {"seed": ctx.seed, "size": rung.size, "index": k, "lines": line_count(rung.size),
                       "words": WORDS_PER_LINE, "vocabulary": _vocabulary_digest(), "max_tokens": max_tokens,
                       "mode": mode, "stream": stream}
            row.append(Item(f"{rung.label} #{k + 1}", [], mode=mode, token_ceiling=max_tokens * sends,
                            run=_copy(ctx, rung, k, mode, max_tokens, stream), request_count=sends,
                            expects=expects, rung=rung.label, prompt_tokens=_prompt_tokens(rung.size) * sends))
        items.append(row)
    return ladder.interleaved(items)


def _body(ctx: Context, lines: list[str], mode: str, max_tokens: int, stream: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {"max_tokens": max_tokens, **(STREAM if stream else {})}
    # Copying needs no sampling: greedy where the contract allows it, else its pinned value.
    rule = ctx.profile.rule("temperature", mode)
    if rule is None or rule.allows(0.0):
        fields["temperature"] = 0.0
    elif rule.equals is not None:
        fields["temperature"] = rule.equals
    return ctx.body(mode, prompt(lines), **fields)


def _copy(ctx: Context, rung: Rung, index: int, mode: str, max_tokens: int, stream: bool):
    async def run(send: Send) -> Outcome:
        lines = sequence(ctx.seed, rung.size, index)      # made when sent: a 64k-token rung is 300 kB a copy
        vendor, reference = await ladder.sent(send, _body(ctx, lines, mode, max_tokens, stream), ctx)
        ours = judged(lines, vendor)
        data = {"rung": rung.label, **ours, "stream": stream, "max_tokens": max_tokens}
        where = f"{rung.label}, item {index + 1}"
        if reference is not None:
            theirs = judged(lines, reference)
            data["reference_score"], data["reference_kind"] = theirs["score"], theirs["kind"]
            if theirs["score"] is None:
                return Outcome(ERROR, f"{where}: reference endpoint: {theirs['problem']}", reference, data)
        if ours["score"] is None:
            return Outcome(ERROR, f"{where}: {ours['problem']}", vendor, data)
        message = f"{where}: {_said(ours)}"
        if reference is not None:
            message += f"; the reference's copy was {data['reference_kind']}"
        return Outcome(PASS if ours["exact"] else FAIL, message, vendor, data)
    return run


# -- judging one copy --------------------------------------------------------------------------

def judged(lines: list[str], ex: Exchange) -> dict[str, Any]:
    """The facts of one endpoint's copy: score (1 exact, 0 not, None: kvv could not tell), kind,
    where it diverges, how much is right, completion tokens and finish_reason."""
    usage = ex.usage or {}
    facts: dict[str, Any] = {"score": None, "exact": False, "kind": None, "lines": len(lines),
                             "completion_tokens": usage.get("completion_tokens"), "finish_reason": ex.finish_reason,
                             "estimated_tokens": len(lines) * TOKENS_PER_LINE,
                             "reasoning_chars": len((ex.message.reasoning_content if ex.message else None) or "")}
    problem = transport_problem(ex)
    if problem is not None and problem.verdict == ERROR:       # could not run it: no score
        return {**facts, "problem": problem.message}
    # A stream that broke off keeps what arrived: a clean prefix of it is a copy cut short.
    cut = problem is not None and ex.stream and ex.message is not None
    if problem is not None and not cut:
        return {**facts, "score": 0.0, "kind": "no answer", "problem": problem.message}
    if problem is None and (unanswered := answer_problem(ex)):
        return {**facts, "score": 0.0, "kind": "no answer", "problem": unanswered}
    assert ex.message is not None
    compared = compare(lines, ex.message.content or "", ex.finish_reason, cut=cut)
    if cut:
        assert problem is not None   # a copy is cut only where the transport had a problem (above)
        compared["cut"] = problem.message
    if compared["diverges_at"] is not None:
        compared["diverges_at"]["token"] = _in_vendor_tokens(compared, facts, ex.finish_reason)
    return {**facts, **compared, "score": 1.0 if compared["exact"] else 0.0}


def _in_vendor_tokens(compared: dict[str, Any], facts: dict[str, Any], finish_reason: str | None) -> int | None:
    """Where the copy diverges in the vendor's own tokens, where its usage tells: a clean prefix
    ends at its completion_tokens; a copy that ran to its end (stop) has about the sequence's
    tokens, which scales kvv's estimate. None where reasoning or a runaway output blurs it."""
    tokens, estimate = facts["completion_tokens"], compared["diverges_at"]["token_estimate"]
    if not isinstance(tokens, int) or isinstance(tokens, bool) or facts["reasoning_chars"]:
        return None
    if compared["kind"] == "truncated":
        return tokens
    ratio = tokens / facts["estimated_tokens"]
    return round(estimate * ratio) if finish_reason == "stop" and 0.5 <= ratio <= 2 else None


def normalised(text: str) -> str:
    """The copy as judged: line ends unified, each line's trailing spaces and the whole text's
    surrounding whitespace dropped, and a code fence around it removed."""
    rows = [row.rstrip() for row in text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")]
    if len(rows) >= 2 and rows[0].startswith("```") and rows[-1] == "```":
        rows = rows[1:-1]
    return "\n".join(rows).strip()


def compare(lines: list[str], text: str, finish_reason: str | None, *, cut: bool = False) -> dict[str, Any]:
    """Kind (exact, truncated: a clean prefix; corrupted: diverges), the first diverging
    position and the share of lines right (matched by their numbers)."""
    expected, got = "\n".join(lines), normalised(text)
    by_number: dict[str, str] = {}
    for row in got.split("\n"):
        number, _, _ = row.partition(" ")
        by_number.setdefault(number, row)
    right = sum(1 for line in lines if by_number.get(line.partition(" ")[0]) == line)
    facts: dict[str, Any] = {"lines_right": round(right / len(lines), 4), "copied_chars": len(got)}
    if got == expected:
        return {**facts, "exact": True, "kind": "exact", "diverges_at": None}
    at = _common_prefix(expected, got)
    line = expected.count("\n", 0, at)
    start = expected.rfind("\n", 0, at) + 1
    char = at - start
    token = line * TOKENS_PER_LINE + round(char / max(len(lines[line]), 1) * TOKENS_PER_LINE)
    facts["diverges_at"] = {"line": line + 1, "char": char + 1, "token_estimate": token}
    # A clean prefix: the copy stopped (cut, length, or the model's own stop) and wrote nothing wrong.
    kind = "truncated" if at == len(got) else "corrupted"
    return {**facts, "exact": False, "kind": kind}


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by halving (fast on 300 kB copies)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _said(facts: dict[str, Any]) -> str:
    """"diverges at line 412 char 7 (token ≈ 8190), 97% of lines right, 9,120 tokens, finish_reason stop"."""
    tokens = facts.get("completion_tokens")
    tail = f"{tokens:,} tokens, " if isinstance(tokens, int) else ""
    tail += f"finish_reason {facts.get('finish_reason')}" if not facts.get("cut") else "stream cut without a finish"
    kind = facts["kind"]
    if kind == "exact":
        return f"exact copy of {facts['lines']} lines, {tail}"
    if kind == "no answer":
        return f"no answer: {facts['problem']}"
    at = facts["diverges_at"]
    token = (f"token ≈ {at['token']}" if at.get("token") is not None
             else f"token ≈ {at['token_estimate']} by kvv's estimate")
    if kind == "truncated":
        return (f"truncated: a clean prefix ending at line {at['line']} char {at['char']} of {facts['lines']} "
                f"({token}), {tail}")
    return (f"corrupted: diverges at line {at['line']} char {at['char']} ({token}), "
            f"{facts['lines_right']:.1%} of lines right, {tail}")


# -- the probe's reading -----------------------------------------------------------------------

def describe(records: list[dict[str, Any]], ctx: Context, broken: Rung | None) -> tuple[dict[str, Any], str]:
    """Per rung: how many copies were exact, truncated, corrupted; where corrupted ones diverge
    (≈ the fault's N) and where truncated ones end; a clause naming the signature."""
    datas = [r.get("data") or {} for r in records]
    # Where a divergence lies in the vendor's tokens: kvv's estimate times the vendor's tokens per
    # estimated token on exact copies without reasoning (1 if there is none).
    ratios = [d["completion_tokens"] / d["estimated_tokens"] for d in datas
              if d.get("kind") == "exact" and isinstance(d.get("completion_tokens"), int)
              and d.get("estimated_tokens") and not d.get("reasoning_chars")]
    scale = statistics.median(ratios) if ratios else 1.0
    per_rung: dict[str, dict[str, Any]] = {}
    for rung in rungs_of(ctx):
        mine = [d for d in datas if d.get("rung") == rung.label]
        counts = {kind: sum(1 for d in mine if d.get("kind") == kind) for kind in KINDS}
        corrupted = [_divergence(d, scale) for d in mine if d.get("kind") == "corrupted"]
        ended = [d for d in mine if d.get("kind") == "truncated"]
        per_rung[rung.label] = {
            **counts,
            "median_divergence_token": round(statistics.median(corrupted)) if corrupted else None,
            "median_truncation_tokens": _median([d.get("completion_tokens") for d in ended]),
            "truncated_by": _tally(("cut" if d.get("cut") else d.get("finish_reason") or "none") for d in ended),
            "median_lines_right": _median([d.get("lines_right") for d in mine
                                           if d.get("kind") in ("corrupted", "truncated")]),
        }
    details = {"kinds": per_rung, "copies": "; ".join(f"{label}: {_counted(row)}" for label, row in per_rung.items()),
               "tokens_per_estimated_token": round(scale, 3),
               "estimate": f"{TOKENS_PER_LINE} tokens a line of {WORDS_PER_LINE} words"}
    return details, _signature(datas, scale)


def _signature(datas: list[dict[str, Any]], scale: float) -> str:
    """The clause for the message: the commonest way copies went wrong, and what it points at."""
    wrong = [d for d in datas if d.get("kind") in ("truncated", "corrupted", "no answer")]
    if not wrong:
        return f"all {len(datas)} copies exact" if datas else ""
    corrupted = [d for d in wrong if d["kind"] == "corrupted"]
    truncated = [d for d in wrong if d["kind"] == "truncated"]
    if len(wrong) * 10 < len(datas):          # a few slips among many exact copies
        right = _median([d.get("lines_right") for d in wrong])
        share = f", median {right:.1%} of lines right" if right is not None else ""
        return f"{len(wrong)} of {len(datas)} copies not exact{share}"
    if len(corrupted) >= len(truncated) and corrupted:
        garbled = statistics.median(_divergence(d, scale) for d in corrupted)
        return (f"outputs garbled after ≈ {_tokens(garbled)} tokens ({len(corrupted)} corrupted): the signature of a "
                f"KV-cache or quantisation fault at length")
    if truncated:
        by_length = [d for d in truncated if d.get("finish_reason") == "length" and not d.get("cut")]
        cut = [d for d in truncated if d.get("cut")]
        tokens = _median([d.get("completion_tokens") for d in truncated])
        at = f"≈ {_tokens(tokens)} tokens" if tokens is not None else "an unknown length"
        if len(by_length) * 2 >= len(truncated):
            return (f"outputs cut at {at} with finish_reason length ({len(truncated)} truncated): "
                    "a gateway capping generation")
        if len(cut) * 2 >= len(truncated):
            return f"streams cut at {at} without a finish ({len(cut)} cut): a proxy or timeout cutting long responses"
        return f"outputs end early at {at} with finish_reason stop ({len(truncated)} truncated)"
    problems = _tally(d.get("problem") or "" for d in wrong if d["kind"] == "no answer")
    return f"{len(wrong)} requests got no answer ({', '.join(problems)})"


def _counted(row: dict[str, Any]) -> str:
    """"16 corrupted (median divergence ≈ token 8192), 2 exact": one rung's copies for reports."""
    parts = []
    for kind in KINDS:
        if not row[kind]:
            continue
        text = f"{row[kind]} {kind}"
        if kind == "corrupted" and row["median_divergence_token"] is not None:
            text += f" (median divergence ≈ token {row['median_divergence_token']})"
        elif kind == "truncated" and row["median_truncation_tokens"] is not None:
            text += f" (median end at {row['median_truncation_tokens']:.0f} tokens, {_by(row['truncated_by'])})"
        parts.append(text)
    return ", ".join(parts) or "none yet"


def _by(tally: dict[str, int]) -> str:
    return ", ".join(f"{'cut' if reason == 'cut' else 'finish_reason ' + reason} {n}" for reason, n in tally.items())


def _divergence(data: dict[str, Any], scale: float) -> float:
    """A corrupted copy's divergence in the vendor's tokens: its own, else kvv's estimate scaled."""
    at = data["diverges_at"]
    return at["token"] if at.get("token") is not None else at["token_estimate"] * scale


def _median(values: list[Any]) -> float | None:
    known = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.median(known) if known else None


def _tally(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _tokens(n: float) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else f"{n:.0f}"


CHECKS = [
    ladder.ladder_check(
        PROBE, "Long outputs copied exactly at every length up to the output limit",
        "KV-cache or quantisation faults that garble long outputs after N tokens, and gateways that cap or "
        "cut generation (finish_reason length, streams cut), named with the length where they start",
        build, {"rungs": []}, rungs_of, "exact copying", describe, left_out=left_out),
]
