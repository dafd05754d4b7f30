"""Benchmarks as checks: OCRBench, MMMU-Pro and AIME 2025, judged by an anytime-valid test.

Items are draws of dataset rows, seeded and uniform with replacement, so the estimand is the
benchmark's expected accuracy and the test (kvv.sequential.OneSample) may be looked at after
every item: the runner stops sending once it is settled (Check.settled). A gross fault fails in
a few dozen items, not after the whole set.

The verdict compares the vendor's accuracy with the profile's reference r (its source and its
sample size n_r: part of α is spent on r's own error) under a tolerance τ: FAIL when the
accuracy is shown below r − τ, PASS when shown above it, else INCONCLUSIVE with the
certifiable margin (the smallest τ the items seen support).

The build sends nothing: it draws row indices from the dataset's size as the cache, a local
file or the profile's catalogue knows it. Rows are loaded on first use through
`Context.datasets`, which the runner provides.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict
from typing import Any

from .. import benchmarks
from ..benchmarks.base import Params, RowError
from ..errors import ConfigError
from ..exchange import Exchange
from ..sequential import OneSample, Paired
from ..verdict import ERROR, FAIL, PASS
from .base import Check, Context, Item, NotApplicable, Outcome, Send, Summary, answer_problem, transport_problem

ALPHA = 0.01                    # per side, for the run's benchmarks together (docs/architecture.md §3)
DEFAULT_TOLERANCE = 0.05        # what one pass against a published number can resolve (issue 7 item 5)
PAIRED_TOLERANCE = 0.03         # the same items to both endpoints: item difficulty cancels
# check id -> (benchmark module id, dataset key in kvv/data/datasets.yaml)
BENCHMARKS = {"ocrbench": ("ocrbench", "ocrbench"), "mmmu-pro": ("mmmu-pro", "mmmu-pro"),
              "aime2025": ("aime2025", "aime2025")}
# dataset: a local JSONL file (relative to the config); dataset-id/config/split: other viewer-API coordinates.
OPTIONS = {"dataset": None, "dataset-id": "", "config": "", "split": "", "reference": 0.0, "reference-n": 0,
           "tolerance": 0.0, "max-items": 0, "epochs": 0, "max-tokens": 0,
           "seed": 0}     # 0: the profile's (seed: the run's --seed)


def _setting(ctx: Context, check_id: str) -> dict[str, Any]:
    """The profile's entry for this benchmark, with the check's options over it."""
    entry = dict((ctx.profile.benchmarks or {}).get(check_id) or {})
    options = ctx.options
    for name in ("reference", "reference-n", "tolerance", "max-tokens"):
        if options.get(name):
            entry[name] = options[name]
    return entry


def _build(check_id: str):
    benchmark_id, dataset_key = BENCHMARKS[check_id]
    module = benchmarks.benchmark(benchmark_id)

    def build(ctx: Context) -> list[Item]:
        from .. import datasets       # httpx and the viewer client only when a benchmark is planned

        setting = _setting(ctx, check_id)
        if not setting.get("modes"):
            raise NotApplicable(f"profile {ctx.profile.id} runs no {check_id} (upstream does not run it for "
                                f"this model); a profile's `benchmarks.{check_id}.modes` enables it")
        mode = ctx.profile.default_mode
        spec = datasets.find_spec(dataset_key).override(ctx.options.get("dataset-id") or None,
                                                       ctx.options.get("config") or None,
                                                       ctx.options.get("split") or None)
        local = None
        if ctx.options.get("dataset"):
            spec = spec.override(ctx.options["dataset"])
            if spec.local is not None:
                local = datasets.load(spec)   # read now: a bad local file exits 2 before anything is sent
        rows, _ = datasets.known_rows(spec, server=ctx.datasets_server)
        if not rows:
            raise NotApplicable(f"the size of {spec.label} is unknown until it is fetched: "
                                f"run `{datasets.pull_command(spec)}` first")
        per_mode = setting["modes"].get(mode)
        if per_mode is None:
            raise ConfigError(f"no parameters for mode {mode}", source=ctx.profile.path,
                              path=f"benchmarks.{check_id}.modes")
        per_mode = {**per_mode, **({"max-tokens": setting["max-tokens"]} if setting.get("max-tokens") else {})}
        params = Params.for_mode(ctx.model, per_mode, think_mode=ctx.think_mode, mode=mode)
        epochs = ctx.options.get("epochs") or per_mode.get("epochs", 1)
        draws = ctx.options.get("max-items") or rows * epochs
        rng = random.Random(f"{ctx.options.get('seed') or ctx.seed}:{check_id}")
        # A draw is a position in [0, 1): the row is picked from the dataset as it turns out to be,
        # so draws stay uniform even when it is not the size the plan could know.
        if ctx.full_pass:     # each row once per epoch, in a seeded order (the test's guarantee assumes draws)
            order = [(row + 0.5) / rows for _ in range(epochs) for row in rng.sample(range(rows), rows)][:draws]
        else:
            order = [rng.random() for _ in range(draws)]
        items = []
        for k, position in enumerate(order):
            sends = 2 if ctx.reference else 1
            items.append(Item(f"draw {k + 1}", [], mode=mode, token_ceiling=params.max_tokens * sends,
                              run=_answer(module, spec, position, params, ctx, local), request_count=sends,
                              expects={"dataset": spec.label, "position": position, "params": asdict(params)}))
        return items
    return build


def _answer(module: Any, spec: Any, position: float, params: Params, ctx: Context, local: Any = None):
    """The item's run for a draw at `position` of dataset `spec` (a kvv.datasets.DatasetSpec);
    `local`: the local file's rows, already read at plan time."""
    from .. import datasets

    async def run(send: Send) -> Outcome:
        try:
            dataset = local if local is not None else await ctx.datasets(spec)
        except datasets.DatasetError as exc:        # kvv could not get the row: not the vendor's fault
            return Outcome(ERROR, f"dataset unavailable: {exc}", None, {"row": None, "score": None})
        if not len(dataset):
            return Outcome(ERROR, f"{spec.label} has no rows", None, {"row": None, "score": None})
        record = dataset[min(int(position * len(dataset)), len(dataset) - 1)]
        row = {**record.fields, **{name: image.data_url() for name, image in record.images.items()}}
        try:
            body = module.prompt(row, params)
        except RowError as exc:       # the dataset's fault, not the vendor's: this item cannot be scored
            return Outcome(ERROR, f"{spec.label}, row {record.index}: {exc}", None,
                           {"row": record.index, "score": None})
        if ctx.reference:               # paired: the same item to the official endpoint, at once
            ex, official = await asyncio.gather(send(body), send(body, reference=True))
            theirs, _ = _scored(module, row, official)
            if theirs is None:
                return Outcome(ERROR, f"reference endpoint: {_trouble(official)}", official,
                               {"row": record.index, "score": None, "reference_score": None})
        else:
            ex, theirs = await send(body), None
        ours, data = _scored(module, row, ex)
        data = {"row": record.index, **data, "reference_score": theirs}
        if ours is None:                # unknown: blurs the verdict, never fakes one
            return Outcome(ERROR, _trouble(ex), ex, data)
        if data.get("no_answer"):       # refused, broken or empty: the vendor's defect, scored wrong
            return Outcome(FAIL, f"no answer: {data['no_answer']}", ex, data)
        message = (f"row {record.index} {'right' if ours else 'wrong'}: answered {data['parsed']!r}, "
                   f"gold {data['gold']!r}")
        if theirs is not None:
            message += f"; the reference was {'right' if theirs else 'wrong'}"
        return Outcome(PASS if ours else FAIL, message, ex, data)
    return run


