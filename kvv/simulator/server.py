"""The simulated vendor: an OpenAI-compatible chat server on loopback, faithful to a profile.

A chat request passes through stages in order; a fault hooks into the stage it disturbs:

  gateway     rate-limit, server-error             answer before the body is looked at
  rejection   status-500-instead-of-400            how a bad request is answered
  contract    catalogue `waives` (ignore-*, accept-n), thinking-ignored, tool-choice-ignored, tool-choice-none-ignored,
              response-format-ignored, dynamic-tools-ignored, drop-reasoning-history
  window      a prompt over limits.context-tokens is refused (400); context-truncate,
              context-truncate-middle cut it instead (recall.py)
  generation  max-tokens-ignored, tool-trigger-drift, tool-args-invalid, tool-args-broken-json,
              tool-id-format, tool-finish-reason-stop, long-output-corrupt, truncate-output,
              tool-args-ascii-keys, forced-call-runs-on;
              benchmark items (benchmarks.py): accuracy-drop, image-dropped, image-downscale
  usage       usage-off, no-stream-usage, thinking-off-billed
  streaming   stream-tool-index-bug, stream-cut; frame shape (stream-shape): stream-tool-first-chunk,
              stream-id-changes, stream-raw-finish-reason, stream-data-after-done,
              stream-reasoning-after-content, stream-null-delta-fields, stream-id-format, stream-end-delta

The contract stage turns the body into a `_Request`: what the model sees (mode, effort, tools,
tool_choice, response_format and the messages as the chat template renders them).

The stages only decide what to answer; the bodies and frames are built by wire.py (a JsonReply or
a StreamReply), the request's well-formedness is checked by validation.py, and the HTTP handler
(http_server.py) only writes the reply out.
"""

from __future__ import annotations

import copy
import hashlib
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..profile import Profile
from . import wire
from .benchmarks import BenchmarkModel, Gold, corrupted, simulated_accuracy
from .probes import ProbeModel
from .recall import windowed
from .calls import (DEFAULT_ID_FORMAT, arguments_for, ascii_keys, call_id, calls_by_default, calls_so_far,
                    requested_tools)
from .conversation import last_user_text
from .effort import reasoning_scale, requested_effort, switched_off
from .faults import FaultValue, fault_rng, resolve_faults, waived_parameters
from .http_server import HTTPServer
from .instances import invalid_instance
from .rejection import Rejected
from .response_format import compact_json, json_content, response_format
from .text import Answer, ToolCall, answer, fixed_reply, words
from .tokenizer import DEFAULT, TOKENIZERS
from .tools import Tool, ToolChoice, declared_tools, tool_choice
from .validation import parse_body, requested_mode, validate, without
from .wire import JsonReply, StreamReply
from .workflows import Step, next_step, task_for

SERVER_ERROR_STATUSES = (500, 502, 503)
# Bodies whose retries the simulator tells apart; a retry comes within seconds, not after this many others.
SEEN_BODIES = 100_000
RUN_ON_WORDS = 8192            # forced-call-runs-on: text past any max_tokens a forced call is given


@dataclass(frozen=True)
class _Request:
    """A validated chat request as the model sees it."""

    body: dict[str, Any]                  # messages as the chat template renders them
    mode: str                             # thinking | non-thinking
    effort: str | None                    # None for a model without effort levels
    tools: list[Tool]
    tool_choice: ToolChoice
    response_format: dict[str, Any] | None   # None for plain text


@dataclass(frozen=True)
class _Turn:
    """What the model does this turn: tool calls, or text (None: free prose)."""

    content: str | None = None
    calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class _DrawKey:
    """What a fault's random draw for one request depends on, besides the seed."""

    body_digest: str
    attempt: int          # how many times this exact body was seen before


