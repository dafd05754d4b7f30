"""BEAM, the long-context memory benchmark, as a check: questions about a chat of up to a million
tokens, answered by the vendor and scored by a judge model, rubric item by rubric item.

Data. Upstream's converted format (docs/upstream.md §1.11), from local files: `dataset`, chats
JSONL or JSONL.gz with one `{chat_id, messages: [{role, content}]}` per line, and `questions`,
JSONL with `{chat_id, question_type, question_index, question, gold_answer, rubric, difficulty}`.
Both are read line by line (gzip through the gzip module); a bad line exits 2 naming the file,
the line and the field. The dataset viewer API is no way to get them: BEAM's Hugging Face rows
(`Mohammadta/BEAM`) hold a whole chat in one cell, which the viewer truncates, and in another
layout than upstream's converted one; without both files the check is not applicable and says
which options to set.

Request (upstream's beam_generate.py). The chat's user/assistant turns, flattened, with no system
prompt, then one user message: "NOTE: Only provide the answer without any explanations." and
"Question: …"; temperature, top_p, max_tokens and thinking from the profile's
`benchmarks.beam.modes`.

Truncation. Upstream drops whole messages from the front until the content tokens fit
`context-tokens − max_tokens − 5000`, then drops on to the first user turn, counting with a
bundled tokenizer. kvv bundles none, so it estimates: tokens = characters / ratio, the ratio
starting at DEFAULT_CHARS_PER_TOKEN (4, typical of English text in a BPE vocabulary) and then
replaced by the vendor's own: the characters kvv sent over the `usage.prompt_tokens` it reported,
summed over the answers so far (clamped to [1, 8]). If the vendor still refuses a prompt for its
length (HTTP 400 naming the context or the length), kvv drops more, to SHRINK of the tokens
just sent, at most CONTEXT_RETRIES times; a prompt still refused is a finding, since it is within
the context the profile says the model serves. Each item records the messages dropped.

Judge. Any OpenAI-compatible model (`--judge-base-url`, `--judge-model`, key KVV_JUDGE_API_KEY;
parameters from the profile's `benchmarks.beam.judge`). Without one the check is not applicable,
unless the vendor is kvv's simulator, which then judges its own answers (kvv.simulator.beam). One
call per rubric item (question, criterion, response; JSON `{score: 1.0|0.5|0.0, reason}`);
event_ordering gets one strict call over the whole expected order (1.0 or 0.0); an empty answer
to any question but an abstention one scores 0 without a call. Upstream scores an unparseable or
failed judge reply 0; kvv makes the item an error (it could not score it) and counts them.

Scoring. Question score = mean over its rubric items, twice: upstream's integer scoring
(`int(float(score))`, so 0.5 counts as 0) and the fractional one. The verdict judges the integer
score, because the profile's reference (K3: 0.31, n = 700) came from upstream's scoring, with the
benchmarks' anytime-valid test (kvv.checks.bench: seeded draws with replacement, early stopping,
`--reference-base-url` paired mode); both means and the per-ability (question_type) means are in
the details.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import math
import random
import re
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from ..benchmarks.base import Params, body as request_body
from ..errors import ConfigError
from ..exchange import Exchange
from ..verdict import ERROR, FAIL, PASS
from . import bench
from .base import (Check, Context, Item, NotApplicable, Outcome, Send, Summary, answer_problem, error_message,
                   transport_problem)

CHECK_ID = "beam"
OPTIONS = {"dataset": None, "questions": None, "max-items": 0, "seed": 0, "reference": 0.0, "reference-n": 0,
           "tolerance": 0.0, "max-tokens": 0, "context-tokens": 0}     # 0: the profile's (seed: the run's --seed)

NOTE = "NOTE: Only provide the answer without any explanations."
SAFETY_TOKENS = 5000               # upstream's margin below the context limit
DEFAULT_CHARS_PER_TOKEN = 4.0      # before the vendor has reported any prompt_tokens
RATIO_BOUNDS = (1.0, 8.0)
CONTEXT_RETRIES = 3                # re-sends after a refusal for length
SHRINK = 0.8                       # each re-send fits this share of the tokens the refused one sent
REFUSED_FOR_LENGTH = re.compile(r"context|too long|too many tokens|maximum.{0,40}tokens|length|too large",
                                re.IGNORECASE)
ABSTENTION = "abstention"
EVENT_ORDERING = "event_ordering"
ANSWER_EXCERPT = 300

# The judge's prompts (upstream's content: question, criterion, response, a JSON score). The
# simulator recognises them by RUBRIC_OPENING / ORDER_OPENING and reads the sections back.
RUBRIC_OPENING = "You are grading an assistant's answer to a question about a long conversation with a user."
ORDER_OPENING = ("You are grading, strictly, an assistant's answer to a question about the order of events "
                 "in a long conversation with a user.")
RUBRIC_PROMPT = RUBRIC_OPENING + """