def _scored(module: Any, row: dict[str, Any], ex: Exchange) -> tuple[float | None, dict[str, Any]]:
    """(1.0 right / 0.0 wrong / None unknown, the item's facts) for one endpoint's answer."""
    problem = transport_problem(ex)
    if problem is not None and problem.verdict == ERROR:
        return None, {"score": None}
    unanswered = answer_problem(ex) if problem is None else problem.message
    text = ex.message.content if unanswered is None and ex.message else None
    score = module.score(row, text)
    value = 1.0 if score.correct else 0.0
    data = {"score": value, **score.to_dict(), **_lengths(ex)}
    if unanswered is not None:
        data["no_answer"] = unanswered
    return value, data


def _trouble(ex: Exchange) -> str:
    problem = transport_problem(ex)
    return problem.message if problem is not None else "no answer"


def _lengths(ex: Exchange) -> dict[str, Any]:
    usage = ex.usage or {}
    reasoning = ex.message.reasoning_content if ex.message else None
    return {"completion_tokens": usage.get("completion_tokens"), "finish_reason": ex.finish_reason,
            "reasoning_chars": len(reasoning or "")}


def _test(records: list[dict[str, Any]], ctx: Context, check_id: str) -> OneSample | Paired | None:
    """The sequential test fed with `records`: paired with a live reference, else one-sample
    against the profile's (or the check's) published reference; None with neither."""
    setting = _setting(ctx, check_id)
    if ctx.reference:
        test: OneSample | Paired = Paired(ctx.options.get("tolerance") or PAIRED_TOLERANCE, _alpha(ctx))
    elif setting.get("reference"):
        test = OneSample(setting["reference"], setting.get("tolerance") or DEFAULT_TOLERANCE, _alpha(ctx),
                         reference_n=setting.get("reference-n") or None)
    else:
        return None
    for record in records:
        _feed(test, record)
    return test


