"""The shape of a check: items to run, and how each item is judged.

A check builds its items from the run context without touching the network (so `kvv plan`
can count them); the runner executes them through `send`, which is the client's `chat`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from ..exchange import Exchange
from ..thinking import thinking_fields
from ..verdict import ERROR, FAIL, PASS, TRANSIENT_CLASSES

PROMPT = "Say 'OK' and nothing else."
# The fields that make a request streamed, with usage in the stream (request fields, typed as the bodies are).
STREAM: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
# For checks that need an answer longer than a few tokens.
LONG_PROMPT = "Write the numbers from 1 to 100 in words, separated by commas."
CONTROL_MAX_TOKENS = 16

class NotApplicable(Exception):
    """Raised by a check's `build` when it cannot judge this target: the message says why and,
    where it can, how to make it apply (e.g. which reference to supply). Never a failure."""


class Send(Protocol):
    """The runner's way to send one chat request: to the vendor, or (reference=True) to the
    reference endpoint of a paired run (`--reference-base-url`), or (judge=True) to the judge
    that scores free-form answers (`--judge-base-url`; BEAM)."""

    def __call__(self, body: dict[str, Any], *, reference: bool = False,
                 judge: bool = False) -> Awaitable[Exchange]: ...


@dataclass
class Outcome:
    verdict: str                 # pass | fail | error (items are never inconclusive)
    message: str
    exchange: Exchange | None = None   # the exchange that shows why (evidence)
    data: dict[str, Any] | None = None  # JSON-able facts a check's `summarize` needs (kept for --resume)


@dataclass
class Item:
    """One unit of evidence: usually one request and one expectation."""

    id: str
    requests: list[dict[str, Any]]
    judge: Callable[[list[Exchange]], Outcome] | None = None
    mode: str | None = None                  # "thinking" | "non-thinking" | None
    token_ceiling: int | None = None         # completion tokens at most; None: server default
    # Items whose later requests depend on earlier answers set `run` (and `request_count`,
    # the most requests they may send, for the plan); `requests` then holds the first one(s).
    run: Callable[[Send], Awaitable[Outcome]] | None = None
    request_count: int | None = None
    # What the judge compares the answers against (expected values, reference answers), as
    # JSON-able data: part of the digest, so --resume never reuses a verdict whose yardstick changed.
    expects: Any = None
    # Items that expect a rejection: a valid request to send when theirs draws a 5xx on every
    # retry. If that one is answered, the 5xx was the endpoint's answer to the invalid value
    # (a finding); if not, the endpoint is down (infrastructure).
    control: dict[str, Any] | None = None
    # The 1-based line of the check's case file the item comes from (reports point at it).
    line: int | None = None
    # Ladder probes: the rung the item belongs to (e.g. "4k tokens", "12 px glyphs"); `kvv plan`
    # groups items by it.
    rung: str | None = None
    # Prompt tokens the item sends in all its requests, estimated before sending (long contexts), for the plan.
    prompt_tokens: int | None = None

    @property
    def digest(self) -> str:
        """Stable hash of everything sent and everything judged against: resume reuses an item
        only if this matches."""
        blob = json.dumps([self.requests, self.expects], sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    async def execute(self, send: Send) -> Outcome:
        if self.run is not None:
            return await self.run(send)
        exchanges = []
        for body in self.requests:
            ex = await send(body)
            exchanges.append(ex)
            if self.control is not None and ex.error == "server_error":
                return await self._server_error_instead_of_rejection(send, ex, self.control)
            problem = unusable(ex)
            if problem is not None:
                return problem
        assert self.judge is not None
        return self.judge(exchanges)


    async def _server_error_instead_of_rejection(self, send: Send, ex: Exchange,
                                                 control_body: dict[str, Any]) -> Outcome:
        control = await send(control_body)
        if not control.ok:
            problem = transport_problem(ex)
            assert problem is not None   # ex.error is "server_error" (the caller's guard), so there is one
            return problem
        return Outcome(FAIL, f"answered HTTP {ex.status} on every one of {ex.attempts} attempts where the contract "
                             f"requires a rejection (HTTP 400), while a valid request sent right after was answered "
                             f"HTTP {control.status}", ex)


@dataclass
class Context:
    """Everything a check may read to build its items."""

    model: str
    profile: Any                 # kvv.profile.Profile
    think_mode: str              # kimi | opensource | none
    options: dict[str, Any] = field(default_factory=dict)   # checks.<id>.* from the config
    reference: bool = False      # a reference endpoint is configured (paired mode)
    judge: bool = False          # a judge endpoint is configured (--judge-base-url)
    # When the endpoint is kvv's own simulator, what it says it is ({"tokenizer", "template", …},
    # from its X-KVV-Simulator header); None for any other endpoint. Decides which built-in
    # references hold.
    simulator: dict[str, str] | None = None
    # Benchmarks load their rows through this (async, spec -> kvv.datasets.Dataset), provided by
    # the runner; None while planning, which sends nothing.
    datasets: Any = None
    # How many checks of the run share one error budget (the benchmarks: Bonferroni), set by the plan.
    family: int = 1
    seed: int = 1                # the run's --seed: sampling orders are drawn from it
    datasets_server: str | None = None   # where benchmark rows come from (--datasets-server)
    full_pass: bool = False      # --full-pass: benchmark rows each once, not drawn with replacement
    max_prompt_tokens: int | None = None   # --max-prompt-tokens: the longest prompt a probe may send

    def modes(self) -> tuple[str, ...]:
        """Thinking modes kvv can test: with no request format it only gets the server default."""
        if self.think_mode == "none":
            return (self.profile.default_mode,)
        return self.profile.modes

    def control(self, mode: str) -> dict[str, Any]:
        """The valid request a rejection item sends when its own drew only 5xx (Item.control)."""
        return self.body(mode, max_tokens=CONTROL_MAX_TOKENS)

    def body(self, mode: str, prompt: str = PROMPT, **fields: Any) -> dict[str, Any]:
        """A minimal request in `mode`, plus `fields`."""
        thinking = thinking_fields(self.think_mode, mode == "thinking") if len(self.profile.modes) > 1 else {}
        return {"model": self.model, "messages": [{"role": "user", "content": prompt}], **thinking, **fields}


@dataclass
class Check:
    id: str
    title: str
    detects: str                 # the deployment fault this check catches, one line
    suites: tuple[str, ...]
    build: Callable[[Context], list[Item]]
    # Option name -> default. A default of None marks a file path (relative to the config file).
    options: dict[str, Any] = field(default_factory=dict)
    # Checks with a statistical verdict replace "worst item wins": given the item records
    # ({"id", "mode", "verdict", "message", "data"}), return a Summary.
    summarize: Callable[[list[dict[str, Any]], Context], "Summary"] | None = None
    # Its items depend on what the endpoint is (Context.simulator, learnt by the probe), so the
    # runner plans it again once that is known.
    endpoint_sensitive: bool = False
    # Sequential checks: given the records of the items finished so far (in plan order, up to
    # the first one still running; the list only grows), whether the verdict is settled. The runner
    # then starts items in plan order and no more once it is; items in flight finish and count.
    # Only for verdicts that stay valid however often they are looked at (anytime-valid tests),
    # never for fixed-n bounds.
    settled: Callable[[list[dict[str, Any]], Context], bool] | None = None


@dataclass
class Summary:
    verdict: str
    metric: dict[str, Any]          # {"name", "value", "lower", "upper", "confidence"}
    details: dict[str, Any] = field(default_factory=dict)   # further metrics, per mode, counts
    message: str | None = None      # the verdict in one sentence, where items alone do not say it


def transport_problem(ex: Exchange) -> Outcome | None:
    """An outcome for an exchange that failed below the level a check judges, else None.

    Transient failures (429, 5xx, timeouts, dropped connections) left after retries mean kvv
    could not run the item: `error`. A broken stream or malformed body is the vendor's
    defect: `fail`. Neither is ever a pass.
    """
    if ex.error is None:
        return None
    verdict = ERROR if ex.error in TRANSIENT_CLASSES else FAIL
    return Outcome(verdict, f"{ex.error}: {ex.error_detail}".rstrip(": "), ex)


def unusable(ex: Exchange) -> Outcome | None:
    """An outcome for an exchange no check can judge (transport failure, or 401/403/404), else None."""
    return transport_problem(ex) or access_problem(ex)


def access_problem(ex: Exchange) -> Outcome | None:
    """401/403/404 mean the key, URL or model is wrong: kvv cannot judge anything."""
    if ex.status in (401, 403, 404):
        return Outcome(ERROR, f"HTTP {ex.status}: {error_message(ex)} (check the API key, base URL and model)", ex)
    return None


def error_message(ex: Exchange) -> str:
    body = ex.error_body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))[:200]
    return ex.body_excerpt[:200]


def rejection(ex: Exchange) -> str | None:
    """`HTTP <status>: <error message>` when the request was not answered with success, else None."""
    return None if ex.ok else f"HTTP {ex.status}: {error_message(ex)}"


def answer_problem(ex: Exchange) -> str | None:
    """Why the response holds no answer to judge (rejected, or no choices), or None."""
    if problem := rejection(ex):
        return problem
    return f"HTTP {ex.status} with no choices" if ex.message is None else None


def passed(message: str, ex: Exchange | None = None) -> Outcome:
    return Outcome(PASS, message, ex)


def failed(message: str, ex: Exchange | None = None) -> Outcome:
    return Outcome(FAIL, message, ex)
