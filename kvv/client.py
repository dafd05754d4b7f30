"""The one seam to the outside world: an OpenAI-compatible chat client over httpx.

Every call returns an `Exchange`. HTTP errors, broken streams and malformed bodies are data
for checks to judge, never exceptions; transient failures are retried with capped, jittered
backoff. The API key goes out in one header and is scrubbed from everything that comes back.

Two clocks bound an attempt: `timeout` is the longest gap between bytes (httpx's read timeout),
and a per-request deadline bounds the whole attempt, connect to last byte, so a server that
drips one byte at a time cannot hold a request for ever (`request_deadline`, `deadline_for`).

A body that breaks off is retried like a reset connection, and becomes a `protocol` finding only
when every attempt breaks. "Breaks off" means the transport failed mid-body (a chunked or
Content-Length body cut short, a reset): the server did not finish what it started. A stream the
server ended cleanly (final chunk sent) without `data: [DONE]` is the server's own doing, a
finding at once. A body with no framing at all (neither chunked nor Content-Length) ends only
when the connection closes, so a stream there without [DONE] may be a dropped connection: it is
retried like one.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import math
import random
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, Callable

import httpx

from . import __version__, pool, sse
from .decode import BodyDecoder, DecodeError
from .errors import ConfigError
from .exchange import KEEP_FRAMES, MAX_FRAMES, Exchange
from .redact import Redactor
from .verdict import TRANSIENT_CLASSES

EXCERPT_CHARS = 2000  # Exchange.body_excerpt
AFTER_DONE_WAIT_S = 2.0  # KEEP_FRAMES: the longest wait, in all, for the body to end after [DONE]
DRAIN_WAIT_S = 0.25  # otherwise: read to the body's end so its connection is reused, or give it up
AFTER_DONE_MARGIN_S = 0.05  # that wait ends this long before the attempt's deadline would
ATTEMPT_EXCERPT_CHARS = 300  # on_attempt info, which the runner journals

OnAttempt = Callable[[dict[str, Any]], None]

# The default per-request deadline (request_deadline=None): a floor for queueing, connecting and
# the first token, plus an allowance per token the request may generate, at a rate slower than
# any honest serving stack (10 tokens/s), capped. The floor is never below `timeout`: a first
# byte that --timeout allows is never cut by the deadline.
DEADLINE_FLOOR_S = 60.0
DEADLINE_PER_TOKEN_S = 0.1
DEADLINE_UNCAPPED_TOKENS = 4096  # a request without max_tokens is allowed this many
DEADLINE_CAP_S = 1800.0


class Client:
    """Sends chat-completions requests to one base URL over a shared connection pool."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        retry_after_cap: float = 60.0,
        max_body_bytes: int = 16 * 1024 * 1024,
        allow_insecure_http: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 64,
        request_deadline: float | None = None,
        deadline: float | None = None,
        key_env: str = "KVV_API_KEY",
    ):
        """`request_deadline`: seconds for one attempt, connect to last byte, for every request;
        None derives it from each request (`deadline_for`). `deadline`: a `time.monotonic()`
        instant (the run's end) that no wait before a retry may pass."""
        self.base_url = base_url.rstrip("/")
        self.url = _endpoint(self.base_url, allow_insecure_http)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_after_cap = retry_after_cap
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout
        self.request_deadline = request_deadline
        self.deadline = deadline
        self._redactor = Redactor(api_key)
        self._sends_key = bool(api_key)
        self._key_env = key_env         # what the curl line names the key by
        # Bytes kept for the excerpt: enough for EXCERPT_CHARS of 4-byte UTF-8 plus a whole
        # key, so a key echoed across the cut is still masked before the text is cut.
        self._head_bytes = 4 * EXCERPT_CHARS + max(map(len, self._redactor.secrets), default=0)
        headers = {"Content-Type": "application/json", "User-Agent": f"kvv/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            headers=headers,
            # pool=None: waiting for one of our own connections is not the vendor's timeout.
            timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0), pool=None),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            # A redirect could carry Authorization to another host: report it, never follow.
            follow_redirects=False,
            # httpcore's own pool spends O(connections²) per request: ~10 ms at 64 (kvv/pool.py).
            transport=transport if transport is not None else pool.transport(max_connections),
        )

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(
        self, body: dict[str, Any], *, on_attempt: OnAttempt | None = None, retry: bool = True
    ) -> Exchange:
        """POST `body` as given to /chat/completions; streams iff `body["stream"] is True`.
        `body[KEEP_FRAMES]` (stripped before sending) asks to keep the stream's frames."""
        keep_frames = body.get(KEEP_FRAMES) is True
        if KEEP_FRAMES in body:
            body = {k: v for k, v in body.items() if k != KEEP_FRAMES}
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        stream = body.get("stream") is True
        last_attempt = 1 + (self.max_retries if retry else 0)
        request_deadline = self.deadline_for(body)
        attempt = broken = 0
        while True:
            attempt += 1
            exchange, retry_after, broke = await self._attempt(body, content, stream, request_deadline, keep_frames)
            exchange.attempts = attempt
            broken += broke
            retry_in = None
            # A body that broke off is retried like a reset connection: one break is no finding.
            if attempt < last_attempt and (exchange.error in TRANSIENT_CLASSES or broke):
                retry_in = retry_after if retry_after is not None else self._backoff(attempt)
                if self.deadline is not None and time.monotonic() + retry_in > self.deadline:
                    retry_in = None  # the run ends before the wait would: the exchange stands
            if retry_in is None and broke and attempt > 1:
                exchange.error_detail += f" ({broken} of {attempt} attempts broke off)"
            if on_attempt is not None:
                on_attempt(
                    {
                        "attempt": attempt,
                        "status": exchange.status,
                        "error": exchange.error,
                        "detail": exchange.error_detail,
                        "latency_s": exchange.latency_s,
                        "usage": exchange.usage,
                        "excerpt": exchange.body_excerpt[:ATTEMPT_EXCERPT_CHARS],
                        "retry_in": retry_in,
                    }
                )
            if retry_in is None:
                return exchange
            await asyncio.sleep(retry_in)

    async def get(self, path: str) -> Exchange:
        """One GET of `{base_url}{path}` (e.g. "/models"), no retries: for the probe before a run.
        Failures are classified like a chat attempt's; the parsed JSON body, if any, is `error_body`
        for a non-2xx status and also for a 2xx one (there are no choices to parse)."""
        exchange = Exchange(request={"method": "GET", "path": path})
        # No tokens to generate: the deadline's floor (or --request-deadline) is all it gets.
        deadline = self.request_deadline
        if deadline is None:
            deadline = max(DEADLINE_FLOOR_S, self.timeout)
        started = time.monotonic()
        try:
            async with asyncio.timeout(deadline):
                async with self._http.stream("GET", self.base_url + path) as response:
                    exchange.status = response.status_code
                    exchange.headers = {k.lower(): self._redactor.text(v) for k, v in response.headers.items()}
                    raw = await self._read_body(response, exchange)
            if raw is not None:
                try:
                    exchange.error_body = self._redactor.obj(json.loads(raw))
                except (ValueError, RecursionError):
                    pass
        except TimeoutError:  # asyncio.timeout's: the deadline passed
            _fail(exchange, "timeout", _deadline_passed(deadline, started))
        except DecodeError as exc:
            _fail(exchange, "bad_response", f"response body could not be decoded: {exc}")
        except httpx.TimeoutException as exc:
            _fail(exchange, "timeout", f"timed out: {_describe(exc)}")
        except httpx.HTTPError as exc:
            _fail(exchange, "connection", f"no response: {_describe(exc)}")
        exchange.latency_s = time.monotonic() - started
        exchange.attempts = 1
        return exchange

    def curl(self, body: dict[str, Any]) -> str:
        """A shell line reproducing the request; the key is left to `$KVV_API_KEY`."""
        data = self._redactor.text(json.dumps(body, ensure_ascii=False, separators=(",", ":")))
        words = ["curl", "-sS"]
        if body.get("stream") is True:
            words.append("-N")
        words.append('"' + re.sub(r'([\\"$`])', r"\\\1", self.url) + '"')
        if self._sends_key:
            words.append(f'-H "Authorization: Bearer ${self._key_env}"')
        words.append('-H "Content-Type: application/json"')
        words.append("-d '" + data.replace("'", "'\\''") + "'")
        return " ".join(words)

    def deadline_for(self, body: dict[str, Any]) -> float:
        """Seconds one attempt of `body` may take in all: `request_deadline`, or derived.

        Derived: max(60 s, timeout) + 0.1 s per token of max_tokens (or max_completion_tokens,
        the larger; 4096 when neither is a positive integer), at most max(1800 s, that floor).
        """
        if self.request_deadline is not None:
            return self.request_deadline
        caps = [body.get(key) for key in ("max_tokens", "max_completion_tokens")]
        positive = [c for c in caps if isinstance(c, int) and not isinstance(c, bool) and c > 0]
        tokens = min(max(positive, default=DEADLINE_UNCAPPED_TOKENS), 10**7)  # 10**400 stays an int
        floor = max(DEADLINE_FLOOR_S, self.timeout)
        return min(floor + DEADLINE_PER_TOKEN_S * tokens, max(DEADLINE_CAP_S, floor))

    def _backoff(self, attempt: int) -> float:
        """Full jitter (AWS style): uniform over a window that doubles per retry, capped."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))

    async def _attempt(
        self, body: dict[str, Any], content: bytes, stream: bool, request_deadline: float, keep_frames: bool = False
    ) -> tuple[Exchange, float | None, bool]:
        """One HTTP attempt, its failure classified; also the server's Retry-After, if any,
        and whether the body broke off (a finding only if it keeps happening)."""
        exchange = Exchange(request=body, stream=stream, frames=[] if keep_frames else None)
        retry_after = None
        responded = broke = False
        started = time.monotonic()
        try:
            # The deadline covers connect, headers and the whole body: --timeout alone only
            # bounds the gap between bytes, which a slow drip never exceeds.
            async with asyncio.timeout(request_deadline):
                async with self._http.stream("POST", self.url, content=content) as response:
                    responded = True
                    exchange.status = response.status_code
                    exchange.headers = {k.lower(): self._redactor.text(v) for k, v in response.headers.items()}
                    retry_after = self._retry_after(response)
                    broke = await self._read(response, exchange, started + request_deadline)
        except TimeoutError:  # asyncio.timeout's: the deadline passed (httpx's are not TimeoutError)
            _fail(exchange, "timeout", _deadline_passed(request_deadline, started))
        except httpx.TimeoutException as exc:
            _fail(exchange, "timeout", f"timed out: {_describe(exc)}")
        except DecodeError as exc:
            _fail(exchange, "bad_response", f"response body could not be decoded: {exc}")
        except httpx.HTTPError as exc:
            if responded:  # the vendor broke a response it had started: retried, then a finding
                _fail(exchange, "protocol", f"response broke off mid-body: {_describe(exc)}")
                broke = True
            else:
                _fail(exchange, "connection", f"no response: {_describe(exc)}")
        exchange.latency_s = time.monotonic() - started
        self._scrub(exchange)
        return exchange, retry_after, broke

    async def _read(self, response: httpx.Response, exchange: Exchange, finish_by: float) -> bool:
        """Fill `exchange` from the response; True if the body may have been cut in transit.
        `finish_by`: the attempt's deadline (monotonic), which reading past [DONE] never reaches."""
        status = response.status_code
        if 300 <= status < 400:
            _fail(exchange, "bad_response", f"redirect to {self._redirect_host(response)} not followed")
            return False
        content_type = response.headers.get("content-type", "")
        is_json = "json" in content_type.split(";")[0].lower()
        if exchange.stream and 200 <= status < 300 and not is_json:
            return await self._read_stream(response, exchange, finish_by)
        raw = await self._read_body(response, exchange)
        if raw is None:
            return False
        try:
            # Masked before anything reads it, so no message cut below can leave part of a key.
            parsed, not_json = self._redactor.obj(json.loads(raw)), None
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            parsed, not_json = None, exc
        if not 200 <= status < 300:
            exchange.error_body = parsed
            # Other 4xx are no transport error: checks expect some (a rejected parameter).
            exchange.error = "rate_limit" if status == 429 else "server_error" if status >= 500 else None
            said = _error_message(parsed) or exchange.body_excerpt[:200]
            exchange.error_detail = f"HTTP {status}: {said}"
            return False
        if not_json is not None:
            kind = content_type or "no content-type"
            _fail(exchange, "bad_response", f"body is not JSON ({kind}): {_describe(not_json)}")
            return False
        try:
            exchange.choices, exchange.usage, exchange.usage_location = sse.parse_completion(parsed)
        except sse.BodyError as exc:
            _fail(exchange, exc.error, str(exc))
        return False

    async def _read_body(self, response: httpx.Response, exchange: Exchange) -> bytearray | None:
        """The whole body, or None (and `bad_response`) once it passes the cap."""
        body = bytearray()
        try:
            async with aclosing(_decoded(response)) as pieces:
                async for piece in pieces:
                    body += piece
                    if len(body) > self.max_body_bytes:
                        _fail(exchange, "bad_response", self._too_big())
                        return None
            return body
        finally:
            exchange.body_excerpt = self._excerpt(body[: self._head_bytes])

    async def _read_stream(self, response: httpx.Response, exchange: Exchange, finish_by: float) -> bool:
        """Assemble SSE as it arrives, keeping only the excerpt and the message text.
        True if it ended early where that end cannot be told from a dropped connection."""
        keep = exchange.frames is not None
        decoder, assembler = sse.EventDecoder(), sse.StreamAssembler(MAX_FRAMES if keep else 0)
        head = bytearray()
        size = 0
        try:
            async with aclosing(_decoded(response)) as pieces:
                async for chunk in pieces:
                    size += len(chunk)
                    if len(head) < self._head_bytes:
                        head += chunk[: self._head_bytes - len(head)]
                    if size > self.max_body_bytes:
                        _fail(exchange, "bad_response", self._too_big())
                        return False
                    for data in decoder.feed(chunk):
                        assembler.add(self._redactor.text(data))  # masked before a message cuts it
                    if assembler.done:     # the answer is whole; the rest of the body only frees the connection
                        await self._read_after_done(pieces, decoder if keep else None, assembler, size, finish_by)
                        break
                else:
                    for data in decoder.close():
                        assembler.add(self._redactor.text(data))
            if not assembler.done:
                detail = f"stream ended without [DONE] after {assembler.chunks} events"
                _fail(exchange, "protocol", detail)
                return not _framed(response)
            if problem := assembler.unusable():
                _fail(exchange, "bad_response", problem)
            return False
        except sse.BodyError as exc:
            _fail(exchange, exc.error, str(exc))
            return False
        finally:  # also when the connection breaks: what arrived is evidence
            exchange.body_excerpt = self._excerpt(head)
            exchange.choices = assembler.choices()
            exchange.usage, exchange.usage_location = assembler.usage, assembler.usage_location
            exchange.chunks, exchange.done = assembler.chunks, assembler.done
            if keep:
                exchange.frames, exchange.after_done = assembler.frames, assembler.after_done

    async def _read_after_done(self, pieces: AsyncIterator[bytes], decoder: sse.EventDecoder | None,
                               assembler: sse.StreamAssembler, size: int, finish_by: float) -> None:
        """Read on past [DONE] to the body's end. With a `decoder` (frames kept), what comes after
        [DONE] is parsed, so data sent there is seen; without, the bytes are only drained. Either way
        a body read to its end hands its connection back to the pool: one left unread is closed, and
        the next request pays a new connection (over TLS, a new handshake). Bounded by the size cap
        and a total wait (AFTER_DONE_WAIT_S or DRAIN_WAIT_S) that ends before the attempt's deadline:
        the answer itself is complete, and nothing after [DONE] turns it into a timeout."""
        wait = min(AFTER_DONE_WAIT_S if decoder else DRAIN_WAIT_S, finish_by - time.monotonic() - AFTER_DONE_MARGIN_S)
        if wait <= 0:
            return
        try:
            async with asyncio.timeout(wait):
                async for chunk in pieces:
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        return
                    if decoder is not None:
                        for data in decoder.feed(chunk):
                            assembler.add(self._redactor.text(data))
                if decoder is not None:
                    for data in decoder.close():
                        assembler.add(self._redactor.text(data))
        except (TimeoutError, httpx.HTTPError, DecodeError):
            return  # a server that keeps the body open or breaks it after [DONE]: the frames so far stand

    def _retry_after(self, response: httpx.Response) -> float | None:
        """Seconds a 429/503 asks us to wait, clamped to [0, retry_after_cap]; None (our own
        backoff) when there is no usable Retry-After."""
        if response.status_code not in (429, 503):
            return None
        seconds = retry_after_seconds(response.headers.get("retry-after", ""), time.time())
        return None if seconds is None else min(max(seconds, 0.0), self.retry_after_cap)

    def _too_big(self) -> str:
        return f"response body exceeds {self.max_body_bytes} bytes"

    def _excerpt(self, head: bytes | bytearray) -> str:
        # Mask before cutting, so a cut can never leave part of a key behind.
        text = self._redactor.text(bytes(head).decode("utf-8", errors="replace"))
        return text[:EXCERPT_CHARS]

    def _scrub(self, exchange: Exchange) -> None:
        """Mask the key wherever a server may have echoed it: the last pass over everything kept."""
        if not self._redactor.secrets:
            return
        redact = self._redactor.obj
        exchange.error_detail = self._redactor.text(exchange.error_detail)
        try:
            exchange.error_body = redact(exchange.error_body)
            exchange.usage = redact(exchange.usage)
            for choice in exchange.choices:
                message = choice.message
                message.role, message.content, message.reasoning_content = redact(
                    [message.role, message.content, message.reasoning_content]
                )
                message.tool_calls = redact(message.tool_calls)
                choice.finish_reason = redact(choice.finish_reason)
        except RecursionError:
            # Too deeply nested to search for the key: drop it rather than risk showing it.
            exchange.error_body, exchange.usage, exchange.choices = None, None, []
            if exchange.error is None and exchange.status is not None and exchange.status < 300:
                _fail(exchange, "bad_response", "response nests too deeply to be read")

    def _redirect_host(self, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if location is None:
            return "nowhere (no Location header)"
        location = self._redactor.text(location)  # before the cut below
        try:
            return response.url.join(location).host or repr(location[:100])
        except httpx.InvalidURL:
            return repr(location[:100])


def retry_after_seconds(value: str, now: float) -> float | None:
    """Seconds a Retry-After value asks for at epoch time `now`: delta-seconds or an HTTP-date.

    Never raises: a number too big for a float is inf, a well-formed date past year 9999 is inf
    (later than datetime can count); a past date is negative; anything else (garbage, a
    negative number, non-ASCII, empty) is None. The caller clamps.
    """
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value, re.ASCII):
        return float(value)  # 400 digits give inf, not OverflowError (float, unlike int, saturates)
    try:
        parts = email.utils.parsedate_tz(value)
    except (TypeError, ValueError, IndexError, OverflowError):  # its parser has raised on odd input
        return None
    if parts is None:
        return None
    if parts[0] > 9999:
        return math.inf
    if parts[9] is None:  # no zone: HTTP-dates are GMT
        parts = parts[:9] + (0,)
    try:
        return email.utils.mktime_tz(parts) - now
    except (ValueError, OverflowError):
        return None


