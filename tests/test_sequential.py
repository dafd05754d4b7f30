"""The anytime-valid benchmark verdict (kvv.sequential): hand-worked values, and seeded simulations
(fast) of its error rates, coverage, certificate, resume and errored items."""

from __future__ import annotations

import json
import math
import random
from fractions import Fraction as F

import pytest

from kvv.sequential import (BettingTest, OneSample, Paired, bernoulli_draw, bonferroni, bonferroni_note,
                            clopper_pearson, eb_confidence_sequence, paired_draw, plan_one_sample,
                            plan_paired, reference_bounds, run, simulate, summarize)
from kvv.sequential import _reaches, _steps


def test_wealth_steps_by_hand_fail_side():
    # y = 1, 0, 1 at margin m = 0.6 (both sides), c = 1/2; μ̂, σ̂² regularised by one fake
    # observation (1/2, 1/4).
    # t=1: μ̂0 = 1/2, σ̂²0 = 1/4. Mean below m: K_P bets 0. K_F: λ = (0.6 − 0.5)/(1/4 + 0.1²) = 5/13
    #      (cap 0.5/0.4 = 1.25); y = 1: K_F = 1 − 5/13 · 0.4 = 11/13.
    #      then μ̂1 = (1/2 + 1)/2 = 3/4, Σ(y − μ̂_i)² = (1 − 3/4)² = 1/16.
    # t=2: μ̂1 = 3/4, σ̂²1 = (1/4 + 1/16)/2 = 5/32. K_P: λ = 0.15/(5/32 + 0.15²) = 0.839 > cap
    #      0.5/0.6 = 5/6, so 5/6; y = 0: K_P = 1 − 5/6 · 0.6 = 1/2. K_F bets 0.
    #      then μ̂2 = 1.5/3 = 1/2, Σ = 1/16 + 1/4 = 5/16.
    # t=3: μ̂2 = 1/2, σ̂²2 = (1/4 + 5/16)/3 = 3/16. K_F: λ = 0.1/(3/16 + 1/100) = 40/79;
    #      y = 1: K_F = 11/13 · (1 − 40/79 · 0.4) = 11/13 · 63/79.
    test = BettingTest(0.6, 0.6, alpha=1e-9)
    test.update(1)
    assert test.e_fail == pytest.approx(11 / 13, abs=1e-12) and test.e_pass == 1.0
    test.update(0)
    assert test.e_pass == pytest.approx(0.5, abs=1e-12) and test.e_fail == pytest.approx(11 / 13, abs=1e-12)
    test.update(1)
    assert test.e_fail == pytest.approx(float(F(11, 13) * F(63, 79)), abs=1e-12)
    assert test.e_pass == pytest.approx(0.5, abs=1e-12)
    assert test.wealths["peak_pass"] == 1.0 and test.verdict == "inconclusive"
    assert test.n == 3 and test.mean == pytest.approx(2 / 3)


def test_wealth_steps_by_hand_pass_side():
    # y = 1, 1, 0, 1 at m = 0.4: the mean stays above m, so K_F bets 0 throughout.
    m = F(2, 5)
    # t=1: λ = 0.1/(1/4 + 1/100) = 5/13 (cap 1/2 / 0.4 = 5/4); y = 1: K_P = 1 + 5/13 · 3/5 = 16/13.
    # t=2: μ̂ = 3/4, σ̂² = 5/32: λ = 0.35/(5/32 + 0.35²) = 1.2556 → cap 5/4; K_P ·= 1 + 5/4 · 3/5 = 7/4.
    # t=3: μ̂ = 5/6, σ̂² = (1/4 + 1/16 + 1/36)/3 = 49/432: λ = (13/30)/(49/432 + (13/30)²) = 1.44 → 5/4;
    #      y = 0: K_P ·= 1 − 5/4 · 2/5 = 1/2.
    # t=4: μ̂ = 5/8, σ̂² = (1/4 + 13/144 + 25/64)/4 = 421/2304: λ = (9/40)/(421/2304 + (9/40)²) = 0.964
    #      (under the cap); y = 1: K_P ·= 1 + λ · 3/5.
    lam4 = F(9, 40) / (F(421, 2304) + F(9, 40) ** 2)
    assert lam4 < F(5, 4)
    expected = [F(16, 13), F(16, 13) * F(7, 4), F(16, 13) * F(7, 4) / 2, F(16, 13) * F(7, 4) / 2 * (1 + lam4 * (1 - m))]
    test = BettingTest(0.4, 0.4, alpha=1e-9)
    for y, wealth in zip([1, 1, 0, 1], expected, strict=True):
        test.update(y)
        assert test.e_pass == pytest.approx(float(wealth), abs=1e-12)
        assert test.e_fail == 1.0
    assert test.wealths["peak_pass"] == pytest.approx(float(expected[1]), abs=1e-12)