def _alpha(ctx: Context) -> float:
    """α per side for this benchmark: Bonferroni over the run's benchmarks, so the chance that
    any of them gives a false verdict stays ≤ ALPHA."""
    return ALPHA / max(ctx.family, 1)


def _feed(test: OneSample | Paired, record: dict[str, Any]) -> None:
    data = record.get("data") or {}
    if isinstance(test, Paired):
        test.update(data.get("score"), data.get("reference_score"))
    else:
        test.update(data.get("score"))


def _settled(check_id: str):
    # The runner asks before every item with a longer prefix of the same run: feed only what is
    # new (rebuilding the test each time would cost O(n²) for a 1,000-item benchmark).
    running: dict[int, tuple[Context, int, OneSample | Paired | None]] = {}

    def settled(records: list[dict[str, Any]], ctx: Context) -> bool:
        entry = running.get(id(ctx))
        if entry is None or entry[0] is not ctx or entry[1] > len(records):
            test = _test(records, ctx, check_id)
        else:
            test = entry[2]
            if test is not None:
                for record in records[entry[1]:]:
                    _feed(test, record)
        running[id(ctx)] = (ctx, len(records), test)
        return test is not None and test.decided
    return settled


def _summarize(check_id: str):
    def summarize(records: list[dict[str, Any]], ctx: Context) -> Summary:
        scores = [(r.get("data") or {}).get("score") for r in records]
        known = [s for s in scores if s is not None]
        accuracy = sum(known) / len(known) if known else None
        details: dict[str, Any] = {"scored": len(known), "errored": len(scores) - len(known),
                   "unparsed": sum(1 for r in records if (r.get("data") or {}).get("unparsed"))}
        test = _test(records, ctx, check_id)
        if test is None:
            details["reference"] = (f"none: set checks.{check_id}.reference (and reference-n), a profile's "
                                    f"benchmarks.{check_id}.reference, or --reference-base-url to judge against one")
            metric = {"name": "accuracy", "value": None if accuracy is None else round(accuracy, 4)}
            measured = "nothing scored" if accuracy is None else f"accuracy {accuracy:.3f} over {len(known)} items"
            return Summary("inconclusive", metric, details, f"measured, not judged: {measured}; no reference ("
                           f"set checks.{check_id}.reference and reference-n, or --reference-base-url)")
        metric = {"name": "accuracy", **test.metric()}
        metric["value"] = None if accuracy is None else round(accuracy, 4)
        details["source"] = ("live: the same items sent to --reference-base-url" if ctx.reference
                             else _setting(ctx, check_id).get("reference-source"))
        return Summary(test.verdict, metric, details, _sentence(test.verdict, len(records), metric))
    return summarize


