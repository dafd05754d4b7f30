"""Throughput: kvv's client and runner against bare client loops, same fast server, side by side.

    python scripts/bench_overhead.py [--requests 1500] [--rounds 9] [--concurrency 8 64]

Every row sends the same small chat request to one loopback server of this script's own (an
asyncio HTTP/1.1 server in its own process, canned answers, keep-alive), non-streamed and
streamed, at each concurrency. Rows: a raw-socket client (the server's ceiling), a bare httpx
loop (stock httpcore pool), the same loop on kvv's pool (kvv/pool.py), a bare httpx2 loop (the
openai SDK's stack), kvv's `Client.chat`, kvv's runner end to end, and the alternative stack
evaluated (a bare aiohttp loop). httpx2 and aiohttp are skipped when not installed: never kvv
dependencies. Rounds are interleaved (round 1 of every row, then round 2, ...) so load from
elsewhere on the machine falls on all rows alike; the table gives the median and the min-max
spread, each row's median against the fastest target loop (bare httpx, bare httpx2) and against
the alternative stack. The target: kvv >= 0.8x the fastest target loop at every setting.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import statistics
import tempfile
import time

import httpx

from kvv import pool, runner
from kvv.checks.base import Check, Context, Item, passed
from kvv.client import Client
from kvv.config import Settings
from kvv.plan import Plan, PlannedCheck
from kvv.profile import load_profile

BODY = {"model": "generic", "messages": [{"role": "user", "content": "Say 'OK' and nothing else."}],
        "max_tokens": 8}
STREAM_BODY = {**BODY, "stream": True}
PATH = "/v1/chat/completions"

# --- the server: canned answers, so it is never the bottleneck ---------------------------------

_ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "generic",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "OK"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}}).encode()


def _sse(delta: dict, finish: str | None) -> bytes:
    chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "generic",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


_STREAM = (_sse({"role": "assistant", "content": ""}, None) + _sse({"content": "OK"}, None)
           + _sse({}, "stop") + b"data: [DONE]\n\n")
JSON_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                 % len(_ANSWER)) + _ANSWER
STREAM_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + b"%x\r\n" % len(_STREAM) + _STREAM + b"\r\n0\r\n\r\n")


class _Protocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough of it: head up to a blank line, then Content-Length bytes."""

    def connection_made(self, transport) -> None:
        self.transport, self.buffer = transport, bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in bytes(self.buffer[:end]).lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            self.transport.write(STREAM_RESPONSE if b'"stream":true' in body.replace(b" ", b"")
                                 else JSON_RESPONSE)


def _serve(port_out) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Protocol, "127.0.0.1", 0, backlog=1024)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()
    asyncio.run(main())


# --- the clients: each sends `requests` requests, `concurrency` at a time -----------------------

async def _gather(requests: int, concurrency: int, one) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def limited() -> None:
        async with semaphore:
            await one()
    await asyncio.gather(*(limited() for _ in range(requests)))


