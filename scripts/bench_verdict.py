"""Speed and honesty of the benchmark verdict (issue 7, item 11; DESIGN.md §9).

    python scripts/bench_verdict.py [--seeds 200] [--items 1000] [--reference 0.89]
        [--tolerance 0.05] [--alpha 0.01] [--reference-n 1000] [--drift-items 6000]
        [--discordance 0.10] [--seed 0]

An OCRBench-sized benchmark (1,000 items, reference 0.89, τ = 0.05, α = 0.01 per side),
scores drawn with replacement. No network: each scenario takes a `draw(seed) -> iterator` of
scores (one-sample) or of (vendor, reference) pairs (paired), here right/wrong draws from
random.Random(seed); to measure through the simulator instead, pass draws that score the
simulator's answers (the scenario functions do not care where the scores come from).

Prints a markdown table. The first block treats the reference as exact (the setting of the
figures quoted in DESIGN.md §9 and issue 7: ~17 items one-sample and ~30 paired to FAIL a
halved accuracy, ~1,400 one-sample and ~1,100 paired items for a 2τ drift at τ = 0.03). The
second block gives the reference its own sampling error (`--reference-n`, as the kimi-k3
profile does for OCRBench): each seed draws the published value from Binomial(n_r, r)/n_r,
so the error rates shown are the joint ones the α-spending controls.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from kvv.sequential import OneSample, Paired, bernoulli_draw, clopper_pearson, paired_draw, run, summarize

Draw = Callable[[int], Iterable[Any]]
Factory = Callable[[int], Any]          # seed -> a fresh OneSample / Paired test


@dataclass
class Config:
    seeds: int
    seed: int
    items: int
    reference: float
    tolerance: float
    alpha: float
    reference_n: int | None
    drift_items: int
    discordance: float


def runs(factory: Factory, draw: Draw, cfg: Config, max_items: int, *, stop: bool = True) -> list[Any]:
    return [run(factory(cfg.seed + i), draw(cfg.seed + i), max_items=max_items, stop=stop)
            for i in range(cfg.seeds)]


def _rate(tests: Sequence[Any], verdict: str) -> str:
    """Share of runs ending in `verdict`, with its exact 95 % upper bound (200 seeds cannot
    resolve a rate of 0.01 finely: one run is 0.005)."""
    k, n = sum(t.verdict == verdict for t in tests), len(tests)
    return f"{k / n:.3f} ({k}/{n}; 95% ≤ {clopper_pearson(k, n, 0.05)[1]:.3f})"


def _items(tests: Sequence[Any], verdict: str, max_items: int) -> str:
    plan = summarize(tests, max_items=max_items, verdict=verdict)
    median = "—" if plan.median is None else f"{plan.median:,}"
    p90 = f"> {max_items:,}" if plan.p90 is None else f"{plan.p90:,}"
    return f"{median} / {p90}"


def _within(tests: Sequence[Any], verdict: str, items: int) -> str:
    k = sum(t.verdict == verdict and t.decided_at <= items for t in tests)
    return f"{k / len(tests):.0%}"


# -- scenarios: each takes a factory and a draw, returns table rows

def margin_errors(factory: Factory, draw: Draw, cfg: Config, truth: str) -> list[list[str]]:
    """True value exactly at the margin: P(PASS) and P(FAIL) over a full run must each be ≤ α."""
    tests = runs(factory, draw, cfg, cfg.items)
    return [[f"false PASS at the margin ({truth})", _rate(tests, "pass"), f"≤ {cfg.alpha:g}"],
            [f"false FAIL at the margin ({truth})", _rate(tests, "fail"), f"≤ {cfg.alpha:g}"]]


def healthy(factory: Factory, draw: Draw, cfg: Config) -> list[list[str]]:
    """A vendor exactly at the reference: false alarms (FAIL), and how often it PASSes."""
    tests = runs(factory, draw, cfg, cfg.items)
    return [[f"false alarm (FAIL) on a healthy vendor (true = {cfg.reference:.3f})", _rate(tests, "fail"),
             f"≤ {cfg.alpha:g}"],
            [f"healthy vendor: PASS within {cfg.items:,} items (median / p90 items)",
             f"{_rate(tests, 'pass')}; {_items(tests, 'pass', cfg.items)}", "—"]]


def items_to_fail(factory: Factory, draw: Draw, cfg: Config, label: str, target: str,
                  max_items: int | None = None) -> list[list[str]]:
    max_items = max_items or cfg.items
    tests = runs(factory, draw, cfg, max_items)
    cell = _items(tests, "fail", max_items)
    if max_items > cfg.items:
        cell += f"; FAIL within {cfg.items:,}: {_within(tests, 'fail', cfg.items)}"
    return [[f"items to FAIL (median / p90): {label}", cell, target]]


def certifiable(factory: Factory, draw: Draw, cfg: Config, target: str) -> list[list[str]]:
    """A healthy vendor run to the end (no early stop): the margin it could claim."""
    margins = sorted(t.certifiable_margin() for t in runs(factory, draw, cfg, cfg.items, stop=False))
    p10, p90 = margins[len(margins) // 10], margins[(9 * len(margins)) // 10]
    return [[f"certifiable margin after {cfg.items:,} items, healthy vendor (median, p10–p90)",
             f"{statistics.median(margins):.3f} ({p10:.3f}–{p90:.3f})", target]]


# -- the table

def one_sample_factory(cfg: Config, tolerance: float, reference_n: int | None) -> Factory:
    def make(seed: int) -> OneSample:
        published = cfg.reference
        if reference_n:
            rng = random.Random(10**9 + seed)    # the published number is itself a draw
            published = sum(rng.random() < cfg.reference for _ in range(reference_n)) / reference_n
        return OneSample(published, tolerance, cfg.alpha, reference_n=reference_n)
    return make


def paired_factory(cfg: Config, tolerance: float) -> Factory:
    return lambda seed: Paired(tolerance, cfg.alpha)


def table(cfg: Config) -> list[list[str]]:
    r, tau, alpha = cfg.reference, cfg.tolerance, cfg.alpha
    small = 0.03                                         # the paired design's tolerance
    halved = r / 2
    rows: list[list[str]] = []
    blocks: list[tuple[str, int | None]] = [("reference exact", None)]
    if cfg.reference_n:
        blocks.append((f"reference-n = {cfg.reference_n:,} (α split: half on the reference)", cfg.reference_n))
    for title, n_r in blocks:
        rows.append([f"**{title}**", "", ""])
        one = one_sample_factory(cfg, tau, n_r)
        rows += margin_errors(one, bernoulli_draw(r - tau), cfg, f"true = r − τ = {r - tau:.3f}")
        rows += healthy(one, bernoulli_draw(r), cfg)
        rows += items_to_fail(one, bernoulli_draw(halved), cfg,
                              f"accuracy halved ({halved:.3f}), one-sample, τ = {tau:g}", "~17; p90 ≤ 50")
        rows += items_to_fail(one_sample_factory(cfg, small, n_r), bernoulli_draw(r - 2 * small), cfg,
                              f"2τ drift at τ = {small:g} (true {r - 2 * small:.2f}), one-sample", "~1,400",
                              cfg.drift_items)
        rows += certifiable(one, bernoulli_draw(r), cfg, "±0.035–0.05 (DESIGN §3)")
    rows.append(["**paired (live reference; no published-number error)**", "", ""])
    pair = paired_factory(cfg, small)
    # reference right on r of the items, the vendor on half of those (and nowhere else)
    rows += items_to_fail(pair, paired_draw(-halved, halved, accuracy=halved / (1 - halved)), cfg,
                          f"accuracy halved, paired, τ = {small:g} (vendor right only where the reference is)",
                          "~30")
    d = cfg.discordance
    rows += items_to_fail(pair, paired_draw(-2 * small, d), cfg,
                          f"2τ drift at τ = {small:g}, paired, discordance {d:.0%} (total)", "~1,100",
                          cfg.drift_items)
    rows += items_to_fail(pair, paired_draw(-2 * small, d + 2 * small), cfg,
                          f"2τ drift at τ = {small:g}, paired, discordance {d:.0%} + drift = {d + 2 * small:.0%}",
                          "—", cfg.drift_items)
    rows += margin_errors(pair, paired_draw(-small, d), cfg,
                          f"paired, τ = {small:g}, true drift −τ, discordance {d:.0%}")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--items", type=int, default=1000, help="benchmark size (max items per run)")
    parser.add_argument("--reference", type=float, default=0.89)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=0.01, help="per side")
    parser.add_argument("--reference-n", type=int, default=1000,
                        help="sample size behind the published reference, for the second block (0: skip it)")
    parser.add_argument("--drift-items", type=int, default=6000,
                        help="max items for the 2τ-drift rows (draws with replacement, or epochs)")
    parser.add_argument("--discordance", type=float, default=0.10)
    args = parser.parse_args(argv)
    cfg = Config(args.seeds, args.seed, args.items, args.reference, args.tolerance, args.alpha,
                 args.reference_n or None, args.drift_items, args.discordance)
    started = time.perf_counter()
    rows = table(cfg)
    print(f"Benchmark verdicts: {cfg.items:,} items, reference {cfg.reference:g}, τ = {cfg.tolerance:g} "
          f"(0.03 where stated), α = {cfg.alpha:g} per side, {cfg.seeds} seeds from {cfg.seed}\n")
    print("| scenario | measured | target |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\n({time.perf_counter() - started:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
