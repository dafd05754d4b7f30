"""The client over real loopback sockets, against small scripted stdlib servers."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest

from kvv.client import KEEP_FRAMES, Client, retry_after_seconds
from kvv.errors import ConfigError
from kvv.exchange import Exchange

KEY = "sk-canary-5f0c1d2e3b4a69788796a5b4c3d2e1f0"
USAGE = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "OK"}, "finish_reason": "stop"}],
    "usage": USAGE,
}
BODY = {"model": "m", "messages": [{"role": "user", "content": "Say OK"}]}


@dataclass
class Reply:
    status: int = 200
    body: bytes | Callable[[Any], bytes] = b""  # a callable gets the request headers
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    chunks: list[bytes] | None = None  # sent with chunked encoding, one write each
    cut: bool = False  # drop the connection before the end of the body
    delay: float = 0.0  # before the status line
    drip: float = 0.0  # between chunks, or between the bytes of a plain body
    framed: bool = True  # False: chunks go out bare, the body ended by closing the connection


def json_reply(obj: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **headers})


def sse_reply(events: list[Any], *, done: bool = True, cut: bool = False, split: int = 0) -> Reply:
    """SSE over chunked encoding; `split` > 0 cuts the bytes into pieces of that size."""
    text = b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events)
    text += b"data: [DONE]\n\n" if done else b""
    chunks = [text[i : i + split] for i in range(0, len(text), split)] if split else [text]
    return Reply(200, b"", {"Content-Type": "text/event-stream"}, chunks, cut)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, replies: list[Reply]):
        super().__init__(("127.0.0.1", 0), Handler)
        # One per request; the last one repeats. A callable picks the reply from the request body.
        self.replies = replies
        self.requests: list[tuple[str, Any, bytes]] = []
        self.connections = 0
        # A short poll keeps shutdown (which waits for the next poll) from costing 0.5 s per test.
        threading.Thread(target=self.serve_forever, args=(0.01,), daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def next_reply(self, body: Any) -> Reply:
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return reply(body) if callable(reply) else reply

    def handle_error(self, request, client_address):  # a client hanging up is expected here
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: Server

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.server.connections += 1

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append((self.path, self.headers, raw))
        reply = self.server.next_reply(json.loads(raw or b"null"))
        time.sleep(reply.delay)
        body = reply.body(self.headers) if callable(reply.body) else reply.body
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.chunks is None:
            # A cut body promises more than it sends, then the connection closes.
            self.send_header("Content-Length", str(len(body) + (100 if reply.cut else 0)))
            self.end_headers()
            self.close_connection = reply.cut
            for i in range(len(body)) if reply.drip else ():
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(reply.drip)
            if not reply.drip:
                self.wfile.write(body)
            return
        if not reply.framed:
            self.end_headers()
            self.close_connection = True
            for piece in reply.chunks:
                self.wfile.write(piece)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in reply.chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            time.sleep(reply.drip)
        if reply.cut:
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")


    def do_GET(self):  # GET /models, for kvv's probe before a run
        data = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def serve():
    servers: list[Server] = []

    def start(*replies: Reply) -> Server:
        servers.append(Server(list(replies)))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def chat(base_url: str, body: dict = BODY, **options: Any) -> tuple[Exchange, list[dict]]:
    """One `Client.chat` in a fresh event loop; the exchange and every on_attempt info."""
    retry = options.pop("retry", True)
    options.setdefault("api_key", KEY)
    options.setdefault("backoff_base", 0.001)
    infos: list[dict] = []

    async def go() -> Exchange:
        async with Client(base_url, **options) as client:
            return await client.chat(body, on_attempt=infos.append, retry=retry)

    return asyncio.run(go()), infos


# --- success -------------------------------------------------------------------------------


def test_non_stream_ok_sends_body_untouched(serve):
    server = serve(json_reply(COMPLETION))
    body = {
        **BODY,
        "messages": [{"role": "user", "content": "é", "tools": [{"type": "function"}]}],
        "thinking": {"type": "enabled"},
        "chat_template_kwargs": {"thinking": False},
    }
    ex, infos = chat(server.base_url + "/", body)
    assert ex.ok and ex.status == 200 and ex.attempts == 1 and not ex.stream
    assert ex.message.content == "OK" and ex.finish_reason == "stop"
    assert (ex.usage, ex.usage_location) == (USAGE, "top")
    assert ex.request is body
    [(path, headers, raw)] = server.requests
    assert path == "/v1/chat/completions"
    assert json.loads(raw) == body
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["Content-Type"] == "application/json"
    assert infos == [
        {
            "attempt": 1,
            "status": 200,
            "error": None,
            "detail": "",
            "latency_s": ex.latency_s,
            "usage": USAGE,
            "excerpt": ex.body_excerpt[:300],
            "retry_in": None,
        }
    ]


def test_no_key_no_authorization_header(serve):
    server = serve(json_reply(COMPLETION))
    ex, _ = chat(server.base_url, api_key=None)
    assert ex.ok
    assert "Authorization" not in server.requests[0][1]


def test_stream_ok_assembles_across_network_chunks(serve):
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    events = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "hmm "}}]},
        {"choices": [{"index": 0, "delta": {"reasoning": "ok"}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls", "usage": USAGE}]},
    ]
    server = serve(sse_reply(events, split=7))
    ex, _ = chat(server.base_url, {**BODY, "stream": True})
    assert ex.ok and ex.stream and ex.done and ex.chunks == 6
    assert ex.message.content == "Hi" and ex.message.reasoning_content == "hmm ok"
    assert ex.message.tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
    assert ex.finish_reason == "tool_calls"
    assert (ex.usage, ex.usage_location) == (USAGE, "choice")
    assert ex.body_excerpt.startswith("data: {")


def chats(base_url: str, bodies: list[dict], **options: Any) -> list[Exchange]:
    """`Client.chat` for each body in turn, over one client (and so one pool)."""
    async def go() -> list[Exchange]:
        async with Client(base_url, api_key=KEY, **options) as client:
            return [await client.chat(body) for body in bodies]

    return asyncio.run(go())


@pytest.mark.parametrize("keep_frames", [False, True])
def test_streams_read_to_their_end_reuse_one_connection(serve, keep_frames):
    """A stream given up at [DONE], before its chunked terminator, would close its connection:
    a new one (over TLS, a new handshake) for every streamed request."""
    events = [{"choices": [{"index": 0, "delta": {"content": "OK"}, "finish_reason": "stop"}]}]
    server = serve(sse_reply(events))
    body = {**BODY, "stream": True, **({KEEP_FRAMES: True} if keep_frames else {})}
    exchanges = chats(server.base_url, [body] * 20)
    assert all(ex.ok and ex.done and ex.reply.content == "OK" for ex in exchanges)
    assert server.connections == 1


@pytest.mark.parametrize("keep_frames, wait", [(False, "DRAIN_WAIT_S"), (True, "AFTER_DONE_WAIT_S")])
def test_a_body_held_open_after_done_costs_at_most_the_wait_and_the_answer_stands(serve, keep_frames, wait):
    from kvv import client as client_module

    events = [{"choices": [{"index": 0, "delta": {"content": "OK"}, "finish_reason": "stop"}]}]
    held = sse_reply(events)
    held.drip = getattr(client_module, wait) + 2  # the terminator comes that long after [DONE]
    body = {**BODY, "stream": True, **({KEEP_FRAMES: True} if keep_frames else {})}
    started = time.monotonic()
    (ex,) = chats(serve(held).base_url, [body])
    assert ex.ok and ex.done and ex.reply.content == "OK", ex.error_detail
    assert time.monotonic() - started < getattr(client_module, wait) + 1.0


def test_reading_past_done_never_turns_a_complete_answer_into_a_timeout(serve):
    events = [{"choices": [{"index": 0, "delta": {"content": "OK"}, "finish_reason": "stop"}]}]
    held = sse_reply(events)
    held.drip = 3.0
    body = {**BODY, "stream": True, KEEP_FRAMES: True}
    (ex,) = chats(serve(held).base_url, [body], request_deadline=1.0)   # shorter than AFTER_DONE_WAIT_S
    assert ex.ok and ex.done and ex.reply.content == "OK", ex.error_detail


def test_stream_request_answered_with_json_is_accepted(serve):
    server = serve(json_reply(COMPLETION))
    ex, _ = chat(server.base_url, {**BODY, "stream": True})
    assert ex.ok and ex.stream and ex.message.content == "OK" and not ex.done


# --- findings: recorded, not retried -------------------------------------------------------


def test_stream_without_done_is_protocol_keeping_the_text(serve):
    server = serve(sse_reply([{"choices": [{"index": 0, "delta": {"content": "par"}}]}] * 2, done=False))
    ex, _ = chat(server.base_url, {**BODY, "stream": True})
    assert ex.error == "protocol" and ex.status == 200 and ex.attempts == 1
    assert ex.error_detail == "stream ended without [DONE] after 2 events"
    assert ex.message.content == "parpar" and not ex.done


def test_stream_without_done_on_an_unframed_body_is_retried_like_a_dropped_connection(serve):
    # No chunked encoding, no Content-Length: the close is the only end, so it may be a drop.
    events = [{"choices": [{"index": 0, "delta": {"content": "half"}}]}]
    cut = sse_reply(events, done=False)
    cut.framed = False
    server = serve(cut, sse_reply(events))
    ex, infos = chat(server.base_url, {**BODY, "stream": True})
    assert ex.ok and ex.attempts == 2 and ex.done and ex.message.content == "half"
    assert infos[0]["error"] == "protocol" and infos[0]["retry_in"] is not None
    assert infos[0]["detail"] == "stream ended without [DONE] after 1 events"


def test_unframed_stream_that_never_ends_with_done_is_protocol(serve):
    cut = sse_reply([{"choices": [{"index": 0, "delta": {"content": "half"}}]}], done=False)
    cut.framed = False
    server = serve(cut)
    ex, _ = chat(server.base_url, {**BODY, "stream": True}, max_retries=1)
    assert ex.error == "protocol" and ex.attempts == 2 and len(server.requests) == 2
    assert ex.error_detail == "stream ended without [DONE] after 1 events (2 of 2 attempts broke off)"


def test_empty_choices_in_a_2xx_body_is_bad_response(serve):
    ex, _ = chat(serve(json_reply({**COMPLETION, "choices": []})).base_url)
    assert ex.error == "bad_response" and not ex.ok and ex.attempts == 1
    assert ex.error_detail == "2xx with no choices: body.choices is an empty array"
    assert ex.usage is None  # nothing parsed from an answer that is not there


@pytest.mark.parametrize(
    "events, detail",
    [
        ([{"choices": [], "usage": USAGE}], "2xx stream with no choices in 1 events"),
        ([{"choices": [{"index": 0, "delta": None}]}, {"choices": [], "usage": USAGE}],
         "2xx stream whose choices carried nothing"),
        ([{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}],
         "2xx stream whose choices carried nothing"),
    ],
)
def test_stream_without_any_answer_is_bad_response(serve, events, detail):
    ex, _ = chat(serve(sse_reply(events)).base_url, {**BODY, "stream": True})
    assert ex.error == "bad_response" and ex.done and not ex.ok and ex.attempts == 1
    assert ex.error_detail.startswith(detail)
    assert ex.usage == (USAGE if len(events) > 1 or "usage" in events[0] else None)


def test_stream_with_usage_only_last_chunk_is_fine(serve):
    events = [{"choices": [{"index": 0, "delta": {"content": "OK"}, "finish_reason": "stop"}]},
              {"choices": [], "usage": USAGE}]
    ex, _ = chat(serve(sse_reply(events)).base_url, {**BODY, "stream": True})
    assert ex.ok and ex.message.content == "OK" and ex.usage == USAGE


def test_non_json_event_is_protocol(serve):
    reply = Reply(200, b"", {"Content-Type": "text/event-stream"}, [b"data: {oops\n\n"])
    ex, _ = chat(serve(reply).base_url, {**BODY, "stream": True})
    assert ex.error == "protocol" and "not JSON" in ex.error_detail


def test_400_is_data_for_checks(serve):
    server = serve(json_reply({"error": {"message": "temperature must be 1.0"}}, 400))
    ex, _ = chat(server.base_url)
    assert ex.status == 400 and ex.error is None and not ex.ok
    assert ex.error_body == {"error": {"message": "temperature must be 1.0"}}
    assert ex.error_detail == "HTTP 400: temperature must be 1.0"
    assert ex.attempts == 1 and len(server.requests) == 1


def test_non_json_200_is_bad_response(serve):
    server = serve(Reply(200, b"<html>gateway</html>", {"Content-Type": "text/html"}))
    ex, _ = chat(server.base_url)
    assert ex.error == "bad_response" and ex.attempts == 1
    assert "body is not JSON (text/html)" in ex.error_detail
    assert ex.body_excerpt == "<html>gateway</html>"


def test_json_without_choices_is_bad_response(serve):
    ex, _ = chat(serve(json_reply({"id": "x", "usage": USAGE})).base_url)
    assert ex.error == "bad_response"
    assert ex.error_detail == "body.choices is missing, expected an array"


@pytest.mark.parametrize("stream", [False, True])
def test_body_over_cap_is_bad_response(serve, stream):
    big = {"choices": [{"index": 0, "delta": {"content": "x" * 500}}]}
    reply = sse_reply([big] * 10, split=300) if stream else json_reply({"pad": "x" * 5000})
    ex, _ = chat(serve(reply).base_url, {**BODY, "stream": stream}, max_body_bytes=1000)
    assert ex.error == "bad_response" and ex.error_detail == "response body exceeds 1000 bytes"
    assert ex.attempts == 1


def test_redirect_is_not_followed(serve):
    location = "https://elsewhere.example/v1/chat/completions"
    server = serve(Reply(307, b"", {"Location": location}))
    ex, _ = chat(server.base_url)
    assert ex.status == 307 and ex.error == "bad_response"
    assert ex.error_detail == "redirect to elsewhere.example not followed"
    assert len(server.requests) == 1


# --- transient failures: retried ----------------------------------------------------------


def test_429_retry_after_is_honoured_then_success(serve):
    slow_down = json_reply({"error": {"message": "slow down"}}, 429, **{"Retry-After": "1"})
    server = serve(slow_down, json_reply(COMPLETION))
    started = time.monotonic()
    # backoff_base=0 makes jitter 0, so a wait of exactly the (capped) Retry-After proves it.
    ex, infos = chat(server.base_url, backoff_base=0, retry_after_cap=0.3)
    assert ex.ok and ex.attempts == 2 and len(server.requests) == 2
    assert time.monotonic() - started >= 0.3
    assert [(i["status"], i["error"], i["retry_in"]) for i in infos] == [
        (429, "rate_limit", 0.3),
        (200, None, None),
    ]
    assert infos[0]["detail"] == "HTTP 429: slow down"


def test_stream_broken_off_mid_body_is_retried_like_a_reset(serve):
    events = [{"choices": [{"index": 0, "delta": {"content": "half"}}]}]
    server = serve(sse_reply(events, done=False, cut=True), sse_reply(events))
    ex, infos = chat(server.base_url, {**BODY, "stream": True})
    assert ex.ok and ex.done and ex.attempts == 2 and len(server.requests) == 2
    assert infos[0]["error"] == "protocol" and "mid-body" in infos[0]["detail"]
    assert infos[0]["retry_in"] is not None


def test_json_body_broken_off_mid_body_is_retried(serve):
    server = serve(Reply(200, json.dumps(COMPLETION).encode(), cut=True), json_reply(COMPLETION))
    ex, infos = chat(server.base_url)
    assert ex.ok and ex.attempts == 2 and infos[0]["error"] == "protocol"


def test_body_that_always_breaks_off_is_a_protocol_finding_once_retries_run_out(serve):
    events = [{"choices": [{"index": 0, "delta": {"content": "half"}}]}]
    server = serve(sse_reply(events, done=False, cut=True))
    ex, infos = chat(server.base_url, {**BODY, "stream": True}, max_retries=2)
    assert ex.error == "protocol" and ex.attempts == 3 and len(server.requests) == 3
    assert "mid-body" in ex.error_detail and ex.error_detail.endswith("(3 of 3 attempts broke off)")
    assert ex.message.content == "half"  # what arrived is evidence
    assert [i["retry_in"] is None for i in infos] == [False, False, True]


def test_broken_body_without_retry_is_protocol_at_once(serve):
    events = [{"choices": [{"index": 0, "delta": {"content": "half"}}]}]
    server = serve(sse_reply(events, done=False, cut=True))
    ex, _ = chat(server.base_url, {**BODY, "stream": True}, retry=False)
    assert ex.error == "protocol" and ex.attempts == 1 and "mid-body" in ex.error_detail
    assert "attempts broke off" not in ex.error_detail


def test_retry_after_http_date_in_the_past_means_now(serve):
    past = formatdate(time.time() - 60, usegmt=True)
    server = serve(json_reply({}, 503, **{"Retry-After": past}), json_reply(COMPLETION))
    ex, infos = chat(server.base_url, backoff_base=100, backoff_cap=100)
    assert ex.ok and infos[0]["error"] == "server_error" and infos[0]["retry_in"] == 0.0


def test_500_exhausts_retries(serve):
    server = serve(json_reply({"error": {"message": "boom"}}, 500))
    ex, infos = chat(server.base_url, max_retries=2)
    assert ex.error == "server_error" and ex.status == 500 and ex.attempts == 3
    assert len(server.requests) == 3
    assert [i["attempt"] for i in infos] == [1, 2, 3]
    assert all(0 <= i["retry_in"] <= 0.004 for i in infos[:2]) and infos[2]["retry_in"] is None


def test_retry_false_makes_one_attempt(serve):
    server = serve(json_reply({}, 502))
    ex, _ = chat(server.base_url, retry=False)
    assert ex.error == "server_error" and ex.attempts == 1 and len(server.requests) == 1


def test_timeout(serve):
    server = serve(Reply(delay=1.0, body=json.dumps(COMPLETION).encode()))
    started = time.monotonic()
    ex, _ = chat(server.base_url, timeout=0.2, max_retries=0)
    assert ex.error == "timeout" and ex.status is None
    assert time.monotonic() - started < 0.9


# --- the request deadline --------------------------------------------------------------------


def drip_sse() -> Reply:
    """Status and headers at once, then an SSE stream one byte every 200 ms (~40 s in all)."""
    text = b'data: {"choices":[{"index":0,"delta":{"content":"drip"}}]}\n\n' * 3 + b"data: [DONE]\n\n"
    return Reply(200, b"", {"Content-Type": "text/event-stream"}, [text[i : i + 1] for i in range(len(text))],
                 drip=0.2)


def drip_json() -> Reply:
    return Reply(200, json.dumps(COMPLETION).encode(), drip=0.2)


@pytest.mark.parametrize("reply, stream", [(drip_json, False), (drip_sse, True)])
def test_a_drip_is_cut_at_the_request_deadline(serve, reply, stream):
    server = serve(reply())
    started = time.monotonic()
    # Bytes arrive every 200 ms, far inside --timeout 5: only the deadline can end this.
    ex, infos = chat(server.base_url, {**BODY, "stream": stream}, timeout=5, request_deadline=1.5,
                     max_retries=0)
    assert time.monotonic() - started < 3
    assert ex.error == "timeout" and ex.status == 200 and not ex.ok
    assert ex.error_detail.startswith("request deadline of 1.5 s exceeded after 1.")
    assert 1.4 < ex.latency_s < 3 and ex.body_excerpt  # what arrived is kept
    assert infos[0]["error"] == "timeout"


def test_the_deadline_covers_a_server_that_sends_nothing(serve):
    server = serve(Reply(delay=3.0, body=json.dumps(COMPLETION).encode()))
    started = time.monotonic()
    ex, _ = chat(server.base_url, timeout=5, request_deadline=0.5, max_retries=0)
    assert time.monotonic() - started < 2.5
    assert ex.error == "timeout" and ex.status is None and "request deadline of 0.5 s" in ex.error_detail


def test_a_deadline_timeout_is_retried_like_any_timeout(serve):
    server = serve(drip_json(), json_reply(COMPLETION))
    ex, infos = chat(server.base_url, timeout=5, request_deadline=0.5, max_retries=1)
    assert ex.ok and ex.attempts == 2 and infos[0]["error"] == "timeout"


@pytest.mark.parametrize(
    "body, timeout, expected",
    [
        ({"max_tokens": 16}, 120, 121.6),
        ({"max_completion_tokens": 1000}, 120, 220.0),
        ({"max_tokens": 16, "max_completion_tokens": 1000}, 120, 220.0),    # the larger cap
        ({}, 120, 120 + 409.6),                                             # uncapped: 4096 tokens
        ({"max_tokens": None}, 120, 120 + 409.6),
        ({"max_tokens": True}, 120, 120 + 409.6),                           # not a token count
        ({"max_tokens": -5}, 120, 120 + 409.6),
        ({"max_tokens": 100_000}, 120, 1800.0),                             # capped
        ({"max_tokens": 10**400}, 120, 1800.0),
        ({"max_tokens": 16}, 5, 61.6),                                      # the 60 s floor
        ({"max_tokens": 16}, 3000, 3000.0),                                 # never below --timeout
    ],
)
def test_default_deadline_derives_from_max_tokens(body, timeout, expected):
    assert Client("http://127.0.0.1:9/v1", timeout=timeout).deadline_for(body) == pytest.approx(expected)


def test_request_deadline_overrides_the_derived_one():
    client = Client("http://127.0.0.1:9/v1", request_deadline=7)
    assert client.deadline_for({"max_tokens": 100_000}) == client.deadline_for({}) == 7


# --- Retry-After ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("7", 7.0),
        ("1.5", 1.5),
        (" 3 ", 3.0),
        ("1" + "0" * 308, 1e308),
        ("9" * 400, math.inf),                          # past float range: inf, not OverflowError
        ("Fri, 31 Dec 99999 23:59:59 GMT", math.inf),   # past datetime's range: as late as can be
        ("Fri, 31 Dec 99999999999999999999 23:59:59 GMT", math.inf),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 100.0 - 50),
        ("Thu, 01 Jan 1970 00:01:40", 100.0 - 50),      # no zone: GMT
        ("Fri, 31 Dec 9999 23:59:59 -2359", 253402300799 + 86340 - 50),
        ("Thu, 01 Jan 1970 00:00:00 +9999", -(99 * 3600 + 99 * 60) - 50),  # odd offset: just arithmetic
        ("1e308", None),
        ("-5", None),
        ("soon", None),
        ("", None),
        ("٣٠", None),                                   # Arabic-Indic digits are not delta-seconds
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_seconds_never_raises(value, expected):
    assert retry_after_seconds(value, now=50.0) == expected


# Values that must end in the cap (0.2 s here), and values ignored in favour of the backoff.
HUGE = ["1" + "0" * 308, "9" * 400, "Fri, 31 Dec 99999 23:59:59 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"]
IGNORED = ["-5", "garbage", "", "1e308", "é", "٣٠".encode().decode("latin-1")]  # the last: raw UTF-8


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("value", HUGE + IGNORED)
def test_absurd_retry_after_is_clamped_never_an_exception(serve, status, value):
    server = serve(json_reply({"error": {"message": "later"}}, status, **{"Retry-After": value}),
                   json_reply(COMPLETION))
    ex, infos = chat(server.base_url, retry_after_cap=0.2, backoff_base=0.001)
    assert ex.ok and ex.attempts == 2
    if value in HUGE:
        assert infos[0]["retry_in"] == 0.2
    else:
        assert 0 <= infos[0]["retry_in"] <= 0.001   # our own backoff


def test_retry_after_past_the_runs_end_is_not_waited_for(serve):
    server = serve(json_reply({"error": {"message": "later"}}, 429, **{"Retry-After": "30"}))
    started = time.monotonic()
    ex, infos = chat(server.base_url, retry_after_cap=60, deadline=time.monotonic() + 2)
    assert time.monotonic() - started < 1.5
    assert ex.error == "rate_limit" and ex.attempts == 1 and len(server.requests) == 1
    assert infos[0]["retry_in"] is None


def test_retry_after_within_the_runs_end_is_waited_for(serve):
    server = serve(json_reply({}, 429, **{"Retry-After": "0.2"}), json_reply(COMPLETION))
    ex, infos = chat(server.base_url, deadline=time.monotonic() + 30)
    assert ex.ok and ex.attempts == 2 and infos[0]["retry_in"] == 0.2


def test_connection_refused_is_connection_and_retried():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens
    ex, infos = chat(f"http://127.0.0.1:{port}/v1", max_retries=1)
    assert ex.error == "connection" and ex.status is None and ex.attempts == 2
    assert infos[0]["retry_in"] is not None


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://api.example.com/v1", "http://10.0.0.5:8000/v1", "ftp://x/v1", "http:///v1", "nope"]
)
def test_base_urls_kvv_must_not_send_a_key_to(url):
    with pytest.raises(ConfigError) as raised:
        Client(url, api_key=KEY)
    assert KEY not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    ["https://api.moonshot.ai/v1", "http://localhost:8000/v1", "http://127.0.0.2/v1", "http://[::1]:9/v1"],
)
def test_accepted_base_urls(url):
    assert Client(url).url.endswith("/v1/chat/completions")


def test_insecure_http_needs_opt_in():
    assert Client("http://api.example.com/v1/", allow_insecure_http=True).url == (
        "http://api.example.com/v1/chat/completions"
    )


def test_curl_reproduces_the_request_without_the_key():
    client = Client("https://api.example.com/v1/", api_key=KEY)
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "it's"}]}
    assert client.curl(body) == (
        'curl -sS -N "https://api.example.com/v1/chat/completions" '
        '-H "Authorization: Bearer $KVV_API_KEY" -H "Content-Type: application/json" '
        """-d '{"model":"m","stream":true,"messages":[{"role":"user","content":"it'\\''s"}]}'"""
    )