async def raw_socket(url: str, requests: int, concurrency: int, stream: bool) -> None:
    """The server's ceiling: one keep-alive socket per slot, a pre-built request, read to the known end."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    body = json.dumps(STREAM_BODY if stream else BODY).encode()
    request = (b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (PATH.encode(), host.encode(), len(body))) + body
    expected = len(STREAM_RESPONSE if stream else JSON_RESPONSE)
    counts = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]

    async def worker(count: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        for _ in range(count):
            writer.write(request)
            await reader.readexactly(expected)
        writer.close()
    await asyncio.gather(*(worker(c) for c in counts))


async def bare_httpx(url: str, requests: int, concurrency: int, stream: bool, module=httpx, transport=None) -> None:
    limits = module.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with module.AsyncClient(limits=limits, transport=transport) as client:
        async def one() -> None:
            if stream:
                async with client.stream("POST", url + PATH, json=STREAM_BODY) as response:
                    async for _ in response.aiter_lines():
                        pass
            else:
                (await client.post(url + PATH, json=BODY)).json()
        await _gather(requests, concurrency, one)


async def bare_httpx_kvv_pool(url: str, requests: int, concurrency: int, stream: bool) -> None:
    """The bare loop on kvv's slot transport (kvv/pool.py): the fix alone, without kvv's client."""
    await bare_httpx(url, requests, concurrency, stream, transport=pool.transport(concurrency))


async def bare_httpx2(url: str, requests: int, concurrency: int, stream: bool) -> None:
    import httpx2
    await bare_httpx(url, requests, concurrency, stream, module=httpx2)


async def bare_aiohttp(url: str, requests: int, concurrency: int, stream: bool) -> None:
    import aiohttp
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one() -> None:
            async with session.post(url + PATH, json=STREAM_BODY if stream else BODY) as response:
                if stream:
                    async for _ in response.content:
                        pass
                else:
                    await response.json()
        await _gather(requests, concurrency, one)


async def kvv_client(url: str, requests: int, concurrency: int, stream: bool) -> None:
    async with Client(url + "/v1", max_connections=concurrency) as client:
        async def one() -> None:
            exchange = await client.chat(STREAM_BODY if stream else BODY)
            assert exchange.error is None, exchange.error_detail
        await _gather(requests, concurrency, one)


def kvv_runner(url: str, requests: int, concurrency: int, stream: bool) -> None:
    profile = load_profile("generic")
    body = STREAM_BODY if stream else BODY
    items = [Item(f"request {i}", [{**body, "user": str(i)}], lambda ex: passed("ok", ex[0]))
             for i in range(requests)]
    check = Check("overhead", "overhead", "nothing", ("bench",), lambda ctx: items)
    context = Context(model="generic", profile=profile, think_mode="none")
    with tempfile.TemporaryDirectory(prefix="kvv-bench-") as out:
        settings = Settings(base_url=url + "/v1", model="generic", profile="generic", output_dir=out,
                            concurrency=concurrency)
        target = runner.resolve_target(settings)
        runner.run(settings, target, Plan([PlannedCheck(check, items, context)], {}), None)


# (label, function, module it needs, role): "target" rows are the bare loops kvv is held to (the
# httpx family kvv is built on and the openai SDK's httpx2); "other" is the alternative stack
# evaluated, shown against kvv but not the target (see the README's Throughput).
ROWS = [
    ("raw socket (server ceiling)", raw_socket, None, None),
    ("bare httpx loop", bare_httpx, None, "target"),
    ("bare httpx loop, kvv's pool", bare_httpx_kvv_pool, None, None),
    ("bare httpx2 loop", bare_httpx2, "httpx2", "target"),
    ("bare aiohttp loop", bare_aiohttp, "aiohttp", "other"),
    ("kvv Client.chat", kvv_client, None, None),
    ("kvv runner", kvv_runner, None, None),
]


def rate(function, url: str, requests: int, concurrency: int, stream: bool) -> float:
    started = time.perf_counter()
    if asyncio.iscoroutinefunction(function):
        asyncio.run(function(url, requests, concurrency, stream))
    else:
        function(url, requests, concurrency, stream)
    return requests / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500, help="per row, round and setting")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--only", nargs="*", help="row labels (substrings) to run")
    args = parser.parse_args()
    rows = [r for r in ROWS if (r[2] is None or importlib.util.find_spec(r[2]))
            and (not args.only or any(o in r[0] for o in args.only))]
    skipped = [r[0] for r in ROWS if r[2] is not None and not importlib.util.find_spec(r[2])]
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_serve, args=(send,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{receive.recv()}"
    settings = [(c, s) for c in args.concurrency for s in (False, True)]
    rates: dict[tuple, list[float]] = {(r[0], c, s): [] for r in rows for c, s in settings}
    try:
        for (c, s) in settings:  # warm-up: imports, first connections
            for _, function, _, _ in rows:
                rate(function, url, min(200, args.requests), c, s)
        for _ in range(args.rounds):
            for (c, s) in settings:
                for label, function, _, _ in rows:
                    rates[(label, c, s)].append(rate(function, url, args.requests, c, s))
    finally:
        server.terminate()
        server.join()
    others = [label for label, _, _, role in rows if role == "other"]
    print(f"{args.requests} requests per run, {args.rounds} interleaved rounds; requests/s median (min-max); "
          f"median / fastest target loop (bare httpx, bare httpx2: kvv >= 0.8x)"
          + "".join(f"; / {label}" for label in others))
    for c, s in settings:
        print(f"\nconcurrency {c}, {'streamed' if s else 'non-streamed'}:")
        medians = {label: statistics.median(rates[(label, c, s)]) for label, *_ in rows}
        fastest = max((medians[label] for label, _, _, role in rows if role == "target"), default=None)
        for label, *_ in rows:
            runs = rates[(label, c, s)]
            ratios = [medians[label] / fastest] if fastest else []
            ratios += [medians[label] / medians[other] for other in others]
            print(f"  {label:28} {medians[label]:7.0f}  ({min(runs):5.0f}-{max(runs):5.0f})  "
                  + "  ".join(f"{ratio:5.2f}x" for ratio in ratios))
    if skipped:
        print(f"\nskipped (not installed): {', '.join(skipped)}")


if __name__ == "__main__":
    main()
