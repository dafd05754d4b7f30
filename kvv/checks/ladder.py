"""Ladder probes: items on rungs of growing demand (an output length, a text size, a context
depth), and a verdict per rung.

Each rung's success rate is judged by the benchmarks' anytime-valid test (kvv.sequential):
against the profile's minimum (`probes.<id>.minimum`), or, with `--reference-base-url`, paired
with the reference endpoint on the very same items. The run's probes share α, and each splits
its share over its rungs (Bonferroni), so the chance that any rung of any probe gives a false
verdict stays ≤ ALPHA however often the runner looks.

The check FAILs when some rung is shown below the minimum and names the least demanding such
rung: where the deployment starts to break. It PASSes when every rung is shown above it, and
is INCONCLUSIVE otherwise. Items go round-robin over the rungs, so a run that stops early (the
verdict settled) or at a budget leaves the rungs evenly sampled.

`describe(records, ctx, breaking rung)` returns the probe's own reading as (details, a clause
for the message); a `finding` in those details (e.g. "an over-limit request was answered")
fails the probe whatever the rates say. `left_out(ctx)` names the rungs the profile's limits
leave out ("64k tokens: above limits.output-tokens 16384"): the summary and `kvv plan` say so.

A probe's items put `{"rung": <label>, "score": 1.0 | 0.0 | None}` (None: kvv could not score
it) and, paired, `"reference_score"` in their outcome data; `rungs_of(ctx)` lists the rungs,
least demanding first, as a pure function of the context (plan, run and resume agree on it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError
from ..exchange import Exchange
from ..sequential import OneSample, Paired
from ..verdict import FAIL, INCONCLUSIVE, PASS
from .base import Check, Context, Item, Send, Summary

ALPHA = 0.01                 # for the run's probes together, as for its benchmarks (docs/architecture.md §3)
DEFAULT_MINIMUM = 0.5        # a sound deployment copies, reads and recalls nearly always; a broken one ~never
PAIRED_TOLERANCE = 0.10      # paired: how far below the reference endpoint a rung may fall
# Items per rung at most: every item sound passes a rung against 0.5 in 19 items, a vendor at
# 0.9 in 26 (p90 36), every item broken fails it in 19 (scripts/bench_verdict.py measures these).
DEFAULT_ITEMS = 40
PLAN_SEEDS = 60              # for `kvv plan`'s expectation, as the benchmarks'


@dataclass(frozen=True)
class Rung:
    label: str               # "16k tokens", "12 px glyphs": what reports call it
    size: int                # the quantity the ladder climbs


RungsOf = Callable[[Context], list[Rung]]
LeftOut = Callable[[Context], list[str]]
LEFT_OUT: dict[str, LeftOut] = {}    # probe id -> its rungs left out, for summary and plan


def interleaved(per_rung: list[list[Item]]) -> list[Item]:
    """Items of all rungs in round-robin order: rung 1's first, rung 2's first, …, then the seconds."""
    items: list[Item] = []
    for k in range(max((len(r) for r in per_rung), default=0)):
        items += [rung[k] for rung in per_rung if k < len(rung)]
    return items


def setting(ctx: Context, probe_id: str, name: str, default: Any = None) -> Any:
    """A probe setting: the check's option, else the profile's `probes.<id>.<name>`, else `default`."""
    value = ctx.options.get(name)
    if value not in (None, 0, 0.0, [], ""):
        return value
    value = (ctx.profile.probes.get(probe_id) or {}).get(name)
    return default if value is None else value


def sizes(ctx: Context, probe_id: str, name: str, default: list[int]) -> list[int]:
    """A ladder option (a list of positive integers), validated: bad input exits 2, naming the field."""
    value = setting(ctx, probe_id, name, default)
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                           for v in value):
        source = "config" if ctx.options.get(name) else ctx.profile.path
        raise ConfigError(f"expected a non-empty list of positive integers, got {value!r}", source=source,
                          path=f"checks.{probe_id}.{name}" if ctx.options.get(name) else f"probes.{probe_id}.{name}")
    return list(value)


def items_per_rung(ctx: Context, probe_id: str) -> int:
    return int(setting(ctx, probe_id, "items", DEFAULT_ITEMS))


def minimum(ctx: Context, probe_id: str) -> float:
    return float(setting(ctx, probe_id, "minimum", DEFAULT_MINIMUM))


def rung_alpha(ctx: Context, rungs: int) -> float:
    return ALPHA / max(ctx.family, 1) / max(rungs, 1)


async def sent(send: Send, body: dict[str, Any], ctx: Context) -> tuple[Exchange, Exchange | None]:
    """The vendor's exchange, and in a paired run the reference endpoint's for the same body."""
    if ctx.reference:
        vendor, reference = await asyncio.gather(send(body), send(body, reference=True))
        return vendor, reference
    return await send(body), None


def _test(ctx: Context, probe_id: str, rungs: int) -> OneSample | Paired:
    alpha = rung_alpha(ctx, rungs)
    if ctx.reference:
        return Paired(ctx.options.get("tolerance") or PAIRED_TOLERANCE, alpha)
    return OneSample(minimum(ctx, probe_id), 0.0, alpha)


def _feed(test: OneSample | Paired, data: dict[str, Any]) -> None:
    if isinstance(test, Paired):
        test.update(data.get("score"), data.get("reference_score"))
    else:
        test.update(data.get("score"))


class _Tests:
    """One test per rung, fed in plan order."""

    def __init__(self, ctx: Context, probe_id: str, rungs: list[Rung]):
        self.rungs = rungs
        self.tests = {r.label: _test(ctx, probe_id, len(rungs)) for r in rungs}
        self.fed = 0

    def feed(self, records: list[dict[str, Any]]) -> None:
        for record in records[self.fed:]:
            data = record.get("data") or {}
            rung = data.get("rung")   # the tests are keyed by label: a record without a rung feeds none
            test = None if rung is None else self.tests.get(rung)
            if test is not None:
                _feed(test, data)
        self.fed = len(records)

    def breaks_at(self) -> Rung | None:
        """The least demanding rung shown below the minimum."""
        return next((r for r in self.rungs if self.tests[r.label].verdict == FAIL), None)

    @property
    def settled(self) -> bool:
        """Every rung decided, or a rung failed and every rung below it passed: the verdict and
        where it breaks are known."""
        for rung in self.rungs:
            verdict = self.tests[rung.label].verdict
            if verdict == FAIL:
                return True
            if verdict != PASS:
                return False
        return True

    @property
    def verdict(self) -> str:
        if self.breaks_at() is not None:
            return FAIL
        if all(t.verdict == PASS for t in self.tests.values()):
            return PASS
        return INCONCLUSIVE


def settled(probe_id: str, rungs_of: RungsOf) -> Callable[[list[dict[str, Any]], Context], bool]:
    # Fed incrementally: the runner asks before every item with a longer prefix of the same records.
    running: dict[int, tuple[Context, _Tests]] = {}

    def decide(records: list[dict[str, Any]], ctx: Context) -> bool:
        entry = running.get(id(ctx))
        if entry is None or entry[0] is not ctx or entry[1].fed > len(records):
            entry = (ctx, _Tests(ctx, probe_id, rungs_of(ctx)))
            running[id(ctx)] = entry
        entry[1].feed(records)
        return entry[1].settled
    return decide


Describe = Callable[[list[dict[str, Any]], Context, "Rung | None"], tuple[dict[str, Any], str]]


def summarize(probe_id: str, rungs_of: RungsOf, unit: str, describe: Describe | None = None):
    """The check's Summary: a verdict per rung, where it breaks, and what `describe` (the probe's
    own reading of its records: truncation or corruption, the size where reading stops…) adds
    as details and a clause of the message."""

    def summary(records: list[dict[str, Any]], ctx: Context) -> Summary:
        tests = _Tests(ctx, probe_id, rungs_of(ctx))
        tests.feed(records)
        table = []
        for rung in tests.rungs:
            test = tests.tests[rung.label]
            m = test.metric()
            datas = [r.get("data") or {} for r in records]
            scores = [d.get("score") for d in datas if d.get("rung") == rung.label]
            known = [s for s in scores if s is not None]
            table.append({"rung": rung.label, "size": rung.size, "items": len(scores),
                          "errored": len(scores) - len(known),
                          "rate": round(sum(known) / len(known), 4) if known else None, "verdict": test.verdict,
                          "lower": round(m["betting_lower"], 4), "upper": round(m["betting_upper"], 4)})
        broken = tests.breaks_at()
        details: dict[str, Any] = {"rungs": table, "breaks_at": broken.label if broken else None,
                                   "alpha_per_rung": rung_alpha(ctx, len(tests.rungs))}
        if ctx.reference:
            details["against"] = f"the reference endpoint on the same items, tolerance {_tolerance(ctx):g}"
        else:
            details["against"] = f"minimum {minimum(ctx, probe_id):g} (profile {ctx.profile.id})"
        extra, clause = describe(records, ctx, broken) if describe else ({}, "")
        left_out = LEFT_OUT[probe_id](ctx) if probe_id in LEFT_OUT else []
        if left_out:
            extra["left_out"] = left_out
            clause = "; ".join([c for c in (clause, f"left out: {'; '.join(left_out)}") if c])
        # A finding beyond the rates (an over-limit request answered, a stale prefix cache) fails the probe.
        finding = extra.pop("finding", None)
        details.update(extra)
        verdict = FAIL if finding else tests.verdict
        # The metric people see: the breaking rung's, else the least certain one's.
        worst = broken or min(tests.rungs, key=lambda r: tests.tests[r.label].metric()["betting_lower"])
        metric = {**_rounded(tests.tests[worst.label].metric()), "name": f"success rate at {worst.label}",
                  "rung": worst.label}
        message = _sentence(tests.verdict, table, broken, unit, details, clause)
        if finding:
            details["finding"] = finding
            message = f"FAIL: {finding}; " + message
        return Summary(verdict, metric, details, message)
    return summary


def _tolerance(ctx: Context) -> float:
    return ctx.options.get("tolerance") or PAIRED_TOLERANCE


def _rounded(metric: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metric.items()}


def _sentence(verdict: str, table: list[dict[str, Any]], broken: Rung | None, unit: str,
              details: dict[str, Any], clause: str) -> str:
    """"FAIL at 16k tokens: exact ≤ 0.08 (12 items) against minimum 0.5; 1k, 4k pass; …"."""
    def rate(row: dict[str, Any]) -> str:
        return "no items" if row["rate"] is None else f"{row['rate']:.2f} over {row['items']}"
    passed = [row["rung"] for row in table if row["verdict"] == PASS]
    if verdict == FAIL and broken is not None:
        row = next(r for r in table if r["rung"] == broken.label)
        text = (f"FAIL: {unit} breaks at {broken.label}: rate ≤ {row['upper']:.2f} ({rate(row)}), "
                f"{details['against']}")
        text += f"; {', '.join(passed)} pass" if passed else "; no rung below it passed"
    elif verdict == PASS:
        text = f"PASS: {unit} holds at every rung ({', '.join(passed)}), {details['against']}"
    else:
        open_rungs = [f"{row['rung']} {rate(row)}" for row in table if row["verdict"] != PASS]
        text = f"undecided: {unit} not shown either way at {'; '.join(open_rungs)}, {details['against']}"
    return f"{text}; {clause}" if clause else text


def ladder_check(probe_id: str, title: str, detects: str, build: Callable[[Context], list[Item]],
                 options: dict[str, Any], rungs_of: RungsOf, unit: str, describe: Describe | None = None,
                 *, endpoint_sensitive: bool = False, left_out: LeftOut | None = None) -> Check:
    """A probe in the `probes` suite, judged rung by rung. `options` gets `minimum`, `tolerance`
    (paired) and `items` (per rung) added."""
    if left_out is not None:
        LEFT_OUT[probe_id] = left_out
    return Check(probe_id, title, detects, ("probes",), build,
                 {"minimum": 0.0, "tolerance": 0.0, "items": 0, **options},
                 summarize(probe_id, rungs_of, unit, describe), settled=settled(probe_id, rungs_of),
                 endpoint_sensitive=endpoint_sensitive)




def expectation(planned: Any) -> str | None:
    """What early stopping should save, for `kvv plan` (no network): items per rung for a sound
    rung (95 % success) to pass and for a broken one (none) to fail."""
    from ..sequential import plan_one_sample

    ctx, check = planned.context, planned.check
    if "probes" not in check.suites or not planned.rungs():
        return None
    per_rung = max(r["items"] for r in planned.rungs())
    left_out = LEFT_OUT[check.id](ctx) if check.id in LEFT_OUT else []
    note = f"; left out: {'; '.join(left_out)}" if left_out else ""
    if ctx.reference:
        return (f"up to {per_rung} paired items per rung; each rung stops once it is shown within or beyond "
                f"tolerance{note}")
    m, alpha = minimum(ctx, check.id), rung_alpha(ctx, len(planned.rungs()))
    sound = plan_one_sample(0.95, m, 0.0, alpha, max_items=per_rung, seeds=PLAN_SEEDS, verdict=PASS)
    broken = plan_one_sample(0.0, m, 0.0, alpha, max_items=per_rung, seeds=PLAN_SEEDS, verdict=FAIL)
    return (f"up to {per_rung} items per rung; against minimum {m:g} a sound rung (95 % right) passes in "
            f"{sound.phrase()}, a broken one fails in {broken.phrase()} (α = {alpha:.2g} per rung){note}")
