"""context-depth: facts planted at depths of long synthetic contexts, recalled one question each.

A context is seeded filler sentences (words of kvv/data/probe-words.txt) with two facts planted
in it, "The access code of <word>-<n> is K7RQ-2M4X." — values nobody can guess — at depths of
the context (default 5 %, 50 %, 95 %; option or profile `depths`). The ladder climbs prompt
lengths (default 8k … 1M tokens; `rungs`), up to the profile's `limits.context-tokens` and
`--max-prompt-tokens` (default 131072): rungs above either are left out, and the plan says so.
An item asks for the first fact; its score is whether the value came back.

What the probe reads besides recall (`describe`; a `finding` fails it whatever the rates):
  - recall by depth: a front cut loses the 5 % facts, a middle cut the 50 % facts;
  - silent truncation: usage.prompt_tokens must grow with what was sent. Each item's reported
    count is compared with what its characters should count (at the first rung's ratio); a
    rung whose median falls below TRUNCATED of that is where truncation starts (a plateau or
    a drop), and the depths lost there say whether the front or the middle was cut;
  - prefix-cache consistency: each rung's first item asks a second question on the very same
    prefix (the second fact); a reply with the first fact's value is a stale cache;
  - over the limit: one request a little over the profile's context limit must be refused
    (the profile's rejection statuses, 400), not truncated and answered. It is sent only when
    --max-prompt-tokens allows a prompt that long (1M+ tokens for K3); else the details say so.
    (A short prompt with max_tokens beyond the limit is not sent: vendors legitimately clamp
    max_tokens, so it proves nothing about the context.)

Token estimates. Before sending, kvv sizes a context from a chars-per-token ratio:
DEFAULT_CHARS_PER_TOKEN (a BPE tokenizer on the filler's common English words) until the vendor
has answered a first-rung item, then the ratio its `usage.prompt_tokens` shows over the first
rung's items (characters sent / tokens reported, pooled, clamped to RATIO_BOUNDS). Items of
longer rungs wait for that calibration while a first-rung item is in flight; with none to wait
for (resumed or sharded runs) one sends a short calibration request itself (at most one a run).
Item digests cover the target length, depth, item and seed, never the text, so --resume reuses
them however the calibration turned out. The first rung's instructions, question and facts count
a little denser than filler, so longer rungs come out slightly short (< 1 % from the default 8k
first rung). A rung at the context limit is filled to AT_LIMIT of (limit − answer budget),
leaving room for the estimate's error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import statistics
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..exchange import Exchange
from ..verdict import ERROR, FAIL, PASS
from . import ladder
from .base import Context, Item, NotApplicable, Outcome, Send, answer_problem, transport_problem
from .ladder import Rung

PROBE = "context-depth"
DEFAULT_RUNGS = [8192, 32768, 131072, 262144, 1048576]
DEFAULT_DEPTHS = [0.05, 0.5, 0.95]
# The filler's words are each about one BPE token with its leading space (kvv/data/README.md) and
# average ~4.3 letters: ~5.3 characters a token with the full stops. Rounded down, so a first-rung
# prompt errs short of its target, never over a limit.
DEFAULT_CHARS_PER_TOKEN = 5.0
RATIO_BOUNDS = (1.5, 12.0)         # what any tokenizer does on prose; outside it the count is not the text's
TRUNCATED = 0.85                   # reported / expected prompt tokens below this: part of the context was dropped
AT_LIMIT = 0.97                    # share of (limit − answer budget) a rung at the limit fills
OVER_LIMIT = 1.10                  # the over-limit request's length, times the limit
CALIBRATION_TOKENS = 2048          # the fallback calibration request's length
ANSWER_TOKENS = {"non-thinking": 64, "thinking": 2048}
WORDS_FILE = Path(__file__).resolve().parent.parent / "data" / "probe-words.txt"
EVIDENCE_CHARS = (2000, 400)       # head and tail of a context kept in a report's evidence
CODE_ALPHABET = "ACDEFGHJKLMNPQRTUVWXY34679"      # no 0/O, 1/I/L, 2/Z, 5/S, 8/B look-alikes

PREAMBLE = ("The notes below hide a few access codes among unrelated sentences. Read all of them: "
            "a question about one code follows.\n\n")
QUESTION = "\n\nQuestion: what is the access code of {key}? Answer with the code only."
FACT = "The access code of {key} is {value}."


# -- the ladder ------------------------------------------------------------------------------

def label(size: int) -> str:
    """"8k tokens", "1M tokens", "1000 tokens"."""
    if size % 1048576 == 0:
        return f"{size // 1048576}M tokens"
    if size % 1024 == 0:
        return f"{size // 1024}k tokens"
    return f"{size} tokens"


def _limit(ctx: Context) -> int | None:
    return (ctx.profile.limits or {}).get("context-tokens")


def left_out(ctx: Context) -> list[tuple[int, str]]:
    """The configured rungs this run leaves out, each with why and how to include it."""
    out = []
    limit = _limit(ctx)
    for size in sorted(set(ladder.sizes(ctx, PROBE, "rungs", DEFAULT_RUNGS))):
        if limit and size > limit:
            out.append((size, f"above the profile's context limit of {limit:,} tokens (limits.context-tokens "
                              "in a profile of your own raises it)"))
        elif ctx.max_prompt_tokens and size > ctx.max_prompt_tokens:
            out.append((size, f"above --max-prompt-tokens {ctx.max_prompt_tokens:,} (--max-prompt-tokens "
                              f"{size} includes it)"))
    return out


def rungs_of(ctx: Context) -> list[Rung]:
    skipped = {size for size, _ in left_out(ctx)}
    return [Rung(label(size), size) for size in sorted(set(ladder.sizes(ctx, PROBE, "rungs", DEFAULT_RUNGS)))
            if size not in skipped]


def depths(ctx: Context) -> list[float]:
    value = ladder.setting(ctx, PROBE, "depths", DEFAULT_DEPTHS)
    if not isinstance(value, list) or not value or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1 for v in value):
        from_options = bool(ctx.options.get("depths"))
        raise ConfigError(f"expected a non-empty list of fractions in (0, 1], got {value!r}",
                          source="config" if from_options else ctx.profile.path,
                          path=f"checks.{PROBE}.depths" if from_options else f"probes.{PROBE}.depths")
    return [float(v) for v in value]


def _mode(ctx: Context) -> str:
    """Recall needs no reasoning: non-thinking where the model has it (a small answer budget)."""
    return "non-thinking" if "non-thinking" in ctx.modes() else ctx.modes()[0]


def _budget(mode: str) -> int:
    return ANSWER_TOKENS.get(mode, ANSWER_TOKENS["thinking"])


def _target(ctx: Context, size: int, budget: int) -> int:
    """The prompt tokens a rung's contexts are built to."""
    limit = _limit(ctx)
    return min(size, int((limit - budget) * AT_LIMIT)) if limit and size + budget > limit else size