def test_verdicts_at_one_over_alpha():
    # Ten straight failures against m = 0.84 at α = 0.01: K_F crosses 100 and the test FAILs,
    # and the first verdict is kept whatever the in-flight items say afterwards.
    test = BettingTest(0.84, 0.84, alpha=0.01)
    n = 0
    while not test.decided:
        test.update(0)
        n += 1
        assert n < 30
    assert test.verdict == "fail" and test.decided_at == n and test.e_value_at_decision >= 100
    for _ in range(5):
        test.update(1)
    assert test.verdict == "fail" and test.decided_at == n and test.n == n + 5


def test_eb_sequence_by_hand():
    # y = 1, 0, 1, 1, α = 0.5 (a = 1/4 per side, log(1/a) = log 4). λ_t = sqrt(2 log 4 /
    # (σ̂²_{t−1} t log(1 + t))) is 4.0, 2.8, 1.9, 1.6: all truncated to c = 1/2. v_i = 4(y_i − μ̂_{i−1})²
    # with μ̂ = 1/2, 3/4, 1/2, 5/8: v = 1, 9/4, 1, 9/16. ψ_E(1/2) = (log 2 − 1/2)/4.
    bounds = eb_confidence_sequence([1, 0, 1, 1], alpha=0.5)
    psi = (math.log(2) - 0.5) / 4
    penalty = (1 + 9 / 4 + 1 + 9 / 16) * psi
    centre, half = 1.5 / 2, (math.log(4) + penalty) / 2
    assert bounds[-1][0] == pytest.approx(centre - half, abs=1e-12)
    assert bounds[-1][1] == pytest.approx(centre + half, abs=1e-12)
    # t = 1: λ = 1/2, v = 1: centre 1, half-width (log 4 + ψ_E(1/2))/(1/2).
    assert bounds[0][0] == pytest.approx(1 - (math.log(4) + psi) / 0.5, abs=1e-12)


def test_eb_sequence_matches_a_direct_transcription():
    # Theorem 2 written out the slow way (μ̂, σ̂² recomputed from scratch at every t) on 60
    # items, where λ_t falls below the truncation after the first dozen or so.
    rng = random.Random(3)
    ys = [rng.choice([0.0, 0.5, 1.0, 1.0]) for _ in range(60)]
    alpha = 0.1
    log_term = math.log(2 / alpha)

    def mu(t):                       # μ̂_t over the first t items
        return (0.5 + sum(ys[:t])) / (t + 1)

    def sigma2(t):
        return (0.25 + sum((ys[i] - mu(i + 1)) ** 2 for i in range(t))) / (t + 1)

    lams = [min(math.sqrt(2 * log_term / (sigma2(t - 1) * t * math.log(1 + t))), 0.5) for t in range(1, 61)]
    assert min(lams) < 0.5
    penalty = sum(4 * (ys[i] - mu(i)) ** 2 * (-math.log(1 - lams[i]) - lams[i]) / 4 for i in range(60))
    centre = sum(lam * y for lam, y in zip(lams, ys, strict=True)) / sum(lams)
    half = (log_term + penalty) / sum(lams)
    lower, upper = eb_confidence_sequence(ys, alpha=alpha)[-1]
    assert lower == pytest.approx(centre - half, abs=1e-12) and upper == pytest.approx(centre + half, abs=1e-12)
    # The test's interval is the same sequence, intersected over time and clipped.
    test = BettingTest.from_observations(ys, 0.5, 0.5, alpha=0.05, interval_alpha=alpha)
    raw = eb_confidence_sequence(ys, alpha=alpha)
    assert test.interval() == pytest.approx((max(0, max(lo for lo, _ in raw)), min(1, min(hi for _, hi in raw))),
                                            abs=1e-12)