# --- the key never comes back ---------------------------------------------------------------


def echo(headers: Any) -> bytes:
    return json.dumps({"error": {"message": f"bad auth header {headers['Authorization']}"}}).encode()


@pytest.mark.parametrize(
    "reply, stream",
    [
        (Reply(401, echo), False),
        # Echoes placed so the 2000-char excerpt cut falls inside the key, in ASCII and in
        # 2-byte UTF-8 (where bytes and chars part ways).
        (Reply(200, lambda h: b"x" * 1980 + h["Authorization"].encode(), {}), False),
        (Reply(500, lambda h: "é".encode() * 1001 + h["Authorization"].encode(), {}), False),
        (Reply(200, lambda h: json.dumps({**COMPLETION, "echo": h["Authorization"]}).encode()), False),
        (
            Reply(
                200,
                b"",
                {"Content-Type": "text/event-stream"},
                [f'data: {{"choices":[{{"index":0,"delta":{{"content":"{KEY}"}}}}]}}\n\n'.encode()],
            ),
            True,
        ),
    ],
)
def test_canary_key_never_comes_back(serve, reply, stream):
    server = serve(reply)
    infos: list[dict] = []

    async def go() -> tuple[Exchange, str]:
        async with Client(server.base_url, api_key=KEY, max_retries=1, backoff_base=0.001) as client:
            ex = await client.chat({**BODY, "stream": stream}, on_attempt=infos.append)
            return ex, f"{client!r} {client} {client.curl(BODY)}"

    ex, client_text = asyncio.run(go())
    assert server.requests[0][1]["Authorization"] == f"Bearer {KEY}"  # it was sent...
    for text in (repr(ex), repr(infos), client_text):  # ...and nothing shows any of it
        assert "sk-canary" not in text