def _over_limit_tokens(ctx: Context) -> int | None:
    limit = _limit(ctx)
    return int(limit * OVER_LIMIT) if limit else None


# -- contexts --------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """The filler's words: kvv/data/probe-words.txt, else seeded pronounceable non-words."""
    if WORDS_FILE.is_file():
        words = tuple(w.strip().lower() for w in WORDS_FILE.read_text(encoding="utf-8").split()
                      if w.strip().isalpha())
        if len(words) >= 100:
            return words
    rng = random.Random("kvv:context-depth:words")
    onsets, vowels, codas = "bcdfghjklmnprstvw", "aeiou", ["", "n", "r", "s", "t", "l"]
    return tuple("".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas)
                         for _ in range(rng.randint(1, 3))) for _ in range(2000))


def _fact(seed_key: str, which: int) -> tuple[str, str]:
    """(key, value) of an item's `which`-th fact."""
    rng = random.Random(f"{seed_key}:fact:{which}")
    key = f"{rng.choice(vocabulary())}-{rng.randint(100, 999)}"
    value = "".join(rng.choice(CODE_ALPHABET) for _ in range(4)) + "-" + \
        "".join(rng.choice(CODE_ALPHABET) for _ in range(4))
    return key, value


def context_text(seed_key: str, chars: int, facts: list[tuple[float, str]]) -> str:
    """Seeded filler sentences of about `chars` characters, with each (depth, sentence) of
    `facts` planted at that fraction of them. A pure function of its arguments."""
    rng, words = random.Random(f"{seed_key}:filler"), vocabulary()
    sentences: list[str] = []
    total = sum(len(fact) + 1 for _, fact in facts)
    while total < chars:
        sentence = " ".join(rng.choices(words, k=rng.randint(6, 14)))
        sentence = sentence[0].upper() + sentence[1:] + "."
        sentences.append(sentence)
        total += len(sentence) + 1
    for depth, fact in sorted(facts, reverse=True):      # the deepest first: shallower positions hold
        sentences.insert(round(depth * len(sentences)), fact)
    return " ".join(sentences)


