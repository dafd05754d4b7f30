"""Run a plan against an endpoint: a probe first, then bounded concurrency, a journal line per
attempt, resume, per-check verdicts, and the results document every report is rendered from."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__
from .checks.base import Context, Item, Outcome
from .client import Client
from .config import JUDGE_API_KEY_ENV, Settings
from .errors import ConfigError, KvvError
from .exchange import Exchange
from .journal import Journal, read_journal
from .interrupt import armed
from .plan import Plan, PlannedCheck, make_plan
from .probe import EndpointUnusable, probe
from .profile import Profile, load_profile
from .progress import Progress
from .redact import Redactor
from .summary import check_result, gated, totals
from .thinking import thinking_fields
from .verdict import ERROR, ERROR_CLASSES, INCONCLUSIVE, PASS, exit_code, worst

EXCERPT_CHARS = 2000
PROBE_PROMPT = "Say 'OK' and nothing else."
PROBE_MAX_TOKENS = 16


@dataclass
class Target:
    base_url: str
    model: str
    profile: Profile
    think_mode: str
    # kvv's in-process simulated vendor ({"faults", "seed"}); None for a real endpoint.
    simulated: dict[str, Any] | None = None
    simulator: dict[str, str] | None = None  # the simulator's identity, once known (Simulator.identity)


class Interrupted(KvvError):
    """SIGINT/SIGTERM mid-run: `results` is the partial document (complete: false)."""

    def __init__(self, results: dict[str, Any]):
        self.results = results
        super().__init__("interrupted")


def resolve_target(settings: Settings) -> Target:
    if not settings.base_url:
        raise ConfigError("no endpoint: pass --base-url, set base-url in the config file, or set KVV_BASE_URL",
                          source="base-url")
    if not settings.model:
        raise ConfigError("no model: pass --model, set model in the config file, or set KVV_MODEL",
                          source="model")
    profile = load_profile(settings.profile)
    return Target(settings.base_url, settings.model, profile, settings.think_mode or profile.think_mode)


def plan_for(settings: Settings, target: Target, previous: Plan | None = None) -> Plan:
    return make_plan(settings, target.profile, target.model, target.think_mode, target.simulator, previous)


def run(settings: Settings, target: Target, plan: Plan, api_key: str | None,
        progress: Progress | None = None) -> dict[str, Any]:
    """Execute the plan and write journal.jsonl; returns the (redacted) results document.

    Raises ConfigError when --resume meets a journal of another run, Interrupted (with the
    partial results) on SIGINT/SIGTERM. An unusable endpoint is a results document too.
    `progress` hears of checks and items as they finish (kvv.progress; it never changes results).
    """
    state = _Run(settings, target, plan, api_key, progress or Progress())
    try:
        asyncio.run(state.main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        # CancelledError: the CLI's signal handling cancelled the run (kvv.interrupt.armed).
        raise Interrupted(state.results(stopped="interrupted (SIGINT/SIGTERM) before every item finished")) from None
    return state.results()


# -- what makes two runs comparable -----------------------------------------------------------

def run_record(settings: Settings, target: Target, plan: Plan) -> dict[str, Any]:
    """The journal's first line: everything that must match for --resume to reuse a verdict."""
    return {
        "kvv_version": __version__,
        # A simulated run's port is new every time: its faults and seed are what identify it.
        "endpoint": {"simulated": target.simulated} if target.simulated is not None else target.base_url,
        "model": target.model,
        "profile": target.profile.id,
        "profile_digest": profile_digest(target.profile),
        "think_mode": target.think_mode,
        "suite": settings.suite,
        "only": sorted(settings.only),
        "skip": sorted(settings.skip),
        "checks": plan.options or {p.check.id: p.context.options for p in plan.checks},
        "reference_base_url": settings.reference_base_url,
        "reference_model": settings.reference_model,
        "judge_base_url": settings.judge_base_url,
        "judge_model": settings.judge_model,
        "seed": settings.seed,
        "full_pass": settings.full_pass,
        "max_prompt_tokens": settings.max_prompt_tokens,
        "gate": settings.gate,
        "shard": list(settings.shard) if settings.shard else None,
    }


