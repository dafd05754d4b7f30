"""The simulated vendor: an OpenAI-compatible chat server on loopback, faithful to a profile.

A chat request passes through stages in order; a fault hooks into the stage it disturbs:

  gateway     rate-limit, server-error             answer before the body is looked at
  rejection   status-500-instead-of-400            how a bad request is answered
  contract    catalogue `waives` (ignore-*, accept-n), thinking-ignored
  generation  max-tokens-ignored
  usage       usage-off, no-stream-usage
  streaming   stream-cut

The stages only decide what to answer (a JsonReply or a StreamReply); the HTTP handler at
the bottom only writes it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import socket
import socketserver
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..profile import Profile
from .faults import FaultValue, fault_rng, resolve_faults, waived_parameters
from .text import Answer, answer
from .tokenizer import prompt_tokens

ROLES = ("system", "user", "assistant", "tool")
SERVER_ERROR_STATUSES = (500, 502, 503)
PIECES_PER_DELTA = 3          # tokens per streamed reasoning/content delta


@dataclass
class JsonReply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamReply:
    """Server-sent events, each written as one HTTP chunk."""

    events: list[str]
    status: int = 200


class _Rejected(Exception):
    """A request the server refuses; `param` names the offending field, if any."""

    def __init__(self, param: str | None, message: str):
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True)
class _DrawKey:
    """What a fault's random draw for one request depends on, besides the seed."""

    body_digest: str
    attempt: int          # how many times this exact body was seen before