def prompt(seed_key: str, tokens: int, ratio: float, facts: list[tuple[float, str, str]], asked: str) -> str:
    """The whole prompt for `tokens` prompt tokens at `ratio` chars a token: preamble, context
    with the facts (depth, key, value), question about `asked`."""
    question = QUESTION.format(key=asked)
    chars = max(0, int(tokens * ratio) - len(PREAMBLE) - len(question))
    planted = [(depth, FACT.format(key=key, value=value)) for depth, key, value in facts]
    return PREAMBLE + context_text(seed_key, chars, planted) + question


# -- calibration -----------------------------------------------------------------------------

def _clamped(ratio: float) -> float:
    return min(max(ratio, RATIO_BOUNDS[0]), RATIO_BOUNDS[1])


class Calibration:
    """Chars per prompt token, learnt from the vendor's usage on the first rung (shared by a
    run's items; built with them, so a new plan starts afresh)."""

    def __init__(self) -> None:
        self.chars = 0
        self.tokens = 0
        self.in_flight = 0          # first-rung items (or the calibration request) awaiting an answer
        self.gave_up = False        # the calibration request found no usage: the default stays
        self._changed: asyncio.Event | None = None

    @property
    def ratio(self) -> float | None:
        return _clamped(self.chars / self.tokens) if self.tokens else None

    def current(self) -> float:
        return self.ratio or DEFAULT_CHARS_PER_TOKEN

    def learn(self, chars: int, ex: Exchange | None) -> None:
        tokens = (ex.usage or {}).get("prompt_tokens") if ex is not None and ex.ok else None
        if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0:
            self.chars += chars
            self.tokens += tokens

    def begin(self) -> None:
        self.in_flight += 1

    def end(self) -> None:
        self.in_flight -= 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def settled(self, send: Send, ctx: Context, mode: str) -> float:
        """The ratio a longer item sizes its context with: once the first rung has answered."""
        while self.ratio is None and self.in_flight:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()
        if self.ratio is None and not self.gave_up:
            self.begin()
            try:
                text = prompt(f"{ctx.seed}:{PROBE}:calibration", CALIBRATION_TOKENS, DEFAULT_CHARS_PER_TOKEN, [],
                              "nothing")
                ex = await send(ctx.body(mode, text, max_tokens=_budget(mode)))
                self.learn(len(text), ex)
                self.gave_up = self.ratio is None
            finally:
                self.end()
        return self.current()


# -- items -----------------------------------------------------------------------------------

def _build(ctx: Context) -> list[Item]:
    rungs = rungs_of(ctx)
    if not rungs:
        raise NotApplicable("every context-depth rung is left out: " +
                            "; ".join(f"{label(size)} is {why}" for size, why in left_out(ctx)))
    at, mode = depths(ctx), _mode(ctx)
    budget, per_rung = _budget(mode), ladder.items_per_rung(ctx, PROBE)
    sends = 2 if ctx.reference else 1
    calibration = Calibration()
    table = []
    for position, rung in enumerate(rungs):
        target = _target(ctx, rung.size, budget)
        items = []
        for k in range(per_rung):
            depth = at[k % len(at)]
            # The second fact sits at the next depth (just after the first with one depth configured).
            second = at[(k + 1) % len(at)] if len(at) > 1 else min(depth + 0.01, 1.0)
            cached = k == 0              # each rung's first item also checks the prefix cache
            requests = sends + (1 if cached else 0)
            expects = {"target_tokens": target, "depth": depth, "second_depth": second, "item": k,
                       "seed": ctx.seed, "mode": mode, "max_tokens": budget, "prefix_check": cached}
            items.append(Item(f"{rung.label}, item {k + 1} at {depth:.0%}", [], mode=mode, rung=rung.label,
                              token_ceiling=budget * requests, request_count=requests,
                              prompt_tokens=target * requests, expects=expects,
                              run=_recall(ctx, rung, expects, calibration, first=position == 0)))
        table.append(items)
    planned = ladder.interleaved(table)
    over = _over_limit_tokens(ctx)
    if over and ctx.max_prompt_tokens and over <= ctx.max_prompt_tokens:
        # After the first round, so early stopping never leaves it out.
        expects = {"target_tokens": over, "seed": ctx.seed, "mode": mode, "max_tokens": budget, "over_limit": True}
        planned.insert(len(rungs), Item(f"over the limit: {label(over)}", [], mode=mode, token_ceiling=budget,
                                        request_count=1, prompt_tokens=over, expects=expects,
                                        run=_over_limit(ctx, expects, calibration)))
    return planned