def test_key_not_in_connection_error():
    ex, infos = chat("http://127.0.0.1:9/v1", max_retries=0)
    assert ex.error == "connection" and "sk-can" not in repr(ex) + repr(infos)


@pytest.mark.parametrize(
    "reply, stream",
    [
        # Messages that quote vendor text cut it; the cut must not fall inside the key.
        (Reply(200, b"", {"Content-Type": "text/event-stream"},
               [b"data: {" + b"x" * 185 + KEY.encode() + b"\n\n"]), True),
        (Reply(200, b"", {"Content-Type": "text/event-stream"},
               [b"data: " + json.dumps({"error": "x" * 280 + KEY}).encode() + b"\n\n"]), True),
        (json_reply({"error": "x" * 290 + KEY}), False),
        (Reply(307, b"", {"Location": "x" * 90 + KEY}), False),
    ],
)
def test_no_part_of_the_key_in_cut_messages(serve, reply, stream):
    ex, infos = chat(serve(reply).base_url, {**BODY, "stream": stream}, max_retries=0)
    assert ex.error is not None
    assert "sk-can" not in repr(ex) + repr(infos)


@pytest.mark.parametrize(
    "reply, stream, error",
    [
        (Reply(500, b"[" * 700 + b"]" * 700), False, "server_error"),
        (Reply(200, b"[" * 5000 + b"]" * 5000), False, "bad_response"),
        (Reply(200, b"", {"Content-Type": "text/event-stream"}, [b"data: " + b"[" * 5000 + b"]" * 5000 + b"\n\n"]),
         True, "protocol"),
    ],
)
def test_deeply_nested_body_is_data_not_a_traceback(serve, reply, stream, error):
    ex, _ = chat(serve(reply).base_url, {**BODY, "stream": stream}, max_retries=0)
    assert ex.error == error


