"""Run a plan against an endpoint: bounded concurrency, a journal line per attempt, resume,
then per-check verdicts and the results document every report is rendered from."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .checks.base import Item, Outcome
from .client import Client
from .config import Settings
from .errors import ConfigError
from .exchange import Exchange
from .journal import Journal, finished_items
from .plan import Plan, PlannedCheck, make_plan
from .profile import Profile, load_profile
from .redact import Redactor
from .stats import wilson
from .verdict import ERROR, ERROR_CLASSES, FAIL, PASS, exit_code, worst

EVIDENCE_PER_CHECK = 5
EXCERPT_CHARS = 2000


@dataclass
class Target:
    base_url: str
    model: str
    profile: Profile
    think_mode: str
    simulated: bool = False                  # kvv's own simulated vendor, not a real deployment
    simulator: dict[str, str] | None = None  # its identity (Simulator.identity), once known


def resolve_target(settings: Settings) -> Target:
    if not settings.base_url:
        raise ConfigError("no endpoint: pass --base-url, set base-url in the config file, or set KVV_BASE_URL",
                          source="base-url")
    if not settings.model:
        raise ConfigError("no model: pass --model, set model in the config file, or set KVV_MODEL",
                          source="model")
    profile = load_profile(settings.profile)
    return Target(settings.base_url, settings.model, profile, settings.think_mode or profile.think_mode)


def plan_for(settings: Settings, target: Target) -> Plan:
    return make_plan(settings, target.profile, target.model, target.think_mode, target.simulator)


def run(settings: Settings, target: Target, plan: Plan, api_key: str | None) -> dict[str, Any]:
    """Execute the plan and write journal.jsonl; returns the (redacted) results document."""
    return asyncio.run(_run(settings, target, plan, api_key))


async def _run(settings: Settings, target: Target, plan: Plan, api_key: str | None) -> dict[str, Any]:
    out = Path(settings.output_dir)
    reference_key = settings.reference_api_key() if settings.reference_base_url else None
    redactor = Redactor(api_key, reference_key)
    journal_path = out / "journal.jsonl"
    previous = finished_items(journal_path) if settings.resume else {}
    journal = Journal(journal_path, redactor, append=settings.resume)
    started, clock = _now(), time.monotonic()
    semaphore = asyncio.Semaphore(settings.concurrency)
    client_options = dict(timeout=settings.timeout, max_retries=settings.max_retries,
                          allow_insecure_http=settings.allow_insecure_http, max_connections=settings.concurrency)
    try:
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(Client(target.base_url, api_key=api_key, **client_options))
            reference = None
            if settings.reference_base_url:
                reference = await stack.enter_async_context(
                    Client(settings.reference_base_url, api_key=reference_key, **client_options))
            journal.write("run", kvv_version=__version__, base_url=target.base_url, model=target.model,
                          profile=target.profile.id, think_mode=target.think_mode, suite=settings.suite,
                          reference_base_url=settings.reference_base_url)
            runners = [_CheckRun(p, client, reference, settings.reference_model or target.model,
                                 journal, semaphore, previous) for p in plan.checks]
            checks = await asyncio.gather(*(r.run() for r in runners))
    finally:
        journal.close()
    for check in checks:
        check["config_line"] = settings.config_lines.get(check["id"])
    verdict = worst(c["verdict"] for c in checks)
    results = {
        "schema_version": 1,
        "kvv_version": __version__,
        "started_at": started,
        "finished_at": _now(),
        "duration_s": round(time.monotonic() - clock, 3),
        "target": {"base_url": target.base_url, "model": target.model, "profile": target.profile.id,
                   "think_mode": target.think_mode},
        "suite": settings.suite,
        "config_file": settings.config_file,
        "fail_on": settings.fail_on,
        "verdict": verdict,
        "exit_code": exit_code(verdict, settings.fail_on),
        "totals": _totals(checks),
        "checks": checks,
    }
    return redactor.obj(results)


class _CheckRun:
    """One check's items, run concurrently under the shared semaphore."""

    def __init__(self, planned: PlannedCheck, client: Client, reference: Client | None, reference_model: str,
                 journal: Journal, semaphore: asyncio.Semaphore, previous: dict):
        self.planned, self.client, self.journal = planned, client, journal
        self.reference, self.reference_model = reference, reference_model
        self.semaphore, self.previous = semaphore, previous
        self.errors = dict.fromkeys(ERROR_CLASSES, 0)
        self.tokens = {"prompt_tokens": 0, "completion_tokens": 0}

    async def run(self) -> dict[str, Any]:
        check = self.planned.check
        clock = time.monotonic()
        items = await asyncio.gather(*(self._item(item) for item in self.planned.items))
        counts = {v: sum(1 for i in items if i["verdict"] == v) for v in (PASS, FAIL, ERROR)}
        n = len(items)
        evidence = [i.pop("evidence") for i in items if i.get("evidence")]
        if check.summarize is not None:
            summary = check.summarize(items, self.planned.context)
            verdict, metric, details = summary.verdict, summary.metric, summary.details
        else:
            lower, upper = wilson(counts[PASS], n)
            verdict = worst(i["verdict"] for i in items)
            metric = {"name": "pass_rate", "value": round(counts[PASS] / n, 4),
                      "lower": round(lower, 4), "upper": round(upper, 4), "confidence": 0.95}
            details = {}
        return {
            "id": check.id,
            "title": check.title,
            "detects": check.detects,
            "verdict": verdict,
            "n": n,
            "passed": counts[PASS],
            "failed": counts[FAIL],
            "errored": counts[ERROR],
            "metric": metric,
            "details": details,
            "errors": self.errors,
            "tokens": self.tokens,
            "duration_s": round(time.monotonic() - clock, 3),
            "config_line": None,
            "items": [{k: v for k, v in i.items() if k != "evidence"} for i in items],
            "evidence": evidence[:EVIDENCE_PER_CHECK],
        }

    async def _item(self, item: Item) -> dict[str, Any]:
        check_id = self.planned.check.id
        done = self.previous.get((check_id, item.id, item.digest))
        if done is not None:
            return {**{k: done[k] for k in ("verdict", "message", "requests", "attempts")},
                    "id": item.id, "mode": item.mode, "digest": item.digest, "resumed": True,
                    "data": done.get("data"), "evidence": done.get("evidence")}
        sent = {"requests": 0, "attempts": 0}
        from_reference: list[Exchange] = []      # so evidence reproduces the right endpoint

        def on_attempt(info: dict[str, Any]) -> None:
            sent["attempts"] += 1
            if info.get("error") in self.errors:
                self.errors[info["error"]] += 1
            for name in self.tokens:
                value = (info.get("usage") or {}).get(name)
                if isinstance(value, int):
                    self.tokens[name] += value
            self.journal.write("attempt", check=check_id, item=item.id, digest=item.digest, **info)

        async def send(body: dict[str, Any], *, reference: bool = False) -> Exchange:
            sent["requests"] += 1
            if not reference:
                return await self.client.chat(body, on_attempt=on_attempt)
            if self.reference is None:
                raise RuntimeError("this item needs a reference endpoint (--reference-base-url)")
            ex = await self.reference.chat({**body, "model": self.reference_model},
                                           on_attempt=lambda info: on_attempt({**info, "reference": True}))
            from_reference.append(ex)
            return ex

        async with self.semaphore:
            try:
                outcome = await item.execute(send)
            except Exception as exc:   # a check bug must not sink the run; it is reported as an error
                outcome = Outcome(ERROR, f"kvv internal error: {type(exc).__name__}: {exc}")
        result = {"id": item.id, "mode": item.mode, "verdict": outcome.verdict, "message": outcome.message,
                  "digest": item.digest, "requests": sent["requests"], "attempts": sent["attempts"],
                  "resumed": False, "data": outcome.data,
                  "evidence": self._evidence(item, outcome, from_reference)}
        self.journal.write("item", check=check_id, item=item.id, **{k: v for k, v in result.items() if k != "id"})
        return result

    def _evidence(self, item: Item, outcome: Outcome, from_reference: list[Exchange]) -> dict[str, Any] | None:
        if outcome.verdict == PASS:
            return None
        ex = outcome.exchange
        request = ex.request if ex else item.requests[0]
        return {
            "item": item.id,
            "message": outcome.message,
            "status": ex.status if ex else None,
            "request": _shorten(request),
            "response": (ex.body_excerpt if ex else "")[:EXCERPT_CHARS],
            "curl": (self.reference if any(ex is r for r in from_reference) else self.client).curl(request),
        }


def _shorten(value: Any, limit: int = 500) -> Any:
    """Long strings in a request cut down for the report; the curl line keeps the full body."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f"… ({len(value)} chars)"
    if isinstance(value, dict):
        return {k: _shorten(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, limit) for v in value]
    return value


def _totals(checks: list[dict[str, Any]]) -> dict[str, Any]:
    items = [i for c in checks for i in c["items"]]
    return {
        "checks": len(checks),
        "items": len(items),
        "requests": sum(i["requests"] for i in items),
        "attempts": sum(i["attempts"] for i in items),
        "prompt_tokens": sum(c["tokens"]["prompt_tokens"] for c in checks),
        "completion_tokens": sum(c["tokens"]["completion_tokens"] for c in checks),
        "errors": {k: sum(c["errors"][k] for c in checks) for k in ERROR_CLASSES},
    }


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
