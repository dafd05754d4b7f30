"""MMMU-Pro, standard config with 10 options (docs/upstream.md §1.6): vision preprocessing on
harder, multi-image inputs.

Request, as upstream's `mmmu_pro_vision.py` (task `mmmu_pro_10c`) builds it: one user message
with the row's images `image_1` ... `image_7` in that order (those present), then one text part:

    {question}
    A. {option A}
    ...
    J. {option J}

    Answer the following multiple-choice question. The last line ... Think step by step before answering.

The `<image k>` placeholders stay in the question and options as the dataset writes them;
upstream does not replace them, and the images go first in index order.

Scoring, upstream's `parse_multi_choice_response`:
1. the text after the last `Answer:`: if exactly one option letter occurs in it (case-sensitive
   substring), that letter;
2. otherwise MMMU's heuristics on the whole answer: `(X)`, then `X `, then `X.`, then (in an
   answer of more than five words) an option's text; several candidates: the one found last;
3. nothing: upstream picks a random letter. kvv does not: the answer is `unparsed`, scored
   wrong and counted.
"""

from __future__ import annotations

import ast
import string
from typing import Any

from .base import Params, RowError, Score, body, image_part, image_url, text_field, text_part

ID = "mmmu-pro"
DATASET = {"id": "MMMU/MMMU_Pro", "config": "standard (10 options)", "split": "test"}
IMAGE_FIELDS = tuple(f"image_{i}" for i in range(1, 8))
INSTRUCTION = (
    "Answer the following multiple-choice question. The last line of your response should be of "
    "the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of the options. "
    "Think step by step before answering."
)
MARKER = "Answer:"


def options(row: dict[str, Any]) -> list[str]:
    """The options as a list; the dataset's Python-literal list string is parsed as upstream does."""
    value = row.get("options")
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise RowError("options", "not a Python list literal") from None
    if not isinstance(value, list) or not value:
        raise RowError("options", "expected a non-empty list of options")
    if len(value) > len(string.ascii_uppercase):
        raise RowError("options", f"{len(value)} options; at most 26 have letters")
    return [str(option) for option in value]


def letters(row: dict[str, Any]) -> list[str]:
    return list(string.ascii_uppercase[:len(options(row))])


def question_text(row: dict[str, Any]) -> str:
    """The text part of the request."""
    lettered = zip(string.ascii_uppercase, options(row), strict=False)    # at most 26 options get a letter
    listed = "\n".join(f"{letter}. {option}" for letter, option in lettered)
    return f"{text_field(row, 'question')}\n{listed}\n\n{INSTRUCTION}"


def prompt(row: dict[str, Any], params: Params) -> dict[str, Any]:
    urls = [url for name in IMAGE_FIELDS if (url := image_url(row, name, required=False)) is not None]
    if not urls:
        raise RowError("image_1", "no image in image_1 ... image_7")
    content = [image_part(url) for url in urls] + [text_part(question_text(row))]
    return body([{"role": "user", "content": content}], params)


def gold(row: dict[str, Any]) -> str:
    answer = text_field(row, "answer").strip().upper()
    if answer not in letters(row):
        raise RowError("answer", f"{answer!r} is not one of the options' letters")
    return answer


def score(row: dict[str, Any], answer_text: str | None) -> Score:
    expected = gold(row)
    parsed, rule = parse(answer_text or "", letters(row), options(row))
    if parsed is None:
        return Score(False, None, expected, unparsed=True, rule=rule)
    return Score(parsed == expected, parsed, expected, rule=rule)


def parse(response: str, choices: list[str], option_texts: list[str]) -> tuple[str | None, str]:
    """The letter an answer gives and the rule that found it; (None, "none") if no rule does."""
    index2ans = dict(zip(choices, option_texts, strict=False))
    position = response.rfind(MARKER)
    if position != -1:
        tail = response[position + len(MARKER):].strip()
        present = [choice for choice in choices if choice in tail]
        if len(present) == 1:
            return present[0], "answer-line"

    for char in [",", ".", "!", "?", ";", ":", "'"]:
        response = response.strip(char)
    response = " " + response + " "

    candidates: list[str] = []
    rule = "none"
    for pattern, name in (("({})", "bracket"), ("{} ", "letter-space"), ("{}.", "letter-dot")):
        candidates = [choice for choice in choices if pattern.format(choice) in response]
        if candidates:
            rule = name
            break
    if not candidates and len(response.split()) > 5:
        lowered = response.lower()
        candidates = [choice for choice, text in index2ans.items() if text.lower() in lowered]
        if candidates:
            rule = "option-text"
    if not candidates:
        return None, "none"
    if len(candidates) == 1:
        return candidates[0], rule
    # Several: the one whose mark comes last (ties: the first listed, as numpy's argmax).
    if rule == "bracket":
        positions = [response.rfind(f"({choice})") for choice in candidates]
    elif rule == "option-text":
        positions = [response.lower().rfind(index2ans[choice].lower()) for choice in candidates]
    else:
        positions = [response.rfind(f" {choice} ") for choice in candidates]
    return candidates[positions.index(max(positions))], rule