Question:
{question}

Rubric criterion:
{criterion}

Response:
{response}

Does the response satisfy the rubric criterion? Score 1.0 if it fully does, 0.5 if it partly does, 0.0 if it does not.
Reply with only a JSON object: {{"score": 1.0 | 0.5 | 0.0, "reason": "<one sentence>"}}"""
ORDER_PROMPT = ORDER_OPENING + """

Question:
{question}

Expected order of events:
{events}

Response:
{response}

Score 1.0 only if the response names every expected event and puts them in exactly this order; otherwise 0.0.
Reply with only a JSON object: {{"score": 1.0 | 0.0, "reason": "<one sentence>"}}"""


# -- the files --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Question:
    chat_id: str
    question_type: str
    question_index: int
    question: str
    gold_answer: Any
    rubric: tuple[str, ...]
    difficulty: Any
    line: int

    @property
    def key(self) -> str:
        """Upstream's resume key."""
        return f"{self.chat_id}|{self.question_type}|{self.question_index}"


def _records(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file, gzipped if it ends in .gz."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise ConfigError(f"not JSON ({exc}); expected one JSON object per line",
                                      source=path, path=f"line {number}") from None
                if not isinstance(record, dict):
                    raise ConfigError(f"expected a JSON object, got {type(record).__name__}",
                                      source=path, path=f"line {number}")
                yield number, record
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read it: {exc}", source=path) from None


def _field(record: dict[str, Any], name: str, kind: type | tuple, path: str, number: int, what: str) -> Any:
    value = record.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        raise ConfigError(f"expected {what}, got {json.dumps(value)[:80] if name in record else 'nothing'}",
                          source=path, path=f"line {number}: {name}")
    return value


def read_questions(path: str) -> list[Question]:
    questions = []
    for number, record in _records(path):
        chat_id = _field(record, "chat_id", (str, int), path, number, "a chat id (string or integer)")
        rubric = record.get("rubric")
        if isinstance(rubric, str):          # a lone criterion is a rubric of one
            rubric = [rubric]
        if not isinstance(rubric, list) or not rubric or not all(isinstance(r, str) and r.strip() for r in rubric):
            raise ConfigError(f"expected a non-empty list of criteria (strings), got {json.dumps(rubric)[:80]}",
                              source=path, path=f"line {number}: rubric")
        if "gold_answer" not in record:
            raise ConfigError("expected the gold answer, got nothing", source=path, path=f"line {number}: gold_answer")
        questions.append(Question(
            str(chat_id), _field(record, "question_type", str, path, number, "the ability (a string)"),
            _field(record, "question_index", int, path, number, "an integer"),
            _field(record, "question", str, path, number, "the question (a non-empty string)"),
            record["gold_answer"], tuple(rubric), record.get("difficulty"), number))
    if not questions:
        raise ConfigError("no questions in it; expected one JSON object per line", source=path)
    return questions


def read_chats(path: str, wanted: set[str]) -> dict[str, list[dict[str, str]]]:
    """The chats whose ids are in `wanted` (every line is checked; only those are kept), as
    role/content messages."""
    chats: dict[str, list[dict[str, str]]] = {}
    seen: set[str] = set()
    for number, record in _records(path):
        chat_id = str(_field(record, "chat_id", (str, int), path, number, "a chat id (string or integer)"))
        if chat_id in seen:
            raise ConfigError(f"chat {chat_id} appears twice", source=path, path=f"line {number}: chat_id")
        seen.add(chat_id)
        messages = _field(record, "messages", list, path, number, "a list of messages")
        kept = []
        for k, message in enumerate(messages):
            where = f"line {number}: messages[{k}]"
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                raise ConfigError("expected a message with role user or assistant", source=path, path=where + ".role")
            if not isinstance(message.get("content"), str):
                raise ConfigError("expected the content as a string", source=path, path=where + ".content")
            kept.append({"role": message["role"], "content": message["content"]})
        if chat_id in wanted:
            chats[chat_id] = kept
    return chats


