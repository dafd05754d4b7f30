"""Regenerate kvv's simulator toolcall-replay references: the healthy simulator's answers.

Each toolcall-replay reference in kvv/data/references.yaml that is valid for kvv's simulator is
what that simulator (profile kimi-k3, seed 0, no faults, the tokenizer its valid-for names)
answers to the reference's requests; it holds only there (the `length` finishes depend on the
tokenizer). Run it after changing the requests or the simulator's tool behaviour:

    .venv/bin/python scripts/make_replay_reference.py
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from kvv.checks.toolcall_replay import CHECK, load_requests, prepare
from kvv.client import Client
from kvv.profile import load_profile
from kvv.references import builtin
from kvv.simulator import Simulator

DATA = Path(__file__).resolve().parents[1] / "kvv" / "data"
PROFILE = "kimi-k3"


async def collect(url: str, requests: Path) -> list[dict]:
    records = []
    async with Client(url, max_retries=0) as client:
        for index, recorded in load_requests(str(requests)):
            ex = await client.chat(prepare(recorded, PROFILE))
            if not ex.ok or ex.message is None:
                raise SystemExit(f"request {index}: HTTP {ex.status} {ex.error or ''} {ex.body_excerpt[:300]}")
            # K2VV's results format; the response keeps what a reader needs to see why.
            message = {"role": "assistant", "content": ex.message.content}
            if ex.message.tool_calls:
                message["tool_calls"] = ex.message.tool_calls
            records.append({"data_index": index, "finish_reason": ex.finish_reason,
                            "response": {"choices": [{"index": 0, "finish_reason": ex.finish_reason,
                                                      "message": message}]}})
    return records


def main() -> None:
    for reference in builtin(CHECK).values():
        if reference.simulator is None:
            continue
        with Simulator(load_profile(PROFILE), {}, seed=0, tokenizer=reference.simulator["tokenizer"]) as sim:
            if sim.identity != reference.simulator:
                raise SystemExit(f"{reference.name}: valid-for {reference.simulator}, simulator is {sim.identity}")
            records = asyncio.run(collect(sim.url, DATA / reference.requests))
        with open(DATA / reference.file, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        print(f"{reference.file}: {len(records)} records:", dict(Counter(r["finish_reason"] for r in records)))


if __name__ == "__main__":
    main()