def profile_digest(profile: Profile) -> str:
    """The contract's content, wherever its file lies."""
    return _digest({k: v for k, v in dataclasses.asdict(profile).items() if k != "path"})


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resume_differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between the journal's run and this one, one phrase per field."""
    differences = []
    for name, value in now.items():
        if name == "checks":
            old = before.get("checks") or {}
            for check_id in sorted(set(old) | set(value)):
                if old.get(check_id) != value.get(check_id):
                    differences.append(f"checks.{check_id}: {_show(old.get(check_id))} → {_show(value.get(check_id))}")
        elif before.get(name) != value:
            differences.append(f"{name}: {_show(before.get(name))} → {_show(value)}")
    return differences


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, default=str)[:200]


def _previous_items(settings: Settings, record: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """With --resume: the items the journal's run finished, after proving it is this run."""
    path = Path(settings.output_dir) / "journal.jsonl"
    if not path.is_file():
        raise ConfigError(f"nothing to resume: no journal at {path} (drop --resume to start a new run)",
                          source="--resume")
    first, finished = read_journal(path)
    if first is None:
        raise ConfigError(f"{path} has no run record, so kvv cannot tell which run it belongs to: "
                          "drop --resume to start over", source="--resume")
    differences = resume_differences(first, record)
    if differences:
        raise ConfigError(f"{path} belongs to another run; --resume would reuse verdicts about a different "
                          "target or settings. Differences: " + "; ".join(differences) +
                          ". Run without --resume (or with another --output-dir) to start a new run",
                          source="--resume")
    return finished


# -- the run ----------------------------------------------------------------------------------

class _Run:
    def __init__(self, settings: Settings, target: Target, plan: Plan, api_key: str | None, progress: Progress):
        self.settings, self.target, self.plan, self.api_key = settings, target, plan, api_key
        self.progress = progress
        self.reference_key = settings.reference_api_key() if settings.reference_base_url else None
        self.judge_key = settings.judge_api_key() if settings.judge_base_url else None
        # HF_TOKEN (gated benchmark datasets) is a secret too, though it never goes to the vendor.
        self.redactor = Redactor(api_key, self.reference_key, self.judge_key, os.environ.get("HF_TOKEN"))
        self.record = run_record(settings, target, plan)
        # Checked before anything is sent or the journal is touched.
        self.previous = _previous_items(settings, self.record) if settings.resume else {}
        self.started, self.clock = _now(), time.monotonic()
        self.runners: list[_CheckRun] = []
        self.probe_notes: list[str] = []
        self.probe_requests = 0
        self.stopped: str | None = None
        self.not_started: dict[str, str] = {}       # check id -> why it was planned but not run

    async def main(self) -> None:
        settings, target = self.settings, self.target
        out = Path(settings.output_dir)
        journal = Journal(out / "journal.jsonl", self.redactor, append=settings.resume)
        semaphore = asyncio.Semaphore(settings.concurrency)
        self.budget = _Budget(settings, self.clock)
        client_options: dict[str, Any] = dict(timeout=settings.timeout, request_deadline=settings.request_deadline,
                                              max_retries=settings.max_retries, deadline=self.budget.deadline,
                                              allow_insecure_http=settings.allow_insecure_http,
                                              max_connections=settings.concurrency)
        try:
            journal.write("run", resumed=settings.resume, **self.record)
            async with contextlib.AsyncExitStack() as stack:
                # Only now may a signal stop the run: the journal says which run it is, so --resume accepts it.
                stack.enter_context(armed(asyncio.current_task()))
                client = await stack.enter_async_context(Client(target.base_url, api_key=self.api_key,
                                                                **client_options))
                try:
                    found = await probe(client, self._probe_body(), target.model)
                except EndpointUnusable as unusable:
                    journal.write("probe", ok=False, cause=unusable.cause, message=str(unusable))
                    self.stopped = f"endpoint unusable ({unusable.cause}): {unusable}"
                    return
                self.probe_notes, self.probe_requests = found.notes, found.requests
                journal.write("probe", ok=True, simulator=found.simulator, models=found.models, notes=found.notes)
                if found.simulator != target.simulator and self.plan.from_settings:
                    # Which built-in references hold depends on what the endpoint is.
                    target.simulator = found.simulator
                    self.plan = plan_for(settings, target, self.plan)
                reference = None
                if settings.reference_base_url:
                    reference = await stack.enter_async_context(
                        Client(settings.reference_base_url, api_key=self.reference_key, **client_options))
                # Without a judge of its own, kvv's simulator judges the answers it gave (BEAM).
                judge = client if target.simulator is not None else None
                if settings.judge_base_url:
                    judge = await stack.enter_async_context(
                        Client(settings.judge_base_url, api_key=self.judge_key, key_env=JUDGE_API_KEY_ENV,
                               **client_options))
                loader = _Datasets(settings, simulated=target.simulated is not None)
                for planned in self.plan.checks:
                    planned.context.datasets = loader
                self.runners = [_CheckRun(p, client, reference, settings.reference_model or target.model,
                                          journal, semaphore, self.previous, self.budget,
                                          judge=judge, judge_model=settings.judge_model or target.model,
                                          progress=self.progress)
                                for p in self.plan.checks]
                # Benchmarks and probes (costly, and meaningless on a broken contract) wait for the preflight.
                benchmarks = [r for r in self.runners if {"bench", "probes"} & set(r.planned.check.suites)]
                await asyncio.gather(*(r.run() for r in self.runners if r not in benchmarks))
                if benchmarks:
                    await self._gated(benchmarks)
                if self.budget.refused:
                    self.stopped = (f"the run's budget ({', '.join(self.budget.reasons)}) was spent with "
                                    f"{self.budget.refused} item(s) not started; --resume runs them")
        finally:
            journal.close()

    async def _gated(self, benchmarks: list[_CheckRun]) -> None:
        """Benchmarks run only after every preflight check of the run passed (upstream's rule):
        a broken contract makes their scores meaningless. --no-gate runs them anyway."""
        preflight = [r.result for r in self.runners if r not in benchmarks and "preflight" in r.planned.check.suites]
        failed = [f"{c['id']} {c['verdict']}" for c in preflight if c and c["verdict"] != PASS]
        if failed and self.settings.gate:
            reason = gated(failed)
            for runner in benchmarks:
                self.not_started[runner.planned.check.id] = reason
                self.runners.remove(runner)
            return
        await asyncio.gather(*(r.run() for r in benchmarks))

    def _probe_body(self) -> dict[str, Any]:
        profile = self.target.profile
        thinking = thinking_fields(self.target.think_mode, profile.default_mode == "thinking") \
            if len(profile.modes) > 1 else {}
        return {"model": self.target.model, "messages": [{"role": "user", "content": PROBE_PROMPT}],
                **thinking, "max_tokens": PROBE_MAX_TOKENS}

    def results(self, stopped: str | None = None) -> dict[str, Any]:
        stopped = stopped or self.stopped
        checks = [r.result or r.summary() for r in self.runners]
        for check in checks:
            check["config_line"] = self.settings.config_lines.get(check["id"])
        ran = {c["id"] for c in checks}
        not_run = [{"id": p.check.id, "title": p.check.title,
                    "reason": self.not_started.get(p.check.id, "the run stopped first")}
                   for p in self.plan.checks if p.check.id not in ran]
        not_run += [{"id": check_id, "title": self.plan.titles.get(check_id, check_id), "reason": why}
                    for check_id, why in self.plan.skipped.items()]
        # A failure found before the stop stands; otherwise a stopped run proved nothing either way.
        # Nor does a run in which no check could run (all not applicable): never a pass.
        verdict = worst([c["verdict"] for c in checks] + ([ERROR] if stopped else [])
                        + ([] if checks or stopped else [INCONCLUSIVE]))
        target = self.target
        results = {
            "schema_version": 1,
            "kvv_version": __version__,
            "started_at": self.started,
            "finished_at": _now(),
            "duration_s": round(time.monotonic() - self.clock, 3),
            "complete": stopped is None,
            "stopped": stopped,
            "target": {"base_url": target.base_url, "model": target.model, "profile": target.profile.id,
                       "profile_as_of": target.profile.as_of, "profile_source": target.profile.source,
                       "think_mode": target.think_mode, "simulated": target.simulated is not None,
                       "simulation": target.simulated, "simulator": target.simulator},
            "suite": self.settings.suite,
            "config_file": self.settings.config_file,
            "fail_on": self.settings.fail_on,
            "resumed": self.settings.resume,
            "verdict": verdict,
            "exit_code": exit_code(verdict, self.settings.fail_on),
            "notes": self.probe_notes,
            "multiple_testing": _family(self.plan),
            "shard": _shard(self.settings),
            "run": self.record,
            "totals": totals(checks, self.probe_requests),
            "checks": checks,
            "not_run": not_run,
        }
        return self.redactor.obj(results)


class _Budget:
    """What the run may spend (--max-duration, --max-requests, --max-completion-tokens): no item
    starts once one is spent; items in flight finish. The client gets the deadline too, so no
    Retry-After wait passes it."""

    def __init__(self, settings: Settings, started: float):
        self.deadline = started + settings.max_duration if settings.max_duration else None
        self.settings = settings
        self.requests = self.completion_tokens = self.refused = 0
        self.committed = 0                  # requests the items started so far may send (retries aside)
        self.reasons: list[str] = []

    def spend(self, attempt: dict[str, Any]) -> None:
        self.requests += 1                      # every HTTP attempt is a request the vendor serves
        tokens = (attempt.get("usage") or {}).get("completion_tokens")
        if isinstance(tokens, int) and tokens > 0:
            self.completion_tokens += tokens

    def refuse(self, item: Item) -> str | None:
        """Which budget keeps `item` from starting, or None."""
        s = self.settings
        reason = None
        if self.deadline is not None and time.monotonic() >= self.deadline:
            reason = f"--max-duration {s.max_duration:g} s"
        elif s.max_requests and max(self.requests, self.committed) + self._requests(item) > s.max_requests:
            reason = f"--max-requests {s.max_requests}"
        elif s.max_completion_tokens and self.completion_tokens >= s.max_completion_tokens:
            reason = f"--max-completion-tokens {s.max_completion_tokens}"
        if reason is not None:
            self.refused += 1
            if reason not in self.reasons:
                self.reasons.append(reason)
        else:
            self.committed += self._requests(item)
        return reason

    @staticmethod
    def _requests(item: Item) -> int:
        return item.request_count or len(item.requests) or 1


class _Datasets:
    """Benchmark rows, each dataset loaded once per run however many items ask for it."""

    def __init__(self, settings: Settings, *, simulated: bool):
        self.settings = settings
        # A simulated run's stand-in listens on a new port each time: caching it would only litter.
        self.use_cache = not simulated
        self._loads: dict[str, asyncio.Future] = {}

    async def __call__(self, spec: Any) -> Any:
        from . import datasets

        key = repr(spec)
        if key not in self._loads:
            self._loads[key] = asyncio.ensure_future(datasets.aload(
                spec, server=self.settings.datasets_server, use_cache=self.use_cache,
                allow_insecure_http=self.settings.allow_insecure_http))
        return await self._loads[key]


def _shard(settings: Settings) -> dict[str, int] | None:
    return {"index": settings.shard[0], "count": settings.shard[1]} if settings.shard else None


def _family(plan: Plan) -> dict[str, Any] | None:
    """How the run's benchmarks share α (results.json states it), or None without benchmarks."""
    from .checks.bench import ALPHA
    from .sequential import bonferroni_note

    benchmarks = [p for p in plan.checks if "bench" in p.check.suites]
    return bonferroni_note(ALPHA, len(benchmarks)) if benchmarks else None


class _CheckRun:
    """One check's items, run concurrently under the shared semaphore."""

    def __init__(self, planned: PlannedCheck, client: Client, reference: Client | None, reference_model: str,
                 journal: Journal, semaphore: asyncio.Semaphore, previous: dict, budget: _Budget | None = None,
                 judge: Client | None = None, judge_model: str | None = None, progress: Progress | None = None):
        self.planned, self.client, self.journal = planned, client, journal
        self.progress = progress or Progress()
        self.budget = budget
        self.reference, self.reference_model = reference, reference_model
        self.judge, self.judge_model = judge, judge_model
        self.semaphore, self.previous = semaphore, previous
        self.errors = dict.fromkeys(ERROR_CLASSES, 0)
        self.tokens = {"prompt_tokens": 0, "completion_tokens": 0}
        self.finished: dict[int, dict[str, Any]] = {}      # position in the plan -> item record
        self.clock = time.monotonic()
        self.duration: float | None = None
        self.result: dict[str, Any] | None = None
        self.stopped_early = False
        self._seen: list[dict[str, Any]] = []       # _prefix
        # Plan positions by rung: a ladder tests its rungs apart, so each rung's items need only
        # their own predecessors finished (None: the items of a check without rungs).
        self._by_rung: dict[str | None, list[int]] = {}
        for position, item in enumerate(planned.items):
            self._by_rung.setdefault(item.rung, []).append(position)
        self._next = dict.fromkeys(self._by_rung, 0)

    async def run(self) -> None:
        items = self.planned.items
        self.progress.check_started(self.planned.check.id, len(items))
        settled = self.planned.check.settled
        if settled is None:
            await asyncio.gather(*(self._item(i, item) for i, item in enumerate(items)))
        else:
            await self._run_until_settled(settled)
        self.duration = time.monotonic() - self.clock
        self.result = self.summary()        # while the journal is open for a crash's traceback
        self.progress.check_finished(self.planned.check.id, self.result)

    async def _run_until_settled(self, settled: Callable[[list[dict[str, Any]], Context], bool]) -> None:
        """Start items in plan order while the verdict is open; once it is settled, no more."""
        tasks = []
        for position, item in enumerate(self.planned.items):
            await self.semaphore.acquire()
            if settled(self._prefix(), self.planned.context):
                self.semaphore.release()
                self.stopped_early = True
                break
            tasks.append(asyncio.create_task(self._item(position, item, holding=True)))
        await asyncio.gather(*tasks)

    def _records(self) -> list[dict[str, Any]]:
        return [self.finished[i] for i in sorted(self.finished)]

    def _prefix(self) -> list[dict[str, Any]]:
        """What a sequential test may have seen: the finished items up to the first one still
        running, in plan order (it must see items in the order they were drawn) — per rung, as a
        ladder's rungs are separate tests, so one slow 64k-token item holds up only its own rung.
        Only grows, so it is extended, not rebuilt."""
        for rung, positions in self._by_rung.items():
            while self._next[rung] < len(positions) and positions[self._next[rung]] in self.finished:
                self._seen.append(self.finished[positions[self._next[rung]]])
                self._next[rung] += 1
        return self._seen

    def summary(self) -> dict[str, Any]:
        records = self._records()
        errors, tokens = dict(self.errors), dict(self.tokens)
        for item in records:
            if item.get("resumed"):       # what the earlier run spent counts too
                for name, count in (item.get("errors") or {}).items():
                    if name in errors:
                        errors[name] += count
                for name, count in (item.get("tokens") or {}).items():
                    if name in tokens:
                        tokens[name] += count
        planned = len(self.planned.items)

        def internal(exc: Exception) -> None:
            self.journal.write("internal", check=self.planned.check.id, where="summarize",
                               traceback=traceback.format_exc())

        return check_result(
            self.planned.check, self.planned.context, records, planned=planned,
            unfinished=0 if self.stopped_early else planned - len(records), stopped_early=self.stopped_early,
            errors=errors, tokens=tokens, evidence=[i["evidence"] for i in records if i.get("evidence")],
            duration_s=self.duration if self.duration is not None else time.monotonic() - self.clock,
            on_internal=internal)

    async def _item(self, position: int, item: Item, holding: bool = False) -> None:
        """Run one item (or reuse it from the journal); `holding`: the caller acquired the semaphore."""
        try:
            await self._run_item(position, item, holding)
        finally:
            if holding:
                self.semaphore.release()

    async def _run_item(self, position: int, item: Item, holding: bool) -> None:
        check_id, digest = self.planned.check.id, item.digest   # a hash of the item's requests: once
        done = self.previous.get((check_id, item.id, digest))
        if done is not None:
            self.finished[position] = {
                **{k: done.get(k) for k in ("verdict", "message", "requests", "attempts", "data", "evidence",
                                            "errors", "tokens")},
                "id": item.id, "mode": item.mode, "digest": digest, "resumed": True,
                **({"line": item.line} if item.line is not None else {}),
                "position": self.planned.positions[position]}
            self.progress.item_finished(check_id, done.get("verdict"), done.get("tokens") or {}, resumed=True)
            return
        sent = {"requests": 0, "attempts": 0}
        errors: dict[str, int] = {}
        tokens = {"prompt_tokens": 0, "completion_tokens": 0}
        from_reference: list[Exchange] = []      # so evidence reproduces the right endpoint
        from_judge: list[Exchange] = []

        def on_attempt(info: dict[str, Any]) -> None:
            sent["attempts"] += 1
            if self.budget is not None:
                self.budget.spend(info)
            if info.get("error") in self.errors:
                self.errors[info["error"]] += 1
                errors[info["error"]] = errors.get(info["error"], 0) + 1
            for name in self.tokens:
                value = (info.get("usage") or {}).get(name)
                if isinstance(value, int):
                    self.tokens[name] += value
                    tokens[name] += value
            self.journal.write("attempt", check=check_id, item=item.id, digest=digest, **info)

        def on_judge_attempt(info: dict[str, Any]) -> None:
            # The judge's calls are journaled, but not the vendor's: no budget, no vendor tokens.
            sent["attempts"] += 1
            self.journal.write("attempt", check=check_id, item=item.id, digest=digest, judge=True, **info)

        async def send(body: dict[str, Any], *, reference: bool = False, judge: bool = False) -> Exchange:
            sent["requests"] += 1
            self.progress.request_started(check_id)
            try:
                if judge:
                    if self.judge is None:
                        raise RuntimeError("this item needs a judge endpoint (--judge-base-url)")
                    ex = await self.judge.chat({**body, "model": self.judge_model}, on_attempt=on_judge_attempt)
                    from_judge.append(ex)
                    return ex
                if not reference:
                    return await self.client.chat(body, on_attempt=on_attempt)
                if self.reference is None:
                    raise RuntimeError("this item needs a reference endpoint (--reference-base-url)")
                ex = await self.reference.chat({**body, "model": self.reference_model},
                                               on_attempt=lambda info: on_attempt({**info, "reference": True}))
                from_reference.append(ex)
                return ex
            finally:
                self.progress.request_finished(check_id)

        internal = False
        async with contextlib.nullcontext() if holding else self.semaphore:
            spent = self.budget.refuse(item) if self.budget is not None else None
            if spent is not None:
                outcome = Outcome(ERROR, f"not run: the run's {spent} was spent before this item started")
            else:
                try:
                    outcome = await item.execute(send)
                except Exception as exc:   # kvv's bug: its own class, never the vendor's outage
                    internal = True
                    self.journal.write("internal", check=check_id, item=item.id, traceback=traceback.format_exc())
                    outcome = Outcome(ERROR, f"kvv internal error (a bug in kvv, not the vendor's fault): "
                                             f"{type(exc).__name__}: {exc}")
        result = {"id": item.id, "mode": item.mode, "verdict": outcome.verdict, "message": outcome.message,
                  "digest": digest, "requests": sent["requests"], "attempts": sent["attempts"],
                  "resumed": False, "position": self.planned.positions[position], "data": outcome.data,
                  "errors": errors, "tokens": tokens,
                  "evidence": self._evidence(item, outcome, from_reference, from_judge)}
        if item.line is not None:
            result["line"] = item.line
        if internal:
            result["internal"] = True
        # An internal error is not a finished item: --resume runs it again.
        self.journal.write("item", check=check_id, item=item.id, **{k: v for k, v in result.items() if k != "id"})
        self.finished[position] = result
        self.progress.item_finished(check_id, outcome.verdict, tokens)

    def _evidence(self, item: Item, outcome: Outcome, from_reference: Sequence[Exchange],
                  from_judge: Sequence[Exchange] = ()) -> dict[str, Any] | None:
        if outcome.verdict == PASS:
            return None
        ex = outcome.exchange
        request = ex.request if ex else (item.requests[0] if item.requests else None)
        client = self.reference if any(ex is r for r in from_reference) else self.client
        if any(ex is j for j in from_judge):
            client = self.judge
        assert client is not None       # an exchange came from the reference or the judge only if it is set
        return {
            "item": item.id,
            "message": outcome.message,
            "status": ex.status if ex else None,
            "request": _shorten(request),
            "response": (ex.body_excerpt if ex else "")[:EXCERPT_CHARS],
            "curl": client.curl(request) if request is not None else None,
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


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
