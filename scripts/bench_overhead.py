"""Harness overhead: kvv's request rate against a bare httpx loop, same server, same concurrency.

    python scripts/bench_overhead.py [--requests 2000] [--concurrency 8]

Both send the same small non-streamed request to one simulated vendor on loopback (its own
process, so it does not share this one's interpreter lock); the ratio
bare/kvv is the cost of kvv's client (retry policy, parsing into an Exchange, key scrubbing)
plus the runner (journal line per attempt, evidence, scoring). DESIGN.md §9 targets ≤ 1.5.
The stdlib simulator caps both rates (a few hundred requests/s), so the script also reports the
client-side CPU time per request, which shows kvv's own cost even when the server is the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

from kvv import runner
from kvv.checks.base import Check, Context, Item, passed
from kvv.config import Settings
from kvv.plan import Plan, PlannedCheck
from kvv.profile import load_profile

BODY = {"model": "generic", "messages": [{"role": "user", "content": "Say 'OK' and nothing else."}],
        "max_tokens": 8}


def measured(run) -> tuple[float, float]:
    """(requests/s, client CPU ms per request) of `run()`, which returns the request count."""
    wall, cpu = time.perf_counter(), time.process_time()
    requests = run()
    return requests / (time.perf_counter() - wall), 1000 * (time.process_time() - cpu) / requests


async def bare(url: str, requests: int, concurrency: int) -> int:
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one() -> None:
            async with semaphore:
                response = await client.post(f"{url}/chat/completions", json=BODY)
                response.json()
        await asyncio.gather(*(one() for _ in range(requests)))
        return requests


def through_kvv(url: str, requests: int, concurrency: int) -> int:
    profile = load_profile("generic")
    items = [Item(f"request {i}", [{**BODY, "n": 1, "user": str(i)}], lambda ex: passed("ok", ex[0]))
             for i in range(requests)]
    check = Check("overhead", "overhead", "nothing", ("bench",), lambda ctx: items)
    context = Context(model="generic", profile=profile, think_mode="none")
    with tempfile.TemporaryDirectory() as out:
        settings = Settings(base_url=url, model="generic", profile="generic", output_dir=out,
                            concurrency=concurrency)
        target = runner.resolve_target(settings)
        runner.run(settings, target, Plan([PlannedCheck(check, items, context)], {}), None)
        return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "kvv", "simulate", "--port", "0", "--profile", "generic"],
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split(" at ")[1].split()[0]
        bare_runs = [measured(lambda: asyncio.run(bare(url, args.requests, args.concurrency)))
                     for _ in range(args.repeat)]
        kvv_runs = [measured(lambda: through_kvv(url, args.requests, args.concurrency))
                    for _ in range(args.repeat)]
    finally:
        server.terminate()
        server.wait()
    (b, b_cpu), (k, k_cpu) = ([statistics.median(x) for x in zip(*runs)] for runs in (bare_runs, kvv_runs))
    print(f"{args.requests} requests, concurrency {args.concurrency}, median of {args.repeat}:")
    print(f"  bare httpx loop: {b:8.1f} requests/s  {b_cpu:6.2f} ms client CPU per request")
    print(f"  kvv runner:      {k:8.1f} requests/s  {k_cpu:6.2f} ms client CPU per request")
    print(f"  ratio bare/kvv:  {b / k:8.2f}  (target <= 1.5); CPU ratio kvv/bare {k_cpu / b_cpu:.2f}")


if __name__ == "__main__":
    main()