def _seed_key(ctx: Context, expects: dict[str, Any]) -> str:
    return f"{ctx.seed}:{PROBE}:{expects['target_tokens']}:{expects.get('item', 'over')}"


def _recall(ctx: Context, rung: Rung, expects: dict[str, Any], calibration: Calibration, *, first: bool):
    seed_key, mode = _seed_key(ctx, expects), expects["mode"]
    (key, value), (key2, value2) = _fact(seed_key, 1), _fact(seed_key, 2)
    facts = [(expects["depth"], key, value), (expects["second_depth"], key2, value2)]

    async def run(send: Send) -> Outcome:
        calibrated = calibration.ratio is not None
        if first:
            ratio = calibration.current()
            calibration.begin()
        else:
            ratio = await calibration.settled(send, ctx, mode)
            calibrated = calibration.ratio is not None
        text = prompt(seed_key, expects["target_tokens"], ratio, facts, key)
        body = ctx.body(mode, text, max_tokens=expects["max_tokens"])
        try:
            vendor, reference = await ladder.sent(send, body, ctx)
            if first:
                calibration.learn(len(text), vendor)
        finally:
            if first:
                calibration.end()
        data: dict[str, Any] = {"rung": rung.label, "depth": expects["depth"],
                                "target_tokens": expects["target_tokens"],
                                "chars": len(text), "chars_per_token": round(ratio, 4), "calibrated": calibrated,
                                "estimated_tokens": round(len(text) / ratio), "key": key, "expected": value}
        score, facts_seen = _scored(vendor, value)
        data.update(facts_seen)
        theirs = None
        if reference is not None:
            theirs, _ = _scored(reference, value)
            data["reference_score"] = theirs
        data["score"] = score if (reference is None or theirs is not None) else None
        if score is None:
            return Outcome(ERROR, f"{rung.label}, {expects['depth']:.0%}: {facts_seen['trouble']}", _evidence(vendor),
                           data)
        if reference is not None and theirs is None:
            return Outcome(ERROR, f"{rung.label}: the reference endpoint did not answer", _evidence(reference), data)
        said = f"no answer: {data['no_answer']}" if data.get("no_answer") else f"answered {data['answered']!r}"
        message = (f"{rung.label}, fact at {expects['depth']:.0%}: {'recalled' if score else 'not recalled'} "
                   f"({said}, expected {value}); prompt_tokens {data['prompt_tokens']} "
                   f"for ≈ {data['estimated_tokens']:,} sent")
        if expects["prefix_check"] and score is not None:
            second = await send(ctx.body(mode, text.rsplit(QUESTION.format(key=key), 1)[0] + QUESTION.format(key=key2),
                                         max_tokens=expects["max_tokens"]))
            data["second"] = _second(second, value, value2, expects["second_depth"])
            message += f"; same prefix, second question: {data['second']['reading']}"
        if data.get("second", {}).get("stale"):
            return Outcome(FAIL, message, _evidence(second), data)
        return Outcome(PASS if score else FAIL, message, _evidence(vendor), data)
    return run


def _evidence(ex: Exchange) -> Exchange:
    """The exchange as a report keeps it: a context of up to millions of characters cut to its
    head and tail (kvv rebuilds the whole from --seed; its curl line would be megabytes)."""
    head, tail = EVIDENCE_CHARS
    messages = []
    for message in ex.request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and len(content) > head + tail:
            content = (content[:head] + f" … [{len(content) - head - tail:,} characters of seeded filler left out "
                       f"here; kvv rebuilds them from --seed] … " + content[-tail:])
            message = {**message, "content": content}
        messages.append(message)
    return dataclasses.replace(ex, request={**ex.request, "messages": messages})