# -- truncation -------------------------------------------------------------------------------

class Ratio:
    """Characters per token: DEFAULT_CHARS_PER_TOKEN until the vendor reports prompt_tokens,
    then characters sent over tokens reported, over every answer so far."""

    def __init__(self) -> None:
        self.chars = self.tokens = 0

    @property
    def value(self) -> float:
        if not self.tokens:
            return DEFAULT_CHARS_PER_TOKEN
        return min(max(self.chars / self.tokens, RATIO_BOUNDS[0]), RATIO_BOUNDS[1])

    def learn(self, chars: int, prompt_tokens: Any) -> None:
        if isinstance(prompt_tokens, int) and not isinstance(prompt_tokens, bool) and prompt_tokens > 0:
            self.chars += chars
            self.tokens += prompt_tokens


def estimate(texts: list[str], ratio: float) -> int:
    return math.ceil(sum(len(t) for t in texts) / ratio)


def truncate(history: list[dict[str, str]], question: str, budget: int,
             ratio: float) -> tuple[list[dict[str, str]], int]:
    """(the history upstream's rule keeps, how many messages it dropped): whole messages off the
    front until history and question fit `budget` tokens, then on to the first user turn."""
    sizes = [len(m["content"]) for m in history]
    allowed = budget * ratio - len(NOTE) - len(question)
    total, start = sum(sizes), 0
    while start < len(history) and total > allowed:
        total -= sizes[start]
        start += 1
    while start < len(history) and history[start]["role"] != "user":
        start += 1
    return history[start:], start


def generation_body(history: list[dict[str, str]], question: str, params: Params) -> dict[str, Any]:
    final = {"role": "user", "content": f"{NOTE}\n\nQuestion: {question}"}
    return request_body([*history, final], params)


def _sent_chars(body: dict[str, Any]) -> int:
    return sum(len(m["content"]) for m in body["messages"])


def refused_for_length(ex: Exchange) -> bool:
    return ex.status == 400 and bool(REFUSED_FOR_LENGTH.search(error_message(ex) or ex.body_excerpt))


# -- the judge --------------------------------------------------------------------------------

class JudgeProblem(Exception):
    """The judge failed or said nothing kvv can read: the item cannot be scored."""

    def __init__(self, message: str, exchange: Exchange, unparsed: bool):
        super().__init__(message)
        self.exchange, self.unparsed = exchange, unparsed


def judge_prompts(question: Question, response: str) -> list[str]:
    """The judge calls for one answer: one per rubric item, or one strict call for event ordering."""
    if question.question_type == EVENT_ORDERING:
        events = "\n".join(f"{k}. {event}" for k, event in enumerate(question.rubric, 1))
        return [ORDER_PROMPT.format(question=question.question, events=events, response=response)]
    return [RUBRIC_PROMPT.format(question=question.question, criterion=c, response=response) for c in question.rubric]


def parse_judge(text: str | None) -> tuple[float, str] | None:
    """(score in [0, 1], reason) from the judge's reply, or None if it holds no readable score."""
    if not text:
        return None
    text = re.sub(r"^\s*```(?:json)?|```\s*$", "", text.strip())
    candidates = [text] + re.findall(r"\{[^{}]*\}", text)
    for candidate in candidates:
        try:
            reply = json.loads(candidate)
            score = float(reply["score"])
        except (ValueError, TypeError, KeyError):
            continue
        if math.isfinite(score) and 0.0 <= score <= 1.0:
            return score, str(reply.get("reason", ""))[:200]
    return None


def upstream_score(score: float) -> int:
    """Upstream's `int(float(score))`: 1.0 -> 1, 0.5 -> 0."""
    return int(float(score))


