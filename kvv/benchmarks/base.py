"""What the three benchmarks share: the request parameters a caller passes in, the request body,
and the per-item Score.

Everything here is pure (no network, no files): a benchmark module turns a dataset row into a
chat request body and an answer text into a Score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, overload

from ..thinking import thinking_fields

# inspect-ai (upstream's harness) renders every ContentImage as an OpenAI image_url part with
# its `detail`, which defaults to "auto"; kvv sends the same part.
IMAGE_DETAIL = "auto"


class RowError(ValueError):
    """A dataset row that cannot be turned into a request: `field` names the culprit."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Params:
    """The request parameters of one benchmark in one mode, as the profile's table gives them
    (docs/upstream.md §1.8); None leaves a parameter out, so the server's default applies
    (upstream sends temperature and top_p only when given)."""

    model: str
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    thinking: dict[str, Any] = field(default_factory=dict)   # body fields from kvv.thinking.thinking_fields
    stream: bool = False

    @classmethod
    def for_mode(cls, model: str, spec: dict[str, Any], *, think_mode: str, mode: str,
                 stream: bool = False) -> Params:
        """From one mode's row of a profile's benchmark table:
        `{temperature: 1.0, top_p: 0.95, max-tokens: 16384, effort: max}`."""
        return cls(model=model, max_tokens=int(spec["max-tokens"]), temperature=spec.get("temperature"),
                   top_p=spec.get("top_p"),
                   thinking=thinking_fields(think_mode, mode == "thinking", spec.get("effort")),
                   stream=stream)


@dataclass(frozen=True)
class Score:
    """How one answer scored.

    correct:  the answer counts as right.
    parsed:   what kvv read as the answer (the letter, the integer, the OCR text), None if nothing.
    gold:     what it was compared with (OCRBench: the list of accepted answers).
    unparsed: kvv could not read an answer at all; always scored wrong and counted, never guessed.
    rule:     which rule decided (e.g. "substring", "answer-line", "boxed"), for the report.
    """

    correct: bool
    parsed: str | None
    gold: str | list[str]
    unparsed: bool = False
    rule: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"correct": self.correct, "parsed": self.parsed, "gold": self.gold,
                "unparsed": self.unparsed, "rule": self.rule}


def body(messages: list[dict[str, Any]], params: Params) -> dict[str, Any]:
    """A chat request as upstream's client sends it: model, messages, max_tokens, temperature and
    top_p when given, the thinking fields (upstream's extra_body), and stream with usage."""
    request: dict[str, Any] = {"model": params.model, "messages": messages, "max_tokens": params.max_tokens}
    if params.temperature is not None:
        request["temperature"] = params.temperature
    if params.top_p is not None:
        request["top_p"] = params.top_p
    request.update(params.thinking)
    if params.stream:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
    return request


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, "detail": IMAGE_DETAIL}}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


@overload
def image_url(row: dict[str, Any], name: str, *, required: Literal[True]) -> str: ...
@overload
def image_url(row: dict[str, Any], name: str, *, required: bool) -> str | None: ...
def image_url(row: dict[str, Any], name: str, *, required: bool) -> str | None:
    """The row's image `name` as the data URL the dataset layer gives (`data:<mime>;base64,...`)."""
    value = row.get(name)
    if value is None:
        if required:
            raise RowError(name, "missing image")
        return None
    if not isinstance(value, str) or not value:
        raise RowError(name, f"expected an image as a data URL string, got {type(value).__name__}")
    return value


def text_field(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise RowError(name, "missing" if value is None else f"expected a string, got {type(value).__name__}")
    return value