def _scored(ex: Exchange, value: str) -> tuple[float | None, dict[str, Any]]:
    """(1.0 recalled / 0.0 not / None unknown, facts) for one endpoint's answer."""
    usage = ex.usage or {}
    facts: dict[str, Any] = {"prompt_tokens": usage.get("prompt_tokens"), "status": ex.status,
                             "finish_reason": ex.finish_reason}
    problem = transport_problem(ex)
    if problem is not None and problem.verdict == ERROR:
        return None, {**facts, "trouble": problem.message}
    unanswered = answer_problem(ex) if problem is None else problem.message
    text = (ex.message.content or "") if unanswered is None and ex.message else ""
    facts["answered"] = _excerpt(text)
    if unanswered is not None:
        facts["no_answer"] = unanswered
    return (1.0 if _says(text, value) else 0.0), facts


def _says(text: str, value: str) -> bool:
    return value in re.sub(r"\s+", "", str(text)).upper()


def _excerpt(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 80 else text[:77] + "…"


def _second(ex: Exchange, first: str, second: str, depth: float) -> dict[str, Any]:
    problem = transport_problem(ex) or (None if ex.ok else answer_problem(ex))
    if problem is not None:
        trouble = problem if isinstance(problem, str) else problem.message
        return {"depth": depth, "score": None, "stale": False, "reading": f"not answered ({trouble})"}
    text = (ex.message.content or "") if ex.message else ""
    got, stale = _says(text, second), _says(text, first) and not _says(text, second)
    reading = ("the second fact, as it should" if got else
               "the FIRST question's value: a stale prefix cache" if stale else f"neither fact ({_excerpt(text)!r})")
    return {"depth": depth, "score": 1.0 if got else 0.0, "stale": stale, "answered": _excerpt(text),
            "prompt_tokens": (ex.usage or {}).get("prompt_tokens"), "reading": reading}


def _over_limit(ctx: Context, expects: dict[str, Any], calibration: Calibration):
    limit, statuses = _limit(ctx), tuple(ctx.profile.rejection_statuses or (400,))
    assert limit is not None   # this item is built only where the profile sets a limit (_over_limit_tokens)

    async def run(send: Send) -> Outcome:
        ratio = await calibration.settled(send, ctx, expects["mode"])
        text = prompt(_seed_key(ctx, expects), expects["target_tokens"], ratio, [], "nobody")
        ex = await send(ctx.body(expects["mode"], text, max_tokens=expects["max_tokens"]))
        estimated = round(len(text) / ratio)
        data = {"rung": None, "score": None, "over_limit": True, "limit": limit, "estimated_tokens": estimated,
                "status": ex.status, "prompt_tokens": (ex.usage or {}).get("prompt_tokens")}
        problem = transport_problem(ex)
        ex = _evidence(ex)
        if problem is not None and problem.verdict == ERROR:
            return Outcome(ERROR, f"over the limit: {problem.message}", ex, data)
        if ex.status in statuses:
            data["refused"] = True
            return Outcome(PASS, f"≈ {estimated:,} prompt tokens, over the limit of {limit:,}: refused with HTTP "
                                 f"{ex.status}, as it should be", ex, data)
        data["refused"] = False
        reported = data["prompt_tokens"]
        how = (f"reporting {reported:,} prompt tokens (silently truncated to fit)"
               if isinstance(reported, int) and reported <= limit else
               f"reporting {reported} prompt tokens")
        return Outcome(FAIL, f"≈ {estimated:,} prompt tokens, over the limit of {limit:,}: answered with HTTP "
                             f"{ex.status}, {how}, not refused", ex, data)
    return run


# -- the probe's reading ---------------------------------------------------------------------

def _rung_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r.get("data") or {} for r in records if (r.get("data") or {}).get("rung")]


def _yardstick(data: list[dict[str, Any]], first: str | None) -> float | None:
    """Chars per token the vendor's own counts show on the first rung (as the run calibrated)."""
    base = [d for d in data if d.get("rung") == first and isinstance(d.get("prompt_tokens"), int)
            and d["prompt_tokens"] > 0]
    if base:
        return _clamped(sum(d["chars"] for d in base) / sum(d["prompt_tokens"] for d in base))
    used = [d["chars_per_token"] for d in data if d.get("calibrated") and d.get("chars_per_token")]
    return statistics.median(used) if used else None