def _three_point(mean_shift_down, discordance):
    """Y ∈ {0, 1/2, 1} as a paired design's (D + 1)/2: P(Y=0) − P(Y=1) = mean_shift_down."""
    down, up = (discordance + mean_shift_down) / 2, (discordance - mean_shift_down) / 2

    def draw(seed):
        rng = random.Random(seed)
        while True:
            u = rng.random()
            yield 0.0 if u < down else 1.0 if u < down + up else 0.5
    return draw


@pytest.mark.parametrize("margin,draw", [
    (0.6, bernoulli_draw(0.6)),                         # true mean exactly at the margin
    (0.485, _three_point(0.03, 0.10)),                   # paired, τ = 0.03, 10 % discordant, drift −τ
])
def test_false_pass_and_false_fail_at_the_margin_stay_below_alpha(margin, draw):
    # At the margin both wealths are martingales: each may cross 1/α with probability ≤ α.
    alpha = 0.05
    tests = simulate(lambda: BettingTest(margin, margin, alpha), draw, seeds=400, max_items=500)
    plan = summarize(tests, max_items=500)
    assert plan.verdicts.get("pass", 0) / 400 <= alpha
    assert plan.verdicts.get("fail", 0) / 400 <= alpha


def test_confidence_sequence_covers_at_all_times():
    alpha = 0.1
    for mean, draw in [(0.3, bernoulli_draw(0.3)), (0.5 - 0.02 / 2, _three_point(0.02, 0.2))]:
        missed = 0
        for seed in range(200):
            test = BettingTest(0.5, 0.5, alpha=1e-12, interval_alpha=alpha)
            for _, y in zip(range(300), draw(seed), strict=False):
                test.update(y)
                lower, upper = test.interval()
                if not lower <= mean <= upper:
                    missed += 1
                    break
        assert missed / 200 <= alpha


def test_certifiable_margin_agrees_with_the_verdict_and_is_monotone():
    ys = list(zip(range(1000), bernoulli_draw(0.89)(7), strict=False))
    ys = [y for _, y in ys]
    tests = [OneSample(0.89, 0.05, 0.01, observations=ys[:n]) for n in (200, 400, 600, 800, 1000)]
    margins = [t.certifiable_margin() for t in tests]
    assert margins == sorted(margins, reverse=True)                  # more items, smaller margin
    tau = margins[-1]
    assert 0.0 < tau < 0.08
    # Had the tolerance been τ* (a hair above), the same items would have given PASS; a bit
    # below, not.
    assert OneSample(0.89, tau + 1e-9, 0.01, observations=ys).verdict == "pass"
    assert OneSample(0.89, tau - 1e-3, 0.01, observations=ys).verdict != "pass"
    # A smaller α asks for more evidence: a larger margin.
    assert OneSample(0.89, 0.05, 0.001, observations=ys).certifiable_margin() > tau
    # The rejected margins form an interval [0, bound) on a fine grid (the search does not
    # assume it, but the bound is only as tight as that).
    for stream in (ys, [y for _, y in zip(range(600), _three_point(0.0, 0.1)(2), strict=False)]):
        steps = _steps(stream)
        rejected = [_reaches(steps, j / 1000, 100, 0.5) for j in range(1, 1000)]
        first_kept = rejected.index(False)
        assert not any(rejected[first_kept:])


def test_fail_bound_is_the_upper_bound_dual_to_fail():
    test = run(BettingTest(0.84, 0.84, 0.01), bernoulli_draw(0.445)(1), max_items=1000)
    assert test.verdict == "fail"
    upper = test.fail_bound()
    assert test.mean < upper <= 0.84
    again = BettingTest.from_observations(test.observations, upper + 1e-9, upper + 1e-9, 0.01)
    assert again.verdict == "fail"
    assert BettingTest.from_observations(test.observations, upper - 1e-3, upper - 1e-3, 0.01).verdict != "fail"


