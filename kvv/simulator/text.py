"""Deterministic answers, kept as token pieces so any prefix of k pieces counts exactly k tokens."""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Any

from .tokenizer import content_text

WORDS = (
    "the model reads each request and answers with care while the server keeps time "
    "a quiet river runs past old stone walls under a wide grey sky "
    "numbers add up when every part is counted once and only once "
    "small steps lead to clear results that anyone can check again later "
    "light wind moves through tall grass near the edge of the field"
).split()

ASKS_FOR_OK = re.compile(r"\bsay\s+['\"‘“]?ok\b", re.IGNORECASE)


@dataclass(frozen=True)
class Answer:
    """One choice's output. Each piece is one token, with the space that precedes it."""

    reasoning: tuple[str, ...]
    content: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.reasoning) + len(self.content)

    def truncated(self, limit: int) -> Answer:
        """The first `limit` tokens: reasoning first, then content."""
        return Answer(self.reasoning[:limit], self.content[:max(0, limit - len(self.reasoning))])


def answer(seed: int, messages: list[dict[str, Any]], index: int, thinking: bool) -> Answer:
    """The answer to `messages` for choice `index`; it depends on nothing else."""
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
    key = f"{seed}:{digest}:{index}"
    content_rng, reasoning_rng = random.Random(f"{key}:content"), random.Random(f"{key}:reasoning")
    content = ("OK",) if _asks_for_ok(messages) else prose(content_rng, content_rng.randint(8, 40))
    reasoning = prose(reasoning_rng, reasoning_rng.randint(20, 60)) if thinking else ()
    return Answer(reasoning, content)


def prose(rng: random.Random, tokens: int) -> tuple[str, ...]:
    """Sentences of plain words, exactly `tokens` tokens long (at least 2), ending with a full stop."""
    pieces: list[str] = []
    left_in_sentence = rng.randint(5, 12)
    while len(pieces) < tokens - 1:
        # A sentence ends only where another word still fits before the closing full stop.
        if left_in_sentence == 0 and len(pieces) < tokens - 2:
            pieces.append(".")
            left_in_sentence = rng.randint(5, 12)
            continue
        word = rng.choice(WORDS)
        starts_sentence = not pieces or pieces[-1] == "."
        pieces.append((" " if pieces else "") + (word.capitalize() if starts_sentence else word))
        left_in_sentence -= 1
    pieces.append(".")
    return tuple(pieces)


def _asks_for_ok(messages: list[dict[str, Any]]) -> bool:
    user_texts = [content_text(m.get("content")) for m in messages if m.get("role") == "user"]
    return bool(user_texts) and bool(ASKS_FOR_OK.search(user_texts[-1]))