def _growth(data: list[dict[str, Any]], rungs: list[Rung]) -> list[dict[str, Any]]:
    """Per rung: median reported / expected prompt tokens, the expected ones from the chars sent."""
    ratio = _yardstick(data, rungs[0].label if rungs else None)
    rows = []
    for rung in rungs:
        seen = [d for d in data if d.get("rung") == rung.label and isinstance(d.get("prompt_tokens"), int)
                and d.get("chars")]
        if not seen or ratio is None:
            continue
        expected = statistics.median(d["chars"] / ratio for d in seen)
        reported = statistics.median(d["prompt_tokens"] for d in seen)
        rows.append({"rung": rung.label, "sent": round(expected), "reported": round(reported),
                     "share": round(reported / expected, 3), "items": len(seen)})
    return rows


def _recall_by_depth(data: list[dict[str, Any]], rungs: list[Rung]) -> dict[str, dict[str, dict[str, Any]]]:
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for rung in rungs:
        for d in data:
            if d.get("rung") != rung.label or d.get("score") is None:
                continue
            cell = table.setdefault(rung.label, {}).setdefault(f"{d['depth']:.0%}", {"recalled": 0, "items": 0})
            cell["items"] += 1
            cell["recalled"] += int(d["score"])
    return table


def _lost(cells: dict[str, dict[str, Any]]) -> list[str]:
    """Depths (as "5%") whose facts are mostly lost at a rung."""
    return [depth for depth, cell in cells.items() if cell["items"] and cell["recalled"] / cell["items"] < 0.5]


def _cut(lost: list[str], present: list[str]) -> str:
    """Which part of the context was cut, from the depths lost at a rung."""
    if not present:
        return "no fact was asked"
    order = sorted(present, key=_percent)
    front, end = order[0], order[-1]
    middle = min(order, key=lambda d: abs(_percent(d) - 50))
    facts = f"the {', '.join(sorted(lost, key=_percent))} facts are lost"
    if not lost:
        return "no planted fact was lost"
    if set(lost) >= set(order):
        return "every planted fact was lost"
    if front in lost and end not in lost:
        return f"the front was cut ({facts})"
    if middle in lost and front not in lost and end not in lost:
        return f"the middle was cut ({facts})"
    if end in lost and front not in lost:
        return f"the end was cut ({facts})"
    return facts


def _percent(depth: str) -> float:
    return float(depth.rstrip("%"))


def describe(records: list[dict[str, Any]], ctx: Context, broken: Rung | None) -> tuple[dict[str, Any], str]:
    rungs, data = rungs_of(ctx), _rung_records(records)
    details: dict[str, Any] = {"depths": depths(ctx)}
    clauses, findings = [], []
    by_depth = _recall_by_depth(data, rungs)
    details["recall_by_depth"] = by_depth
    growth = _growth(data, rungs)
    details["prompt_tokens_growth"] = growth
    truncated = [row for row in growth if row["share"] < TRUNCATED]
    if truncated:
        start = truncated[0]
        # The first truncated rung that lost a fact says which part goes (longer ones lose more of it).
        cuts = [_cut(_lost(by_depth.get(row["rung"], {})), list(by_depth.get(row["rung"], {}))) for row in truncated]
        cut = next((c for c in cuts if c != "no planted fact was lost"), cuts[0])
        details["truncation"] = {"starts_at": start["rung"], "reported": start["reported"], "sent": start["sent"],
                                 "cut": cut}
        findings.append(f"silent truncation from {start['rung']} on: usage.prompt_tokens {start['reported']:,} for "
                        f"≈ {start['sent']:,} tokens sent (it stops growing with the prompt); {cut}")
    else:
        lost_at = [(rung.label, _lost(by_depth.get(rung.label, {}))) for rung in rungs]
        lost_at = [(name, lost) for name, lost in lost_at if lost]
        if lost_at:
            name, lost = lost_at[0]
            clauses.append(f"from {name} on, {_cut(lost, list(by_depth.get(name, {})))}")
        elif growth:
            clauses.append("prompt_tokens grow with what was sent")
        elif data:
            clauses.append("no usage.prompt_tokens reported: truncation not measured")
    pairs = [(d["rung"], d["second"]) for d in data if d.get("second")]
    if pairs:
        stale = [name for name, second in pairs if second.get("stale")]
        details["prefix_cache"] = {"pairs": len(pairs), "stale": len(stale),
                                   "second_recalled": sum(1 for _, s in pairs if s.get("score") == 1.0)}
        if stale:
            first = next(r.label for r in rungs if r.label in stale)
            findings.append(f"stale prefix cache at {first}: a second question on the same prefix was answered "
                            f"with the first question's value ({len(stale)} of {len(pairs)} pairs)")
        else:
            clauses.append(f"prefix cache consistent ({len(pairs)} pairs)")
    over = [r.get("data") or {} for r in records if (r.get("data") or {}).get("over_limit")]
    needed = _over_limit_tokens(ctx)
    if over and over[0].get("refused") is not None:
        details["over_limit"] = over[0]
        if over[0]["refused"]:
            clauses.append(f"over-limit request refused (HTTP {over[0]['status']})")
        else:
            findings.append(f"a request over the context limit ({over[0]['estimated_tokens']:,} tokens, limit "
                            f"{over[0]['limit']:,}) was answered with HTTP {over[0]['status']}, not refused")
    elif over:
        details["over_limit"] = "sent, no answer (see its item)"
    elif needed:
        details["over_limit"] = f"not sent: {_over_limit_left_out(ctx)}"
    if findings:
        details["finding"] = "; ".join(findings)
    return details, "; ".join(clauses)