def _sentence(verdict: str, n: int, m: dict[str, Any]) -> str:
    """"FAIL after 23 items: accuracy ≤ 0.61 (99%), reference 0.89 − 0.05"."""
    confidence, tau = f"{(1 - m['alpha']) * 100:g}%", f"{m['tolerance']:g}"
    if m.get("design") == "paired":
        items, subject, reference = f"{n} paired items", "vendor − reference on the same items", "reference"
        subject += f", discordance {m['discordance']:.3f}"
        against, value = f"−{tau}", m["difference"]
    else:
        reference = f"reference {m['reference']:g}" + ("" if m.get("reference_exact") else f" (n = {m['reference_n']})")
        items, subject, against, value = f"{n} items", "accuracy", f"{reference} − {tau}", m["value"]
    if verdict == FAIL:
        return f"FAIL after {items}: {subject} ≤ {m['betting_upper']:.3f} ({confidence}), {against}"
    if verdict == PASS:
        return f"PASS after {items}: {subject} ≥ {m['betting_lower']:.3f} ({confidence}), {against}"
    return (f"undecided after {items}: {subject} {value:.3f}, within {m['certifiable_margin']:.3f} of the {reference} "
            f"at {confidence} (tolerance {tau}: a drop below that was not shown either)")


PLAN_SEEDS = 60      # enough for a median and a p90 in `kvv plan`, fast enough to print at once


def expectation(planned: Any) -> str | None:
    """What early stopping should save, for `kvv plan` (no network): items to FAIL a halved
    accuracy, and in paired mode items a 2τ drift needs at an assumed 10 % discordance."""
    from ..sequential import plan_one_sample, plan_paired

    ctx, n = planned.context, len(planned.items)
    if "bench" not in planned.check.suites:      # the benchmarks, and beam: the same test
        return None
    if ctx.reference:
        tau = ctx.options.get("tolerance") or PAIRED_TOLERANCE
        drift = plan_paired(-2 * tau, 0.10, tau, _alpha(ctx), max_items=n, seeds=PLAN_SEEDS, verdict=FAIL)
        return (f"up to {n} paired items; a drift of {2 * tau:g} at 10% discordance fails in "
                f"{drift.phrase()} (α = {_alpha(ctx):g} per side)")
    setting = _setting(ctx, planned.check.id)
    if not setting.get("reference"):
        return f"all {n} items: no reference, so nothing settles early"
    r, tau = setting["reference"], setting.get("tolerance") or DEFAULT_TOLERANCE
    halved = plan_one_sample(r / 2, r, tau, _alpha(ctx), reference_n=setting.get("reference-n") or None,
                             max_items=n, seeds=PLAN_SEEDS, verdict=FAIL)
    return (f"up to {n} items; a halved accuracy ({r / 2:.3g} against {r:g} − {tau:g}) fails in "
            f"{halved.phrase()} (α = {_alpha(ctx):g} per side)")


def _check(check_id: str, title: str, detects: str) -> Check:
    return Check(check_id, title, detects, ("bench",), _build(check_id), dict(OPTIONS), _summarize(check_id),
                 settled=_settled(check_id))


CHECKS = [
    _check("ocrbench", "OCRBench accuracy within tolerance of the reference",
           "a broken image pipeline (images dropped, downscaled, mis-encoded) or a degraded model: "
           "OCR answers fall below the official accuracy"),
    _check("mmmu-pro", "MMMU-Pro (10 options) accuracy within tolerance of the reference",
           "vision preprocessing or multi-image input broken, or a quantised model scoring lower"),
    _check("aime2025", "AIME 2025 accuracy within tolerance of the reference",
           "long-output faults (KV cache, quantisation, truncation) losing accuracy on long reasoning"),
]
