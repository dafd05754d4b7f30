"""What the simulated model writes, kept as token pieces so any prefix of k pieces counts exactly k tokens."""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, replace
from typing import Any

from .conversation import history_reasoning, last_user_text
from .effort import asks_for_effort, effort_report
from .tokenizer import pieces

WORDS = (
    "the model reads each request and answers with care while the server keeps time "
    "a quiet river runs past old stone walls under a wide grey sky "
    "numbers add up when every part is counted once and only once "
    "small steps lead to clear results that anyone can check again later "
    "light wind moves through tall grass near the edge of the field"
).split()

ASKS_FOR_OK = re.compile(r"\bsay\s+['\"‘“]?ok\b", re.IGNORECASE)
ASKS_FOR_RECALL = re.compile(r"previous reasoning", re.IGNORECASE)
ASKS_FOR_NUMBER = re.compile(r"\bnumber\b", re.IGNORECASE)
FOUR_DIGITS = re.compile(r"\b\d{4}\b")
DONT_KNOW = "I don't know."


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: tuple[str, ...]     # the arguments' JSON text as one-token pieces


@dataclass(frozen=True)
class Answer:
    """One choice's output. Each piece is one token, with the space that precedes it."""

    reasoning: tuple[str, ...]
    content: tuple[str, ...]
    calls: tuple[ToolCall, ...] = ()

    def __len__(self) -> int:
        """Completion tokens: reasoning, content and the calls' arguments."""
        return len(self.reasoning) + len(self.content) + sum(len(call.arguments) for call in self.calls)

    def truncated(self, limit: int) -> Answer:
        """The first `limit` tokens: reasoning first, then content, then the calls' arguments."""
        reasoning = self.reasoning[:limit]
        left = limit - len(reasoning)
        content = self.content[:left]
        left -= len(content)
        calls = []
        for call in self.calls:
            if left <= 0:
                break
            calls.append(replace(call, arguments=call.arguments[:left]))
            left -= len(call.arguments)
        return Answer(reasoning, content, tuple(calls))


def answer(seed: int, messages: list[dict[str, Any]], index: int, thinking: bool, *, reasoning_scale: int = 1,
           content: str | None = None, calls: tuple[ToolCall, ...] = ()) -> Answer:
    """The answer to `messages` for choice `index`: tool calls, the given content, or prose.

    It depends on nothing else; reasoning is `reasoning_scale` times as long as at the lowest effort.
    """
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
    key = f"{seed}:{digest}:{index}"
    content_rng, reasoning_rng = random.Random(f"{key}:content"), random.Random(f"{key}:reasoning")
    reasoning = prose(reasoning_rng, reasoning_rng.randint(20, 60) * reasoning_scale) if thinking else ()
    if calls:
        return Answer(reasoning, (), calls)
    if content is not None:
        return Answer(reasoning, pieces(content))
    return Answer(reasoning, prose(content_rng, content_rng.randint(8, 40)))


def prose(rng: random.Random, tokens: int) -> tuple[str, ...]:
    """Sentences of plain words, exactly `tokens` tokens long (at least 2), ending with a full stop."""
    written: list[str] = []
    left_in_sentence = rng.randint(5, 12)
    while len(written) < tokens - 1:
        # A sentence ends only where another word still fits before the closing full stop.
        if left_in_sentence == 0 and len(written) < tokens - 2:
            written.append(".")
            left_in_sentence = rng.randint(5, 12)
            continue
        word = rng.choice(WORDS)
        starts_sentence = not written or written[-1] == "."
        written.append((" " if written else "") + (word.capitalize() if starts_sentence else word))
        left_in_sentence -= 1
    written.append(".")
    return tuple(written)


def words(seed: int, text: str, count: int) -> list[str]:
    """`count` plain words picked for `text` (values for a JSON answer)."""
    rng = random.Random(f"{seed}:{text}:words")
    return [rng.choice(WORDS) for _ in range(count)]


def fixed_reply(messages: list[dict[str, Any]], effort: str | None) -> str | None:
    """The reply a question with one right answer gets, or None for free prose.

    Recall of a 4-digit number from the history's reasoning, the effort self-report (models with
    effort levels), and "OK" when asked to say it.
    """
    question = last_user_text(messages)
    if ASKS_FOR_RECALL.search(question) and ASKS_FOR_NUMBER.search(question):
        numbers = [number for reasoning in history_reasoning(messages) for number in FOUR_DIGITS.findall(reasoning)]
        return numbers[-1] if numbers else DONT_KNOW
    if effort is not None and asks_for_effort(messages):
        return effort_report(effort)
    if ASKS_FOR_OK.search(question):
        return "OK"
    return None