def _over_limit_left_out(ctx: Context) -> str:
    needed = _over_limit_tokens(ctx)
    return (f"a prompt over the limit of {_limit(ctx):,} tokens (≈ {needed:,}) needs --max-prompt-tokens {needed}")


def left_out_phrases(ctx: Context) -> list[str]:
    """For the summary and `kvv plan` (kvv.checks.ladder): rungs left out, and the over-limit request."""
    phrases = [f"{label(size)}: {why}" for size, why in left_out(ctx)]
    needed = _over_limit_tokens(ctx)
    if needed and not (ctx.max_prompt_tokens and needed <= ctx.max_prompt_tokens):
        phrases.append(f"the over-limit request: {_over_limit_left_out(ctx)}")
    return phrases


def plan_notes(planned: Any) -> list[str]:
    """What `kvv plan` says besides the rung table: the over-limit request it sends (in no rung)."""
    if planned.check.id != PROBE:
        return []
    over = [item for item in planned.items if (item.expects or {}).get("over_limit")]
    return [f"{PROBE} also sends one request of ≈ {item.prompt_tokens:,} prompt tokens, over the context limit of "
            f"{_limit(planned.context):,}: it must be refused" for item in over]


FINDING_ROUNDS = 2     # rounds of every depth at every rung before a finding stops the probe early


def _settled(rates: Any):
    """The ladder's rule (every rung decided, or a failure above rungs that passed), or a finding
    (truncation, a stale cache, an over-limit answer: contract faults, not rates) seen once every
    rung has FINDING_ROUNDS rounds of its depths, enough to say where it starts and what was cut.
    A vendor shown truncating is not sent 40 more long contexts per rung."""

    def decide(records: list[dict[str, Any]], ctx: Context) -> bool:
        if rates(records, ctx):                     # always called: it feeds its tests incrementally
            return True
        need = FINDING_ROUNDS * len(depths(ctx))
        counts: dict[str, int] = {}
        for data in _rung_records(records):
            counts[data["rung"]] = counts.get(data["rung"], 0) + 1
        if any(counts.get(rung.label, 0) < need for rung in rungs_of(ctx)):
            return False
        return "finding" in describe(records, ctx, None)[0]
    return decide


CHECK = ladder.ladder_check(
    PROBE, "Facts planted in long contexts are recalled; prompt_tokens, prefix cache and the context limit hold",
    "silent context truncation (front or middle cut, prompt_tokens that stop growing), a stale prefix cache, "
    "over-limit prompts answered instead of refused, long-context recall lost at depth",
    _build, {"rungs": [], "depths": []}, rungs_of, "recall", describe, left_out=left_out_phrases)
CHECK.settled = _settled(CHECK.settled)
CHECKS = [CHECK]