async def judged(send: Send, question: Question, response: str, params: dict[str, Any]) -> list[tuple[float, str]]:
    """(score, reason) per judge call, raising JudgeProblem when any call fails or is unreadable."""
    bodies = [{"messages": [{"role": "user", "content": prompt}], **params}
              for prompt in judge_prompts(question, response)]
    exchanges = await asyncio.gather(*(send(body, judge=True) for body in bodies))
    scores = []
    for ex in exchanges:
        problem = transport_problem(ex)
        unanswered = problem.message if problem is not None else answer_problem(ex)
        if unanswered is not None:
            raise JudgeProblem(f"judge failed: {unanswered}", ex, unparsed=False)
        parsed = parse_judge(ex.message.content if ex.message else None)
        if parsed is None:
            raise JudgeProblem(f"judge reply unparseable: {(ex.reply.content or '')[:120]!r}", ex, unparsed=True)
        scores.append(parsed)
    return scores


# -- the check --------------------------------------------------------------------------------

def _setting(ctx: Context) -> dict[str, Any]:
    entry = bench._setting(ctx, CHECK_ID)
    if ctx.options.get("context-tokens"):
        entry["context-tokens"] = ctx.options["context-tokens"]
    return entry


def build(ctx: Context) -> list[Item]:
    setting = _setting(ctx)
    if not setting.get("modes"):
        raise NotApplicable(f"profile {ctx.profile.id} runs no BEAM; a profile's `benchmarks.beam.modes` enables it")
    if not ctx.options.get("dataset") or not ctx.options.get("questions"):
        raise NotApplicable("BEAM needs its files: set checks.beam.dataset (chats JSONL or JSONL.gz) and "
                            "checks.beam.questions (questions JSONL), upstream's beam/data format; the dataset "
                            "viewer API cannot serve BEAM's million-token chats")
    if not ctx.judge and ctx.simulator is None:
        raise NotApplicable("BEAM needs a judge model: pass --judge-base-url (and --judge-model; key in "
                            "KVV_JUDGE_API_KEY)")
    mode = ctx.profile.default_mode
    per_mode = setting["modes"].get(mode)
    if per_mode is None:
        raise ConfigError(f"no parameters for mode {mode}", source=ctx.profile.path, path="benchmarks.beam.modes")
    if setting.get("max-tokens"):
        per_mode = {**per_mode, "max-tokens": setting["max-tokens"]}
    params = Params.for_mode(ctx.model, per_mode, think_mode=ctx.think_mode, mode=mode)
    context_tokens = setting.get("context-tokens") or (ctx.profile.limits or {}).get("context-tokens")
    if not context_tokens:
        raise ConfigError("no context limit for BEAM's truncation: set checks.beam.context-tokens",
                          source=ctx.profile.path, path="benchmarks.beam.context-tokens")
    budget = context_tokens - params.max_tokens - SAFETY_TOKENS
    if budget <= 0:
        raise ConfigError(f"context-tokens {context_tokens} leaves no room for a prompt after max_tokens "
                          f"{params.max_tokens} and {SAFETY_TOKENS} tokens of margin",
                          path="checks.beam.context-tokens")
    judge = setting.get("judge") or {}
    judge_params = {"temperature": judge.get("temperature", 0.3), "max_tokens": judge.get("max-tokens", 16384)}

    questions_path, chats_path = ctx.options["questions"], ctx.options["dataset"]
    questions = read_questions(questions_path)
    chats = read_chats(chats_path, {q.chat_id for q in questions})
    for q in questions:
        if q.chat_id not in chats:
            raise ConfigError(f"chat {q.chat_id} is not in {chats_path}", source=questions_path,
                              path=f"line {q.line}: chat_id")
    digests = {chat_id: hashlib.sha256(json.dumps(messages).encode()).hexdigest()[:16]
               for chat_id, messages in chats.items()}

    rng = random.Random(f"{ctx.options.get('seed') or ctx.seed}:{CHECK_ID}")
    draws = ctx.options.get("max-items") or len(questions)
    if ctx.full_pass:
        order = [i for _ in range(math.ceil(draws / len(questions)))
                 for i in rng.sample(range(len(questions)), len(questions))][:draws]
    else:
        order = [rng.randrange(len(questions)) for _ in range(draws)]
    ratio = Ratio()           # shared by the check's items: each answer corrects the estimate
    items = []
    for k, index in enumerate(order):
        q = questions[index]
        kept, _ = truncate(chats[q.chat_id], q.question, budget, DEFAULT_CHARS_PER_TOKEN)
        sends = 2 if ctx.reference else 1
        calls = 1 if q.question_type == EVENT_ORDERING else len(q.rubric)
        items.append(Item(
            f"draw {k + 1}", [], mode=mode, token_ceiling=params.max_tokens * sends,
            run=_run(q, chats[q.chat_id], params, judge_params, budget, ratio, ctx),
            request_count=sends * (1 + CONTEXT_RETRIES + calls), line=q.line,
            prompt_tokens=sends * estimate([m["content"] for m in kept] + [NOTE, q.question], DEFAULT_CHARS_PER_TOKEN),
            expects={"question": {**asdict(q), "line": None}, "chat": digests[q.chat_id], "params": asdict(params),
                     "budget": budget, "judge": judge_params}))
    return items