class Simulator:
    """A healthy deployment of `profile`, with the named faults switched on.

    `stats` is a snapshot: {"requests": n, "statuses": {status: n}, "faults": {name: n}},
    where a fault counts each time it changed an answer.
    """

    def __init__(self, profile: Profile, faults: dict[str, FaultValue] | None = None, *,
                 seed: int = 0, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None, retry_after: float = 1.0):
        self.profile = profile
        self.faults = resolve_faults(faults or {})
        self.seed = seed
        self.api_key = api_key
        self.retry_after = retry_after
        self._waivers = waived_parameters(self.faults)
        self._lock = threading.Lock()
        self._times_seen: dict[str, int] = {}
        self._stats: dict[str, Any] = {"requests": 0, "statuses": {}, "faults": {}}
        self._http = _HTTPServer((host, port), self)   # bound now, so `url` is known before start
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

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
            return _error(401, "invalid API key", "invalid_request_error", param=None, code="invalid_api_key")
        route = (method, path.split("?")[0].removeprefix("/v1").rstrip("/"))
        if route == ("GET", "/models"):
            return JsonReply(200, {"object": "list", "data": [
                {"id": self.profile.id, "object": "model", "created": 0, "owned_by": "kvv-simulator"}]})
        if route == ("POST", "/chat/completions"):
            return self._chat(raw)
        return _error(404, f"no route for {method} {path}", "invalid_request_error", param=None, code="not_found")

    def _chat(self, raw: bytes) -> JsonReply | StreamReply:
        key = self._draw_key(raw)
        gateway_reply = self._gateway(key)
        if gateway_reply is not None:
            return gateway_reply
        try:
            body = _parse_body(raw)
            _validate(body)
            mode = self._mode(body)
            self._enforce_contract(body, mode)
        except _Rejected as rejection:
            return self._reject(rejection)
        choices = self._generate(body, mode)
        if body.get("stream") is True:
            return self._stream(body, choices, key)
        return JsonReply(200, self._completion(body, choices))

    # -- stage: gateway ----------------------------------------------------------------------

    def _gateway(self, key: _DrawKey) -> JsonReply | None:
        if self._fires("rate-limit", key) is not None:
            return _error(429, "rate limit exceeded, please retry later", "rate_limit_error",
                          headers={"Retry-After": _seconds(self.retry_after)},
                          param=None, code="rate_limit_exceeded")
        rng = self._fires("server-error", key)
        if rng is not None:
            status = rng.choice(SERVER_ERROR_STATUSES)
            return _error(status, f"upstream failure ({status})", "server_error")
        return None

    # -- stage: rejection --------------------------------------------------------------------

    def _reject(self, rejection: _Rejected) -> JsonReply:
        if "status-500-instead-of-400" in self.faults:
            self._injected("status-500-instead-of-400")
            return _error(500, "internal error", "server_error")
        return _error(400, rejection.message, "invalid_request_error", param=rejection.param,
                      code="invalid_parameter" if rejection.param else "invalid_request")

    # -- stage: contract ---------------------------------------------------------------------

    def _mode(self, body: dict[str, Any]) -> str:
        default = self.profile.default_mode
        requested = _requested_mode(body) or default
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
                raise _Rejected(name, f"{name}={value!r} is not allowed for {self.profile.id} in {mode} mode")
            waived_by.add(self._waivers[name])
        for fault in waived_by:      # once per request, however many of its parameters it let through
            self._injected(fault)

    # -- stage: generation -------------------------------------------------------------------

    def _generate(self, body: dict[str, Any], mode: str) -> list[tuple[Answer, str]]:
        """Each choice's answer and finish_reason."""
        limits = [body[name] for name in ("max_tokens", "max_completion_tokens") if body.get(name) is not None]
        limit = min(limits, default=None)
        choices = []
        for index in range(body.get("n") or 1):
            full = answer(self.seed, body["messages"], index, thinking=mode == "thinking")
            if limit is None or len(full) <= limit:
                choices.append((full, "stop"))
            elif "max-tokens-ignored" in self.faults:
                self._injected("max-tokens-ignored")
                choices.append((full, "stop"))
            else:
                choices.append((full.truncated(limit), "length"))
        return choices

    # -- stage: usage ------------------------------------------------------------------------

    def _usage(self, body: dict[str, Any], choices: list[tuple[Answer, str]]) -> dict[str, int]:
        prompt = prompt_tokens(body)
        completion = sum(len(choice) for choice, _ in choices)
        reported_prompt = prompt
        if "usage-off" in self.faults:
            self._injected("usage-off")
            reported_prompt = max(0, prompt + self.faults["usage-off"])
        return {"prompt_tokens": reported_prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}

    def _stream_usage_wanted(self, body: dict[str, Any]) -> bool:
        options = body.get("stream_options")
        wanted = isinstance(options, dict) and options.get("include_usage") is True
        if wanted and "no-stream-usage" in self.faults:
            self._injected("no-stream-usage")
            return False
        return wanted

    # -- output ------------------------------------------------------------------------------

    def _completion(self, body: dict[str, Any], choices: list[tuple[Answer, str]]) -> dict[str, Any]:
        return {
            **self._head(body, "chat.completion"),
            "choices": [{"index": index, "message": _message(choice), "finish_reason": finish}
                        for index, (choice, finish) in enumerate(choices)],
            "usage": self._usage(body, choices),
        }

    def _stream(self, body: dict[str, Any], choices: list[tuple[Answer, str]], key: _DrawKey) -> StreamReply:
        head = self._head(body, "chat.completion.chunk")
        payloads: list[dict[str, Any]] = []

        def delta(index: int, fields: dict[str, Any]) -> None:
            payloads.append({**head, "choices": [{"index": index, "delta": fields, "finish_reason": None}]})

        for index, (choice, finish) in enumerate(choices):
            delta(index, {"role": "assistant", "content": ""})
            for name, pieces in (("reasoning_content", choice.reasoning), ("content", choice.content)):
                for start in range(0, len(pieces), PIECES_PER_DELTA):
                    delta(index, {name: "".join(pieces[start:start + PIECES_PER_DELTA])})
            payloads.append({**head, "choices": [{"index": index, "delta": {}, "finish_reason": finish}]})
        if self._stream_usage_wanted(body):
            usage = self._usage(body, choices)
            if self.profile.stream_usage == "choice":     # Moonshot: inside the finishing chunk
                payloads[-1]["choices"][0]["usage"] = usage
            else:                                          # OpenAI: a last chunk without choices
                payloads.append({**head, "choices": [], "usage": usage})
        events = [f"data: {json.dumps(payload)}\n\n" for payload in payloads]
        if self._fires("stream-cut", key) is not None:
            # Half the events, then half an event line (`data: {"id"...`), and no [DONE].
            half = len(events) // 2
            return StreamReply(events[:half] + [events[half][:len(events[half]) // 2]])
        return StreamReply(events + ["data: [DONE]\n\n"])

    def _head(self, body: dict[str, Any], kind: str) -> dict[str, Any]:
        model = body.get("model")
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": kind, "created": int(time.time()),
                "model": model if isinstance(model, str) else self.profile.id}

    # -- fault bookkeeping -------------------------------------------------------------------

    def _draw_key(self, raw: bytes) -> _DrawKey:
        digest = hashlib.sha256(raw).hexdigest()
        with self._lock:
            attempt = self._times_seen.get(digest, 0)
            self._times_seen[digest] = attempt + 1
        return _DrawKey(digest, attempt)

    def _fires(self, fault: str, key: _DrawKey) -> random.Random | None:
        """The fault's random generator if this rate fault hits this request, else None."""
        if fault not in self.faults:
            return None
        rng = fault_rng(self.seed, fault, key.body_digest, key.attempt)
        if rng.random() >= self.faults[fault]:
            return None
        self._injected(fault)
        return rng

    def _injected(self, fault: str) -> None:
        with self._lock:
            counts = self._stats["faults"]
            counts[fault] = counts.get(fault, 0) + 1


# -- request reading -------------------------------------------------------------------------

def _parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise _Rejected(None, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _Rejected(None, "request body must be a JSON object")
    return body


def _validate(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Rejected("messages", "messages must be a non-empty list")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _Rejected("messages", f"messages[{index}] must be an object with a role in {', '.join(ROLES)}")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(name)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise _Rejected(name, f"{name} must be a positive integer")


def _requested_mode(body: dict[str, Any]) -> str | None:
    """The mode the request asks for, in the kimi or the opensource format (kimi wins)."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"):
        return "thinking" if thinking["type"] == "enabled" else "non-thinking"
    kwargs = body.get("chat_template_kwargs")
    if isinstance(kwargs, dict) and isinstance(kwargs.get("thinking"), bool):
        return "thinking" if kwargs["thinking"] else "non-thinking"
    return None


# -- response building -----------------------------------------------------------------------

def _message(choice: Answer) -> dict[str, Any]:
    message = {"role": "assistant", "content": "".join(choice.content)}
    if choice.reasoning:
        message["reasoning_content"] = "".join(choice.reasoning)
    return message


def _error(status: int, message: str, kind: str, *, headers: dict[str, str] | None = None,
           **extra: Any) -> JsonReply:
    return JsonReply(status, {"error": {"message": message, "type": kind, **extra}}, headers or {})


def _seconds(value: float) -> str:
    """Retry-After: whole seconds as an integer, anything else as written."""
    return str(int(value)) if float(value).is_integer() else str(value)


# -- HTTP ------------------------------------------------------------------------------------

class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: Simulator):
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can stall on a machine without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def track(self, connection: socket.socket, is_open: bool) -> None:
        with self._connections_lock:
            (self._connections.add if is_open else self._connections.discard)(connection)

    def close(self) -> None:
        """Close the listening socket and hang up idle keep-alive connections."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):   # the client hung up; not our problem
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle on, each reply waits ~40 ms for an ACK.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, is_open=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, is_open=False)

    def do_GET(self) -> None:
        self._respond()

    def do_POST(self) -> None:
        self._respond()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: `stats` and the CLI report what happened."""

    def _respond(self) -> None:
        reply = self.server.simulator.handle(self.command, self.path, self.headers.get("Authorization"),
                                             self._read_body())
        if isinstance(reply, StreamReply):
            self._send_stream(reply)
        else:
            self._send_json(reply)

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", 0))
        except ValueError:
            length = -1
        if length < 0 or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True    # the body's end is unknown, so the connection is unusable
            return b""
        return self.rfile.read(length)

    def _send_json(self, reply: JsonReply) -> None:
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, reply: StreamReply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in reply.events:
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")