# --- end to end: the verdicts these faults lead to ----------------------------------------------


def streams(stream_reply: Reply, plain: Reply) -> Callable[[Any], Reply]:
    """A reply per request: `stream_reply` for streamed ones, `plain` for the rest."""
    return lambda body: stream_reply if isinstance(body, dict) and body.get("stream") is True else plain


def run_generic(kvv, server: Server, *args: str):
    return kvv("run", "--base-url", server.base_url, "--model", "m", "--profile", "generic", *args)


def test_a_dripping_stream_is_an_error_through_the_cli_never_a_pass(serve, kvv):
    server = serve(streams(drip_sse(), json_reply(COMPLETION)))
    started = time.monotonic()
    run = run_generic(kvv, server, "--only", "stream-usage", "--timeout", "5", "--request-deadline", "1",
                      "--max-retries", "0")
    assert time.monotonic() - started < 20
    assert run.exit_code == 3, run.output
    check = run.check("stream-usage")
    assert check["verdict"] == "error" and check["items"], check
    assert all(i["verdict"] == "error" and "request deadline of 1 s exceeded" in i["message"]
               for i in check["items"]), check["items"]
    assert check["errors"]["timeout"] >= len(check["items"])


def test_a_drip_on_every_request_stops_the_run_never_a_pass(serve, kvv):
    server = serve(drip_json())
    run = run_generic(kvv, server, "--only", "baseline", "--timeout", "5", "--request-deadline", "1",
                      "--max-retries", "0")
    assert run.exit_code == 3, run.output
    assert "request deadline of 1 s exceeded" in run.output + run.stderr
    assert "pass" not in run.verdicts().values()


