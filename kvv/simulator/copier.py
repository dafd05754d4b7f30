"""The simulated model on the `long-output` probe: it copies the numbered lines it is asked to.

A request is the probe's when it is a single user message in the probe's words
(kvv.checks.long_output.prompt): the instruction, then the lines between the markers. The model
writes them back exactly, as token pieces (so max_tokens, completion_tokens and the server's
faults count tokens as for any answer), without reasoning in non-thinking mode and with a short
one in thinking mode. What breaks the copy is the deployment, applied by server.py to every
answer: long-output-corrupt=N garbles every token after the N-th, truncate-output=N stops at N
tokens with finish_reason length, stream-cut cuts a stream before its end.
"""

from __future__ import annotations

import random
from typing import Any

from ..checks.long_output import copied_text
from .conversation import last_user_text
from .text import Answer, prose
from .tokenizer import pieces

REASONING_TOKENS = (20, 60)      # thinking mode: a few lines of planning before the copy


class Replier:
    def __init__(self, profile: Any, faults: dict[str, Any], seed: int):
        self.seed = seed

    def reply(self, body: dict[str, Any], *, thinking: bool, draw: str) -> tuple[Answer, set[str]] | None:
        messages = body.get("messages")
        if not isinstance(messages, list) or len(messages) != 1 or not isinstance(messages[0], dict) \
                or messages[0].get("role") != "user" or body.get("response_format") is not None:
            return None
        text = copied_text(last_user_text(messages))
        if text is None:
            return None
        reasoning: tuple[str, ...] = ()
        if thinking:
            rng = random.Random(f"{self.seed}:copier:{draw}")
            reasoning = prose(rng, rng.randint(*REASONING_TOKENS))
        return Answer(reasoning, pieces(text)), set()