def test_resume_reconstruction_equals_incremental():
    rng = random.Random(5)
    stream = [None if rng.random() < 0.05 else (1.0 if rng.random() < 0.8 else 0.0) for _ in range(300)]
    stream[10] = (0.0, 0.5)
    live = BettingTest(0.84, 0.86, 0.01)
    for y in stream:
        live.update(y)
    saved = json.loads(json.dumps(live.observations))
    resumed = BettingTest.from_observations(saved, 0.84, 0.86, 0.01)
    for attr in ("n", "scored", "errored", "mean", "verdict", "decided_at", "e_fail", "e_pass", "wealths"):
        assert getattr(resumed, attr) == getattr(live, attr), attr
    assert resumed.interval() == live.interval() and resumed.pass_bound() == live.pass_bound()
    # Half before the interruption, half after, is the same as all at once.
    half = BettingTest.from_observations(saved[:150], 0.84, 0.86, 0.01)
    for y in saved[150:]:
        half.update(y)
    assert half.e_pass == live.e_pass and half.interval() == live.interval()
    one = OneSample(0.89, 0.05, reference_n=1000, observations=saved)
    assert one.metric() == OneSample(0.89, 0.05, reference_n=1000, observations=one.observations).metric()
    pairs = [[1.0, 1.0], [0.0, 1.0], [None, 1.0], [1.0, 0.0], [1.0, None]] * 20
    paired = Paired(0.03, observations=pairs)
    assert paired.metric() == Paired(0.03, observations=json.loads(json.dumps(paired.observations))).metric()


def test_clopper_pearson_exact_values():
    assert clopper_pearson(0, 10, 0.05)[1] == pytest.approx(1 - 0.05 ** 0.1, abs=1e-9)
    assert clopper_pearson(10, 10, 0.05)[0] == pytest.approx(0.05 ** 0.1, abs=1e-9)
    assert clopper_pearson(0, 10, 0.05)[0] == 0.0 and clopper_pearson(10, 10, 0.05)[1] == 1.0
    low, high = clopper_pearson(5, 10, 0.025)            # the textbook 95 % interval for 5/10
    assert low == pytest.approx(0.187086, abs=1e-6) and high == pytest.approx(0.812914, abs=1e-6)


def test_reference_n_spends_part_of_alpha():
    exact = OneSample(0.89, 0.05, 0.01)
    metric = exact.metric()
    assert metric["reference_exact"] is True and metric["alpha_test"] == 0.01 and metric["alpha_reference"] == 0
    assert exact.test.m_fail == exact.test.m_pass == pytest.approx(0.84)
    spent = OneSample(0.89, 0.05, 0.01, reference_n=1000)
    metric = spent.metric()
    assert metric["reference_exact"] is False and metric["alpha_test"] == metric["alpha_reference"] == 0.005
    assert (metric["reference_lower"], metric["reference_upper"]) == reference_bounds(0.89, 1000, 0.005)
    assert 0.86 < metric["reference_lower"] < 0.89 < metric["reference_upper"] < 0.92
    assert spent.test.m_fail == pytest.approx(metric["reference_lower"] - 0.05)
    assert spent.test.m_pass == pytest.approx(metric["reference_upper"] - 0.05)
    # By simulation: a reference measured on 100 items (true 0.8) and a vendor exactly at the
    # margin 0.75. Taking the measured r as exact fails the vendor far more often than α;
    # spending part of α on it keeps both errors ≤ α.
    alpha, seeds = 0.05, 200
    naive = {"pass": 0, "fail": 0}
    honest = {"pass": 0, "fail": 0}
    for seed in range(seeds):
        rng = random.Random(10_000 + seed)
        r_hat = sum(rng.random() < 0.8 for _ in range(100)) / 100
        for counts, n_r in ((naive, None), (honest, 100)):
            test = run(OneSample(r_hat, 0.05, alpha, reference_n=n_r), bernoulli_draw(0.75)(seed), max_items=600)
            if test.verdict in counts:
                counts[test.verdict] += 1
    assert honest["fail"] / seeds <= alpha and honest["pass"] / seeds <= alpha
    assert naive["fail"] / seeds > 2 * alpha


