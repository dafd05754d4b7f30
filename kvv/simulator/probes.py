"""The simulated model's answers to kvv's direct probes (long output, image ladder, context
depth): requests no benchmark sends, recognised by their prompts.

Each probe's side lives in its own module with `reply(body, *, faults, seed, thinking)` returning
(Answer, faults applied) or None when `body` is not its probe; REPLIERS lists them.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .text import Answer

Replier = Callable[..., "tuple[Answer, set[str]] | None"]
REPLIERS: list[Replier] = []


def reply(body: dict[str, Any], *, faults: Mapping[str, Any], seed: int,
          thinking: bool) -> tuple[Answer, set[str]] | None:
    for replier in REPLIERS:
        found = replier(body, faults=faults, seed=seed, thinking=thinking)
        if found is not None:
            return found
    return None