def _run(q: Question, history: list[dict[str, str]], params: Params, judge_params: dict[str, Any], budget: int,
         ratio: Ratio, ctx: Context):
    async def run(send: Send) -> Outcome:
        facts: dict[str, Any] = {"chat_id": q.chat_id, "question_type": q.question_type,
                                 "question_index": q.question_index, "score": None, "fractional": None}
        ex, sent, dropped, refusals = None, None, 0, 0
        limit = budget
        for _ in range(1 + CONTEXT_RETRIES):
            kept, dropped = truncate(history, q.question, limit, ratio.value)
            sent = generation_body(kept, q.question, params)
            ex = await send(sent)
            if not refused_for_length(ex):
                break
            refusals += 1
            limit = int(estimate([m["content"] for m in sent["messages"]], ratio.value) * SHRINK)
        assert ex is not None and sent is not None   # the loop above runs at least once
        chars = _sent_chars(sent)
        facts.update(dropped_messages=dropped, kept_messages=len(sent["messages"]) - 1, refusals_for_length=refusals,
                     prompt_tokens_estimated=estimate([m["content"] for m in sent["messages"]], ratio.value),
                     **bench._lengths(ex), prompt_tokens=(ex.usage or {}).get("prompt_tokens"))
        if refused_for_length(ex):
            return Outcome(FAIL, f"refused for length {refusals} times, last at ≈{facts['prompt_tokens_estimated']:,} "
                                 f"tokens, within the profile's context limit: {answer_problem(ex)}", ex,
                           {**facts, "score": 0, "fractional": 0.0, "no_answer": answer_problem(ex)})
        problem = transport_problem(ex)
        if problem is not None and problem.verdict == ERROR:
            return Outcome(ERROR, problem.message, ex, facts)
        unanswered = problem.message if problem is not None else answer_problem(ex)
        if unanswered is not None:          # refused, broken or empty: the vendor's defect, scored 0
            return Outcome(FAIL, f"no answer: {unanswered}", ex,
                           {**facts, "score": 0, "fractional": 0.0, "no_answer": unanswered})
        ratio.learn(chars, facts["prompt_tokens"])
        response = (ex.reply.content or "").strip()   # answer_problem found an answer (above)
        ours = await _scored(send, q, response, judge_params, ex, facts)
        if isinstance(ours, Outcome):
            return ours
        if ctx.reference:            # paired: the same prompt to the official endpoint, judged alike
            official = await send(sent, reference=True)
            theirs = await _reference_scored(send, q, official, judge_params)
            if isinstance(theirs, str):
                return Outcome(ERROR, f"reference endpoint: {theirs}", official, {**ours, "reference_score": None})
            ours["reference_score"] = theirs
        verdict = PASS if ours["fractional"] >= 0.5 else FAIL
        message = (f"{q.key}: score {ours['score']:.2f} upstream (integer), {ours['fractional']:.2f} fractional"
                   f" over {len(ours['rubric_scores'])} judge call(s); {dropped} message(s) dropped to fit")
        return Outcome(verdict, message, ex, ours)
    return run


async def _scored(send: Send, q: Question, response: str, judge_params: dict[str, Any], ex: Exchange,
                  facts: dict[str, Any]) -> dict[str, Any] | Outcome:
    """The item's facts with its scores, or an ERROR outcome when the judge could not score it."""
    facts = {**facts, "answer": response[:ANSWER_EXCERPT]}
    if not response and q.question_type != ABSTENTION:     # upstream: 0 without asking the judge
        return {**facts, "score": 0.0, "fractional": 0.0, "rubric_scores": [], "empty": True}
    try:
        scores = await judged(send, q, response, judge_params)
    except JudgeProblem as trouble:
        return Outcome(ERROR, f"{q.key}: {trouble}", trouble.exchange,
                       {**facts, "judge_unparsed": trouble.unparsed, "judge_failed": not trouble.unparsed})
    values = [s for s, _ in scores]
    return {**facts, "rubric_scores": values, "reasons": [r for _, r in scores],
            "score": sum(upstream_score(s) for s in values) / len(values), "fractional": sum(values) / len(values)}