def test_answers_without_choices_pass_no_check(serve, kvv):
    # Honest-looking usage, but no answer at all: nothing a check can judge, so never a pass.
    usage_only = sse_reply([{"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": USAGE}])
    server = serve(streams(usage_only, json_reply({**COMPLETION, "choices": []})))
    checks = ["usage-arithmetic", "stream-usage", "stream-parity", "baseline"]
    run = run_generic(kvv, server, "--only", ",".join(checks), "--max-retries", "0")
    assert run.exit_code == 1, run.output
    verdicts = run.verdicts()
    assert {c: verdicts.get(c) for c in checks} == dict.fromkeys(checks, "fail"), verdicts
    for check in checks:
        assert run.check(check)["errors"]["bad_response"] > 0
        assert all("no choices" in i["message"] for i in run.check(check)["items"]), run.check(check)


def test_streams_whose_choices_stay_empty_pass_no_check(serve, kvv):
    empty = sse_reply([{"choices": [{"index": 0, "delta": None}]}, {"choices": [{"index": 0, "delta": {}}]},
                       {"choices": [], "usage": USAGE}])
    server = serve(streams(empty, json_reply(COMPLETION)))
    run = run_generic(kvv, server, "--only", "stream-usage,stream-parity", "--max-retries", "0")
    assert run.exit_code == 1, run.output
    assert run.verdicts() == {"stream-usage": "fail", "stream-parity": "fail"}


def test_request_deadline_from_a_config_file(tmp_path):
    from kvv.config import load_settings

    good = tmp_path / "good.yaml"
    good.write_text("request-deadline: 2.5\n")
    assert load_settings({"config": str(good)}).request_deadline == 2.5
    assert load_settings({}).request_deadline is None
    for value in ("0", "-1", "soon"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"request-deadline: {value}\n")
        with pytest.raises(ConfigError) as raised:
            load_settings({"config": str(bad)})
        assert "request-deadline" in str(raised.value), value
