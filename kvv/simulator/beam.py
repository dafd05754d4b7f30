"""The simulated model on BEAM: answers questions about a long chat, and judges answers.

A BEAM question (kvv.checks.beam: the history, then one user message "NOTE: …" + "Question: …")
is answered by retrieval: the user turn of the history that shares the most key words with the
question (ties: the later turn, so an update wins over what it updates), quoted back. A question
about an order ("in what order", "which came first") gets every user turn that shares a key word,
in the order of the history. A question no turn shares a key word with is answered ABSTAIN. What
the history no longer holds the model cannot answer, so a truncated history scores lower.

A judge prompt (kvv.checks.beam's RUBRIC_PROMPT / ORDER_PROMPT) is scored by word overlap, as
JSON: a criterion's key words (lower-cased, stop words and the leading verb such as "mentions"
left out) found in the response, all → 1.0, at least half → 0.5, else 0.0. The strict order prompt
scores 1.0 when every event's words (at least half of them) are found in a separate part of the
response (parts split at ";"), in the expected order, else 0.0.

Faults: context-truncate=N (the deployment keeps only the last N tokens of the prompt) drops the
history's turns from the front to fit N tokens before the model retrieves.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from ..checks.beam import NOTE, ORDER_OPENING, RUBRIC_OPENING
from .conversation import last_user_text
from .text import Answer, prose
from .tokenizer import count, pieces

ABSTAIN = "That was not mentioned in our conversation."
STOP = frozenset("""a an the and or but of to in on at for with by from as is are was were be been being it its this
that these those i me my mine you your we our they them their he she his her what which who whom when where why
how do does did done have has had not no yes so if then than there here about into over under again all any
each both some such only own same very can will just should would could may might must also did do
say said tell told""".split()) - {"not"}
LEADING_VERBS = frozenset("mentions states says names gives includes notes lists recalls answers identifies "
                          "explains notes reports provides".split())
ORDER_QUESTION = re.compile(r"\bin what order\b|\bwhich came first\b|\bchronological\b|\border\b", re.IGNORECASE)
SECTION = re.compile(r"^(Question|Rubric criterion|Expected order of events|Response):\n", re.MULTILINE)
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def key_words(text: str) -> list[str]:
    return [w for w in WORD.findall(text.lower()) if w not in STOP and (len(w) > 2 or w.isdigit())]


def criterion_words(text: str) -> list[str]:
    found = key_words(text)
    return found[1:] if found and found[0] in LEADING_VERBS else found


def coverage(wanted: list[str], text: str) -> float:
    have = set(WORD.findall(text.lower()))
    return sum(1 for w in wanted if w in have) / len(wanted) if wanted else 1.0


def sections(prompt: str) -> dict[str, str]:
    """The judge prompt's sections, each up to the next blank line followed by prose."""
    found, marks = {}, list(SECTION.finditer(prompt))
    for k, mark in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(prompt)
        body = prompt[mark.end():end]
        if k + 1 == len(marks):          # the response runs up to the instructions after it
            body = body.rsplit("\n\n", 1)[0] if "\n\n" in body else body
        found[mark.group(1)] = body.strip()
    return found


class Replier:
    def __init__(self, profile: Any, faults: dict[str, Any], seed: int):
        self.faults, self.seed = faults, seed

    def reply(self, body: dict[str, Any], *, thinking: bool, draw: str) -> tuple[Answer, set[str]] | None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict) \
                or messages[-1].get("role") != "user" or body.get("tools") or body.get("response_format"):
            return None
        text = last_user_text(messages)
        applied: set[str] = set()
        if text.startswith(RUBRIC_OPENING) or text.startswith(ORDER_OPENING):
            content = self._judgement(text)
        elif text.startswith(NOTE) and "Question:" in text:
            history = [m for m in messages[:-1] if isinstance(m, dict)]
            if "context-truncate" in self.faults:
                history, cut = self._truncated(history, text)
                if cut:
                    applied.add("context-truncate")
            content = self._answer(history, text.split("Question:", 1)[1].strip())
        else:
            return None
        reasoning: tuple[str, ...] = ()
        if thinking:
            rng = random.Random(f"{self.seed}:beam:{draw}")
            reasoning = prose(rng, rng.randint(10, 30))
        return Answer(reasoning, pieces(content)), applied

    def _truncated(self, history: list[dict[str, Any]], question: str) -> tuple[list[dict[str, Any]], int]:
        """The history as a deployment keeping only the last N prompt tokens sees it."""
        left = int(self.faults["context-truncate"]) - count(question)
        kept: list[dict[str, Any]] = []
        for message in reversed(history):
            left -= count(str(message.get("content") or ""))
            if left < 0:
                break
            kept.append(message)
        return kept[::-1], len(history) - len(kept)

    @staticmethod
    def _answer(history: list[dict[str, Any]], question: str) -> str:
        wanted = set(key_words(question))
        turns = [str(m.get("content") or "") for m in history if m.get("role") == "user"]
        shared = [len(wanted & set(key_words(turn))) for turn in turns]
        if not any(shared):
            return ABSTAIN
        if ORDER_QUESTION.search(question):
            return "; ".join(turn for turn, n in zip(turns, shared, strict=True) if n)
        best = max(range(len(turns)), key=lambda k: (shared[k], k))
        return turns[best]

    @staticmethod
    def _judgement(prompt: str) -> str:
        parts = sections(prompt)
        response = parts.get("Response", "")
        if "Expected order of events" in parts:
            events = [re.sub(r"^\d+\.\s*", "", line) for line in parts["Expected order of events"].splitlines()
                      if line.strip()]
            segments = [s for s in response.split(";") if s.strip()]
            position, in_order = -1, True
            for event in events:
                wanted = criterion_words(event)
                found = next((k for k, s in enumerate(segments) if k > position and coverage(wanted, s) >= 0.5), None)
                if found is None:
                    in_order = False
                    break
                position = found
            score, reason = (1.0, "every event, in order") if in_order else (0.0, "an event missing or out of order")
        else:
            share = coverage(criterion_words(parts.get("Rubric criterion", "")), response)
            score = 1.0 if share >= 0.999 else 0.5 if share >= 0.5 else 0.0
            reason = f"{share:.0%} of the criterion's key words are in the response"
        return json.dumps({"score": score, "reason": reason})