async def _reference_scored(send: Send, q: Question, ex: Exchange, judge_params: dict[str, Any]) -> float | str:
    """The reference's integer score, or why it has none."""
    problem = transport_problem(ex)
    unanswered = problem.message if problem is not None else answer_problem(ex)
    if unanswered is not None:
        return unanswered
    response = (ex.reply.content or "").strip()
    if not response and q.question_type != ABSTENTION:
        return 0.0
    try:
        scores = await judged(send, q, response, judge_params)
    except JudgeProblem as trouble:
        return str(trouble)
    return sum(upstream_score(s) for s, _ in scores) / len(scores)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarize(records: list[dict[str, Any]], ctx: Context) -> Summary:
    data = [r.get("data") or {} for r in records]
    scored = [d for d in data if d.get("score") is not None]
    abilities: dict[str, dict[str, list[float]]] = {}
    for d in scored:
        entry = abilities.setdefault(d.get("question_type") or "?", {"upstream": [], "fractional": []})
        entry["upstream"].append(d["score"])
        entry["fractional"].append(d["fractional"])
    upstream, fractional = _mean([d["score"] for d in scored]), _mean([d["fractional"] for d in scored])
    reported = [d["prompt_tokens"] for d in scored if isinstance(d.get("prompt_tokens"), int)]
    details: dict[str, Any] = {
        "scored": len(scored), "errored": len(data) - len(scored),
        "judge_unparsed": sum(1 for d in data if d.get("judge_unparsed")),
        "judge_failed": sum(1 for d in data if d.get("judge_failed")),
        "empty_answers": sum(1 for d in scored if d.get("empty")),
        "score_upstream": upstream, "score_fractional": fractional,
        "scoring": "the verdict judges upstream's integer scoring (int(float(score)): a 0.5 counts as 0), "
                   "which the reference was computed with; the fractional mean counts 0.5 as 0.5",
        "abilities": {name: {"items": len(v["upstream"]), "upstream": _mean(v["upstream"]),
                             "fractional": _mean(v["fractional"])} for name, v in sorted(abilities.items())},
        "truncated_items": sum(1 for d in scored if d.get("dropped_messages")),
        "refusals_for_length": sum(d.get("refusals_for_length") or 0 for d in data),
        "mean_prompt_tokens": round(sum(reported) / len(reported)) if reported else None,
    }
    test = bench._test(records, ctx, CHECK_ID)
    if not scored:             # kvv could not score a single item: no verdict either way
        return Summary(ERROR if data else "inconclusive", {"name": "score", "value": None}, details,
                       f"nothing scored: all {len(data)} items errored (judge unreadable "
                       f"{details['judge_unparsed']}, judge failed {details['judge_failed']})")
    if test is None:
        details["reference"] = ("none: set checks.beam.reference (and reference-n), a profile's "
                                "benchmarks.beam.reference, or --reference-base-url to judge against one")
        measured = "nothing scored" if upstream is None else f"score {upstream:.3f} over {len(scored)} items"
        return Summary("inconclusive", {"name": "score", "value": upstream}, details,
                       f"measured, not judged: {measured}; no reference (set checks.beam.reference and "
                       f"reference-n, or --reference-base-url)")
    metric = {**test.metric(), "name": "score", "value": upstream}
    details["source"] = ("live: the same prompts sent to --reference-base-url, judged alike" if ctx.reference
                         else _setting(ctx).get("reference-source"))
    return Summary(test.verdict, metric, details,
                   bench._sentence(test.verdict, len(records), metric).replace("accuracy", "score (upstream's)"))


CHECKS = [
    Check(CHECK_ID, "BEAM long-context memory score within tolerance of the reference",
          "a deployment that cannot really serve its context (a smaller limit, broken RoPE scaling, "
          "long-context KV-cache or prefix-cache bugs): answers about a long chat fall below the official score",
          ("bench",), build, dict(OPTIONS), summarize, endpoint_sensitive=True, settled=bench._settled(CHECK_ID)),
]