def test_errored_items_blur_never_fake():
    # Every scored item right, one in five unscored: counted as failures the vendor is at 0.8,
    # below the margin 0.84, so it never passes, however long it runs; it cannot fail either.
    test = BettingTest(0.84, 0.84, 0.01)
    for i in range(2000):
        test.update(None if i % 5 == 4 else 1.0)
    assert test.verdict == "inconclusive" and test.errored == 400 and test.mean == 1.0
    assert test.interval()[0] <= 0.81
    assert BettingTest.from_observations([1.0] * 100, 0.84, 0.84, 0.01).verdict == "pass"
    # All unscored: nothing is decided, nothing is known.
    nothing = BettingTest.from_observations([None] * 500, 0.84, 0.84, 0.01)
    assert nothing.verdict == "inconclusive" and nothing.interval() == (0.0, 1.0) and nothing.mean is None
    # Errors that hide wrong answers (a vendor at 0.80 whose wrong answers error half the time
    # looks like 0.89 on the items it scored): dropping them would pass it; counting them as
    # failures never does.
    faked = 0
    for seed in range(100):
        rng = random.Random(seed)
        test = BettingTest(0.84, 0.84, 0.01)
        for _ in range(1000):
            right = rng.random() < 0.8
            test.update(1.0 if right else (None if rng.random() < 0.5 else 0.0))
            if test.decided:
                break
        faked += test.verdict == "pass"
    assert faked <= 1
    # A gross fault still fails through errors (they count as successes for FAIL).
    draw = bernoulli_draw(0.4)(3)
    gross = BettingTest(0.84, 0.84, 0.01)
    for i, y in zip(range(200), draw, strict=False):
        gross.update(None if i % 10 == 0 else y)
    assert gross.verdict == "fail"
    # Paired: the vendor's missing score is a wrong answer for PASS, a right one for FAIL.
    paired = Paired(0.03)
    for _ in range(300):
        paired.update(None, 1.0)
    assert paired.verdict == "inconclusive" and paired.discordance is None


def test_bad_scores_are_refused():
    test = BettingTest(0.5)
    for bad in (1.5, -0.1, float("nan"), (0.6, 0.4), (0.1, 0.2, 0.3)):
        with pytest.raises(ValueError):
            test.update(bad)
    with pytest.raises(ValueError):
        BettingTest(0.9, 0.8)                    # FAIL margin above PASS margin
    with pytest.raises(ValueError):
        OneSample(0.03, 0.05)                    # a tolerance at or above the reference


def test_bonferroni():
    assert bonferroni(0.01, 3) == pytest.approx(0.01 / 3) and bonferroni(0.01, 0) == 0.01
    note = bonferroni_note(0.01, 4)
    assert note["alpha_per_check"] == 0.0025 and note["checks"] == 4 and "0.0025" in note["statement"]


def test_paired_design_values():
    paired = Paired(0.03, 0.01)
    for vendor, reference in [(1, 1), (0, 1), (1, 0), (0, 0), (1, 1)]:
        paired.update(vendor, reference)
    metric = paired.metric()
    assert paired.test.m_pass == pytest.approx(0.485)
    assert metric["discordance"] == pytest.approx(0.4) and metric["difference"] == pytest.approx(0.0)
    assert metric["value"] == metric["reference"] == pytest.approx(0.6)
    assert -1 <= metric["lower"] <= 0 <= metric["upper"] <= 1


def test_planning_is_seeded_and_in_the_expected_range():
    halved = plan_one_sample(0.445, 0.89, 0.05, 0.01, seeds=100)
    assert halved.verdicts == {"fail": 100} and 10 <= halved.median <= 25 and halved.p90 <= 50
    assert plan_one_sample(0.445, 0.89, 0.05, 0.01, seeds=100) == halved
    paired = plan_paired(-0.445, 0.445, 0.03, 0.01, seeds=100)
    assert paired.verdicts == {"fail": 100} and 20 <= paired.median <= 45
    never = plan_one_sample(0.89, 0.89, 0.05, 0.01, seeds=20, max_items=50, verdict="fail")
    assert never.median is None and never.reached == 0.0
    with pytest.raises(ValueError):
        paired_draw(-0.2, 0.1)