async def _decoded(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    """The body's bytes with its Content-Encoding undone, a bounded piece at a time
    (httpx's own decoding would hand over each read whole, however far it expands)."""
    decoder = BodyDecoder(response.headers.get("content-encoding", ""))
    async for raw in response.aiter_raw():
        for piece in decoder.feed(raw):
            yield piece
    for piece in decoder.close():
        yield piece


def _framed(response: httpx.Response) -> bool:
    """Whether the body's end is marked (chunked or Content-Length), so a clean end is the
    server's own; without framing only the connection's close ends it."""
    if not response.http_version.startswith("HTTP/1"):
        return True  # HTTP/2 and later frame every body
    headers = response.headers
    return "chunked" in headers.get("transfer-encoding", "").lower() or "content-length" in headers


def _deadline_passed(deadline: float, started: float) -> str:
    return f"request deadline of {deadline:g} s exceeded after {time.monotonic() - started:.1f} s"


def _endpoint(base_url: str, allow_insecure_http: bool) -> str:
    """`{base_url}/chat/completions`, or `ConfigError` for a URL kvv must not send a key to."""
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ConfigError(
            f"base URL {base_url!r} is not a valid URL: {exc}", path="base_url"
        ) from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"base URL {base_url!r}: expected http(s)://host[:port]/path", path="base_url"
        )
    if url.scheme == "http" and not allow_insecure_http and not is_loopback(url.host):
        raise ConfigError(
            f"base URL {base_url!r} is plain http to a non-loopback host, so the API key would "
            "travel in clear: use https, or opt in to insecure http explicitly",
            path="base_url",
        )
    return f"{base_url}/chat/completions"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error_message(body: Any) -> str | None:
    """The message of an OpenAI-style `{"error": {"message": ...}}` body, if it has one."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) and error else None


def _fail(exchange: Exchange, error: str, detail: str) -> None:
    exchange.error, exchange.error_detail = error, detail


def _describe(exc: BaseException) -> str:
    # Several httpx exceptions have an empty message; the class name still says what happened.
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    # "All connection attempts failed" hides why; the operating system's error at the root says it.
    root = exc
    for _ in range(10):                 # a chain is short; a cycle must not hang us
        parent = root.__cause__ or root.__context__
        if parent is None:
            break
        root = parent
    if root is not exc and isinstance(root, OSError) and str(root) not in text:
        text += f" ({type(root).__name__}: {root})"
    return text