class Simulator:
    """A healthy deployment of `profile`, with the named faults switched on.

    `workflows` is a tool-workflows YAML whose tasks the model plays (default: kvv's own).
    `tokenizer` names the tokenizer and chat template it counts with (tokenizer.TOKENIZERS).
    `benchmark_answers` is the answer key of the benchmark items it knows (benchmarks.answer_key;
    default: the dataset stand-in's fixtures);
    `benchmark_accuracy` overrides, per benchmark id, the accuracy it answers them with.
    `stats` is a snapshot: {"requests": n, "statuses": {status: n}, "faults": {name: n}},
    where a fault counts each time it changed an answer.
    """

    def __init__(self, profile: Profile, faults: dict[str, FaultValue] | None = None, *,
                 seed: int = 0, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None, retry_after: float = 1.0, workflows: str | None = None,
                 tokenizer: str = DEFAULT.id, benchmark_answers: dict[str, Gold] | None = None,
                 benchmark_accuracy: dict[str, float] | None = None):
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; expected one of {', '.join(TOKENIZERS)}")
        self.tokenizer = TOKENIZERS[tokenizer]
        self.profile = profile
        self.faults = resolve_faults(faults or {})
        self.seed = seed
        self.api_key = api_key
        self.retry_after = retry_after
        self.workflows = workflows
        self._waivers = waived_parameters(self.faults)
        self._effort_levels: list[str] = list(profile.feature("thinking-effort") or [])
        self._id_format: str = profile.feature("tool-call-id") or DEFAULT_ID_FORMAT
        self.benchmarks = BenchmarkModel(profile.id, {**simulated_accuracy(profile), **(benchmark_accuracy or {})},
                                         benchmark_answers, self.faults, seed)
        self.probes = ProbeModel(profile, self.faults, seed)
        self._lock = threading.Lock()
        self._times_seen: OrderedDict[str, int] = OrderedDict()   # body digest -> attempts, oldest first
        self._stats: dict[str, Any] = {"requests": 0, "statuses": {}, "faults": {}}
        self._http = HTTPServer((host, port), self)   # bound now, so `url` is known before start
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def identity(self) -> dict[str, str]:
        """What this simulator is, as far as references care: its tokenizer and chat template."""
        return self.tokenizer.identity

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"

    @property
    def stats(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._stats)

    def start(self) -> Simulator:
        """Serve in a daemon thread. Starting a running simulator does nothing (`with sim.start():`)."""
        if self._thread is not None:
            return self
        # A short poll interval makes stop() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="kvv-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.close()

    def serve_forever(self) -> None:
        try:
            self._http.serve_forever()
        finally:
            self._http.close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- requests ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, authorization: str | None, raw: bytes) -> JsonReply | StreamReply:
        """One HTTP request in (from the handler thread), the reply to write out."""
        reply = self._route(method, path, authorization, raw)
        with self._lock:
            self._stats["requests"] += 1
            statuses = self._stats["statuses"]
            statuses[reply.status] = statuses.get(reply.status, 0) + 1
        return reply

    def _route(self, method: str, path: str, authorization: str | None, raw: bytes) -> JsonReply | StreamReply:
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return wire.error(401, "invalid API key", "invalid_request_error", param=None, code="invalid_api_key")
        route = (method, path.split("?")[0].removeprefix("/v1").rstrip("/"))
        if route == ("GET", "/models"):
            return JsonReply(200, {"object": "list", "data": [
                {"id": self.profile.id, "object": "model", "created": 0, "owned_by": "kvv-simulator"}]})
        if route == ("POST", "/chat/completions"):
            return self._chat(raw)
        return wire.error(404, f"no route for {method} {path}", "invalid_request_error", param=None, code="not_found")

    def _chat(self, raw: bytes) -> JsonReply | StreamReply:
        key = self._draw_key(raw)
        gateway_reply = self._gateway(key)
        if gateway_reply is not None:
            return gateway_reply
        try:
            body = parse_body(raw)
            validate(body)
            request = self._understand(body)
        except Rejected as rejection:
            return self._reject(rejection)
        choices = self._generate(request, key)
        if body.get("stream") is True:
            return self._stream(request, choices, key)
        return JsonReply(200, self._completion(request, choices))

    # -- stage: gateway ----------------------------------------------------------------------

    def _gateway(self, key: _DrawKey) -> JsonReply | None:
        if self._fires("rate-limit", key) is not None:
            return wire.error(429, "rate limit exceeded, please retry later", "rate_limit_error",
                              headers={"Retry-After": wire.seconds(self.retry_after)},
                              param=None, code="rate_limit_exceeded")
        rng = self._fires("server-error", key)
        if rng is not None:
            status = rng.choice(SERVER_ERROR_STATUSES)
            return wire.error(status, f"upstream failure ({status})", "server_error")
        return None

    # -- stage: rejection --------------------------------------------------------------------

    def _reject(self, rejection: Rejected) -> JsonReply:
        if "status-500-instead-of-400" in self.faults:
            self._injected("status-500-instead-of-400")
            return wire.error(500, "internal error", "server_error")
        return wire.error(400, rejection.message, "invalid_request_error", param=rejection.param,
                          code="invalid_parameter" if rejection.param else "invalid_request")

    # -- stage: contract ---------------------------------------------------------------------

    def _understand(self, body: dict[str, Any]) -> _Request:
        mode = self._mode(body)
        self._enforce_contract(body, mode)
        effort = requested_effort(body, self._effort_levels) if self._effort_levels else None
        tools = self._tools(body)
        choice = self._tool_choice(body, tools)
        form = self._response_format(body)
        return _Request(self._windowed(self._rendered(body)), mode, effort, tools, choice, form)

    def _mode(self, body: dict[str, Any]) -> str:
        default = self.profile.default_mode
        requested = requested_mode(body)
        if requested is None and self._effort_levels and switched_off(body):
            requested = "non-thinking"
        requested = requested or default
        if requested not in self.profile.modes:       # a model that cannot switch ignores the toggle
            return default
        if requested != default and "thinking-ignored" in self.faults:
            self._injected("thinking-ignored")
            return default
        return requested

    def _enforce_contract(self, body: dict[str, Any], mode: str) -> None:
        waived_by: set[str] = set()
        for name in self.profile.parameters:
            value, rule = body.get(name), self.profile.rule(name, mode)
            if value is None or rule is None or rule.allows(value):
                continue
            if name not in self._waivers:
                raise Rejected(name, f"{name}={value!r} is not allowed for {self.profile.id} in {mode} mode")
            waived_by.add(self._waivers[name])
        for fault in waived_by:      # once per request, however many of its parameters it let through
            self._injected(fault)

    def _tools(self, body: dict[str, Any]) -> list[Tool]:
        if "dynamic-tools-ignored" in self.faults and any(m.get("tools") is not None for m in body["messages"]):
            self._injected("dynamic-tools-ignored")
            body = without(body, "tools")
        return declared_tools(body, dynamic=bool(self.profile.feature("dynamic-tools")))

    def _tool_choice(self, body: dict[str, Any], tools: list[Tool]) -> ToolChoice:
        if "tool-choice-ignored" in self.faults:
            if body.get("tool_choice") not in (None, "auto"):
                self._injected("tool-choice-ignored")
            return ToolChoice("auto")
        choice = tool_choice(body, tools)
        if choice.mode == "none" and tools and "tool-choice-none-ignored" in self.faults:
            self._injected("tool-choice-none-ignored")
            return ToolChoice("auto")
        return choice

    def _response_format(self, body: dict[str, Any]) -> dict[str, Any] | None:
        if "response-format-ignored" in self.faults:
            if body.get("response_format") not in (None, {"type": "text"}):
                self._injected("response-format-ignored")
            return None
        return response_format(body)

    def _rendered(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body as the chat template sees it: without history reasoning if that is dropped."""
        if "drop-reasoning-history" not in self.faults or not any("reasoning_content" in m for m in body["messages"]):
            return body
        self._injected("drop-reasoning-history")
        return without(body, "reasoning_content")

    def _windowed(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body through the model's context window (recall.py): over the profile's context
        limit it is refused; context-truncate(-middle) cut it instead, so usage and generation see the cut."""
        seen, applied = windowed(body, self.tokenizer, self.profile.limits.get("context-tokens"), self.faults)
        for fault in applied:
            self._injected(fault)
        return seen

    # -- stage: generation -------------------------------------------------------------------

    def _generate(self, request: _Request, key: _DrawKey) -> list[tuple[Answer, str]]:
        """Each choice's answer and finish_reason."""
        body = request.body
        limits = [body[name] for name in ("max_tokens", "max_completion_tokens") if body.get(name) is not None]
        limit = min(limits, default=None)
        turn = self._turn(request, key)
        scale = reasoning_scale(request.effort, self._effort_levels) if request.effort else 1
        choices = []
        cap = self.faults.get("truncate-output")
        assert cap is None or isinstance(cap, int)      # a delta fault: resolve_faults made its value an int
        for index in range(body.get("n") or 1):
            written = self._benchmark_answer(request, key, index, scale)
            if written is None:
                written = answer(self.seed, body["messages"], index, thinking=request.mode == "thinking",
                                 reasoning_scale=scale, content=turn.content, calls=turn.calls)
            full = self._garbled(self._in_tokens(written), key, index)
            if cap is not None and len(full) > cap and (limit is None or cap < limit
                                                        or "max-tokens-ignored" in self.faults):
                self._injected("truncate-output")
                choices.append((full.truncated(cap), "length"))
                continue
            if limit is not None and len(full) > limit:
                if "max-tokens-ignored" not in self.faults:
                    choices.append((full.truncated(limit), "length"))
                    continue
                self._injected("max-tokens-ignored")
            choices.append((full, self._finish_reason(full)))
        return choices

    def _benchmark_answer(self, request: _Request, key: _DrawKey, index: int, scale: int) -> Answer | None:
        """The answer to a benchmark item (benchmarks.py), or None if the request is not one."""
        if request.tools:
            return None
        share = scale / len(self._effort_levels) if request.effort else 1.0
        draw = f"{key.body_digest}:{key.attempt}:{index}"
        reply = self.benchmarks.reply(request.body, thinking=request.mode == "thinking", effort_share=share, draw=draw)
        if reply is None:
            reply = self.probes.reply(request.body, thinking=request.mode == "thinking", draw=draw)
        if reply is None:
            return None
        written, applied = reply
        for fault in applied:
            self._injected(fault)
        return written

    def _garbled(self, full: Answer, key: _DrawKey, index: int) -> Answer:
        """long-output-corrupt: every token after the N-th is garbage."""
        if "long-output-corrupt" not in self.faults:
            return full
        rng = random.Random(f"{self.seed}:long-output-corrupt:{key.body_digest}:{key.attempt}:{index}")
        after = self.faults["long-output-corrupt"]
        assert isinstance(after, int)                   # a delta fault: resolve_faults made its value an int
        garbled = corrupted(full, after, rng)
        if garbled is None:
            return full
        self._injected("long-output-corrupt")
        return garbled

    def _in_tokens(self, full: Answer) -> Answer:
        """The answer's text cut into this simulator's tokens (the model writes in the default
        tokenizer's), so truncation at max_tokens and completion_tokens count by its own rule.
        Tool-call arguments are cut by `_tool_calls` already."""
        if self.tokenizer is DEFAULT:
            return full
        cut = self.tokenizer.pieces
        return Answer(cut("".join(full.reasoning)), cut("".join(full.content)), full.calls)

    def _turn(self, request: _Request, key: _DrawKey) -> _Turn:
        messages = request.body["messages"]
        task = task_for(messages, self.workflows) if request.tools else None
        step = next_step(task, messages, self._id_format) if task else None
        if self._runs_on(request):
            return _Turn(" ".join(words(self.seed, last_user_text(messages), RUN_ON_WORDS)))
        if not self._calls_tools(request, step, key):
            if step is not None and step.text is not None:
                return _Turn(step.text)
            if request.response_format is not None:
                question = last_user_text(messages)
                return _Turn(json_content(request.response_format, question, words(self.seed, question, 8)))
            return _Turn(fixed_reply(messages, request.effort))
        if request.tool_choice.mode == "function":
            forced = next(tool for tool in request.tools if tool.name == request.tool_choice.name)
            planned = [(forced.name, arguments_for(forced))]
        elif step is not None and step.calls is not None:
            planned = step.calls
        else:
            planned = [(tool.name, arguments_for(tool)) for tool in requested_tools(request.tools, messages)]
        return _Turn(calls=self._tool_calls(request, planned, key))

    def _runs_on(self, request: _Request) -> bool:
        """forced-call-runs-on: a forced call with thinking off never opens; the model writes on."""
        if "forced-call-runs-on" not in self.faults or request.mode != "non-thinking" or not request.tools \
                or request.tool_choice.mode not in ("required", "function"):
            return False
        self._injected("forced-call-runs-on")
        return True

    def _calls_tools(self, request: _Request, step: Step | None, key: _DrawKey) -> bool:
        """tool_choice decides, except auto, where the model does (in a workflow task: its script)."""
        if not request.tools or request.tool_choice.mode == "none":
            return False
        if request.tool_choice.mode != "auto":
            return True
        wanted = step.calls is not None if step is not None else calls_by_default(request.body["messages"])
        if self._fires("tool-trigger-drift", key) is not None:
            return not wanted
        return wanted

    def _tool_calls(self, request: _Request, planned: list[tuple[str, Any]], key: _DrawKey) -> tuple[ToolCall, ...]:
        """The calls with their ids and argument text, as the serving stack emits them."""
        declared = {tool.name: tool for tool in request.tools}
        invalid = self._hits("tool-args-invalid", key)
        broken = self._hits("tool-args-broken-json", key)
        first = calls_so_far(request.body["messages"])
        applied: set[str] = set()
        calls = []
        for position, (name, arguments) in enumerate(planned):
            if invalid and name in declared:
                try:
                    arguments = invalid_instance(declared[name].parameters or {})
                    applied.add("tool-args-invalid")
                except ValueError:        # the schema takes anything: nothing to break
                    pass
            if "tool-args-ascii-keys" in self.faults and (clamped := ascii_keys(arguments)) != arguments:
                arguments = clamped
                applied.add("tool-args-ascii-keys")
            emitted = self.tokenizer.pieces(compact_json(arguments))
            if broken:
                emitted = wire.broken(emitted)
                applied.add("tool-args-broken-json")
            calls.append(ToolCall(self._call_id(name, first + position, key), name, emitted))
        if "tool-id-format" in self.faults:
            applied.add("tool-id-format")
        for fault in applied:
            self._injected(fault)
        return tuple(calls)

    def _call_id(self, name: str, index: int, key: _DrawKey) -> str:
        if "tool-id-format" in self.faults:       # OpenAI-style ids, unrelated to name and position
            return "call_" + hashlib.sha256(f"{self.seed}:{key.body_digest}:{index}".encode()).hexdigest()[:24]
        return call_id(self._id_format, name, index)

    def _finish_reason(self, choice: Answer) -> str:
        if not choice.calls:
            return "stop"
        if "tool-finish-reason-stop" in self.faults:
            self._injected("tool-finish-reason-stop")
            return "stop"
        return "tool_calls"

    # -- stage: usage ------------------------------------------------------------------------

    def _usage(self, request: _Request, choices: list[tuple[Answer, str]]) -> dict[str, int]:
        usage, applied = wire.usage(self.tokenizer.prompt_tokens(request.body),
                                    sum(len(choice) for choice, _ in choices), self.faults,
                                    thinking_off=request.mode == "non-thinking" and "thinking" in self.profile.modes)
        for fault in applied:
            self._injected(fault)
        return usage

    def _stream_usage(self, request: _Request, choices: list[tuple[Answer, str]]) -> dict[str, int] | None:
        """The usage a stream ends with, None if it is not asked for (or no-stream-usage drops it)."""
        wanted, applied = wire.stream_usage_wanted(request.body, self.faults)
        for fault in applied:
            self._injected(fault)
        return self._usage(request, choices) if wanted else None

    # -- output (wire.py) --------------------------------------------------------------------

    def _completion(self, request: _Request, choices: list[tuple[Answer, str]]) -> dict[str, Any]:
        return wire.completion(wire.head(request.body, "chat.completion", self.profile.id), choices,
                               self._usage(request, choices))

    def _stream(self, request: _Request, choices: list[tuple[Answer, str]], key: _DrawKey) -> StreamReply:
        head = wire.head(request.body, "chat.completion.chunk", self.profile.id)
        reply, applied = wire.stream(head, choices, self.faults, usage=self._stream_usage(request, choices),
                                     usage_in_choice=self.profile.stream_usage == "choice",
                                     cut=self._hits("stream-cut", key) is not None)
        for fault in applied:
            self._injected(fault)
        return reply

    # -- fault bookkeeping -------------------------------------------------------------------

    def _draw_key(self, raw: bytes) -> _DrawKey:
        digest = hashlib.sha256(raw).hexdigest()
        with self._lock:
            attempt = self._times_seen.pop(digest, 0)
            self._times_seen[digest] = attempt + 1
            if len(self._times_seen) > SEEN_BODIES:   # a long-lived simulator: forget the oldest
                self._times_seen.popitem(last=False)
        return _DrawKey(digest, attempt)

    def _fires(self, fault: str, key: _DrawKey) -> random.Random | None:
        """The fault's random generator if this rate fault hits this request (and counts), else None."""
        rng = self._hits(fault, key)
        if rng is not None:
            self._injected(fault)
        return rng

    def _hits(self, fault: str, key: _DrawKey) -> random.Random | None:
        """Like `_fires`, for a fault that counts only once it turns out to change the answer."""
        if fault not in self.faults:
            return None
        rng = fault_rng(self.seed, fault, key.body_digest, key.attempt)
        rate = self.faults[fault]
        assert rate is not None         # a rate fault: resolve_faults gave it its default when none was given
        return rng if rng.random() < rate else None

    def _injected(self, fault: str) -> None:
        with self._lock:
            counts = self._stats["faults"]
            counts[fault] = counts.get(fault, 0) + 1
