"""Anytime-valid verdicts for benchmark scores: a sequential test at a margin, by betting.

Construction: Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting",
JRSS-B 86(1), 2024 (arXiv:2010.09686), §3–5.

* **The test** (their capital processes, §4, and the aGRAPA bet, §5). Each item gives a score
  Y ∈ [0, 1]. Two wealth processes start at 1 and are multiplied per item by

      K_F:  1 − λ_F,t (Y_t − m_fail)     bets that the mean is *below* m_fail
      K_P:  1 + λ_P,t (Y_t − m_pass)     bets that the mean is *above* m_pass

  with λ ≥ 0 *predictable* (computed from items 1..t−1 only). If the mean is ≥ m_fail, each
  factor of K_F has conditional expectation 1 − λ(μ − m_fail) ≤ 1, so K_F is a nonnegative
  supermartingale and Ville's inequality gives P(∃t: K_F,t ≥ 1/α) ≤ α: "FAIL when K_F ≥ 1/α"
  is wrong with probability ≤ α *however often one looks*, so kvv may stop at the first item
  that settles it. The same for K_P and PASS. Otherwise the verdict is INCONCLUSIVE.

  Wealth stays positive: 1 + λ(Y − m) > 0 for all Y ∈ [0, 1] iff λ < 1/m (worst case Y = 0),
  and 1 − λ(Y − m) > 0 iff λ < 1/(1 − m) (worst case Y = 1). As in the paper the bets are
  truncated to c/m and c/(1 − m), c = 1/2, so a single item can at worst halve a wealth.

  The bet, aGRAPA ("approximate growth-rate adaptive to the particular alternative"): the
  growth-optimal constant bet on the items so far solves Σ (Y_i − m)/(1 + λ(Y_i − m)) = 0;
  with 1/(1 + x) ≈ 1 − x this is Σ (Y_i − m) = λ Σ (Y_i − m)², and Σ (Y_i − m)²/t ≈
  σ̂² + (μ̂ − m)², so

      λ_P,t = clip( (μ̂_{t−1} − m) / (σ̂²_{t−1} + (μ̂_{t−1} − m)²),  0,  c/m )
      λ_F,t = clip( (m − μ̂_{t−1}) / (σ̂²_{t−1} + (μ̂_{t−1} − m)²),  0,  c/(1 − m) )

  with the paper's regularised running estimates (one fake observation at mean 1/2, variance
  1/4): μ̂_t = (1/2 + Σ_{i≤t} Y_i)/(t + 1), σ̂²_t = (1/4 + Σ_{i≤t} (Y_i − μ̂_i)²)/(t + 1).
  The bet adapts to the variance and to the distance from the margin: a gross fault is bet
  on hard (FAIL in ~20 items), a healthy vendor near the margin bets ~0 (no false alarm).

* **The reported interval** (their Theorem 2, the predictable plug-in empirical-Bernstein
  confidence sequence, PrPl-EB, §3):

      λ_t = min( sqrt( 2 log(1/a) / (σ̂²_{t−1} t log(1 + t)) ), c ),   a = α/2 per side
      bounds_t = Σλ_iY_i / Σλ_i  ∓  ( log(1/a) + Σ v_i ψ_E(λ_i) ) / Σλ_i
      v_i = 4 (Y_i − μ̂_{i−1})²,   ψ_E(λ) = (−log(1 − λ) − λ)/4

  a two-sided 1 − α sequence (α/2 each side), valid at every n; kvv reports its running
  intersection (also valid), clipped to [0, 1]. It is the summary for people; the verdict
  is the betting test's, and the two can differ slightly near the margin.

* **Why not Hoeffding.** Hoeffding-type sequences assume the worst variance of a [0, 1]
  variable, 1/4. A benchmark at 0.89 has variance ≈ 0.1 and a paired difference with 10 %
  discordant items ≈ 0.025 (on the Y scale): the sample size needed scales with the variance,
  so Hoeffding would need 2.5–10× the items. Both constructions here adapt to the variance.

Errored items (kvv could not score them) are *interval* observations Y ∈ [lo, hi] (None means
[0, 1]): the PASS side (K_P, lower bound) is fed lo, the FAIL side (K_F, upper bound) is fed hi.
Since K_P's factor increases in Y, K_P on the lo stream is, pathwise, at most the same bets
applied to the true scores, which is a supermartingale under "mean ≤ m_pass" whatever caused
the errors: so errors blur a verdict, never fake one, and each side stays anytime-valid. The
errored items must be fed at the position where they occurred (not appended at the end).

Sampling: the guarantees assume each item's score has conditional mean μ given the past, as
when items are drawn uniformly *with replacement* (kvv's default order; μ is then the
benchmark's accuracy, the same estimand as a full pass). Drawn without replacement
(`--full-pass`) the conditional mean drifts with what was already drawn and the supermartingale
argument no longer applies as such; the paper's §6 has the without-replacement versions.

Stdlib only, and deterministic: no randomness inside the tests (the planners take a seed).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from .verdict import FAIL, INCONCLUSIVE, PASS

TRUNCATION = 0.5           # c: a single item can at worst halve a wealth (the paper's 1/2)
PRIOR_MEAN = 0.5           # the regularising fake observation of μ̂ and σ̂²
PRIOR_VARIANCE = 0.25
DEFAULT_ALPHA = 0.01       # per side: docs/architecture.md §3 / issue 7
REFERENCE_SHARE = 0.5      # of α spent on a published reference's own sampling error
_GRID = 50                 # scan resolution of the certificate search (then bisection)
_BISECT = 45

Observation = Any          # float in [0, 1], None (errored: [0, 1]) or (lo, hi)


# --------------------------------------------------------------------------- building blocks

def _bounds(observation: Observation) -> tuple[float, float]:
    """(lo, hi) of one observation: a score y is (y, y); None (unscored) is (0, 1)."""
    if observation is None:
        return 0.0, 1.0
    if isinstance(observation, (tuple, list)):
        if len(observation) != 2:
            raise ValueError(f"an interval observation is (lo, hi), not {observation!r}")
        lo, hi = (0.0 if observation[0] is None else float(observation[0]),
                  1.0 if observation[1] is None else float(observation[1]))
    else:
        lo = hi = float(observation)
    if not 0.0 <= lo <= hi <= 1.0:          # also rejects NaN
        raise ValueError(f"a score must lie in [0, 1] (an interval needs lo ≤ hi), not {observation!r}")
    return lo, hi


class _Moments:
    """The paper's regularised running mean and variance, μ̂_t and σ̂²_t (one fake observation
    at mean 1/2, variance 1/4). `mean`/`variance` before `add(y_t)` are μ̂_{t−1}, σ̂²_{t−1}."""

    __slots__ = ("count", "total", "squares")

    def __init__(self) -> None:
        self.count, self.total, self.squares = 0, 0.0, 0.0

    @property
    def mean(self) -> float:
        return (PRIOR_MEAN + self.total) / (self.count + 1)

    @property
    def variance(self) -> float:
        return (PRIOR_VARIANCE + self.squares) / (self.count + 1)

    def add(self, y: float) -> None:
        self.total += y
        self.count += 1
        self.squares += (y - self.mean) ** 2


def agrapa_bet(mean: float, variance: float, margin: float, truncation: float = TRUNCATION) -> float:
    """aGRAPA bet λ ≥ 0 of a wealth multiplied by 1 + λ(Y − margin) (betting the mean is above
    `margin`), from the predictable μ̂_{t−1}, σ̂²_{t−1}; truncated to [0, truncation/margin].
    The bet below m is the mirror image: agrapa_bet(1 − μ̂, σ̂², 1 − m), truncated to c/(1 − m)."""
    gap = mean - margin
    if gap <= 0.0:
        return 0.0
    return min(gap / (variance + gap * gap), truncation / margin)


def _eb_lambda(variance: float, t: int, log_term: float, truncation: float) -> float:
    """λ_t of the PrPl-EB sequence (Theorem 2) at time t ≥ 1 from σ̂²_{t−1}."""
    return min(math.sqrt(2.0 * log_term / (variance * t * math.log1p(t))), truncation)


def _psi_e(lam: float) -> float:
    return (-math.log1p(-lam) - lam) / 4.0


class _EBLower:
    """Running one-sided PrPl-EB lower bound at level a per side (log_term = log(1/a))."""

    __slots__ = ("log_term", "truncation", "t", "sum_lam", "sum_lam_y", "penalty")

    def __init__(self, log_term: float, truncation: float) -> None:
        self.log_term, self.truncation = log_term, truncation
        self.t, self.sum_lam, self.sum_lam_y, self.penalty = 0, 0.0, 0.0, 0.0

    def add(self, y: float, mean_prev: float, variance_prev: float) -> None:
        self.t += 1
        lam = _eb_lambda(variance_prev, self.t, self.log_term, self.truncation)
        self.sum_lam += lam
        self.sum_lam_y += lam * y
        self.penalty += 4.0 * (y - mean_prev) ** 2 * _psi_e(lam)

    @property
    def bound(self) -> float:
        if not self.sum_lam:
            return -math.inf
        return (self.sum_lam_y - self.log_term - self.penalty) / self.sum_lam


def eb_confidence_sequence(ys: Iterable[float], alpha: float = 0.05,
                           truncation: float = TRUNCATION) -> list[tuple[float, float]]:
    """The raw PrPl-EB confidence sequence (Waudby-Smith & Ramdas 2024, Theorem 2) at two-sided
    level 1 − α (α/2 per side): (lower_t, upper_t) after each of the scores, neither clipped to
    [0, 1] nor intersected over time. For hand checks; BettingTest.interval() is what to report."""
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must lie in (0, 1)")
    log_term = math.log(2.0 / alpha)
    moments, low, high, out = _Moments(), _EBLower(log_term, truncation), _EBLower(log_term, truncation), []
    for y in ys:
        mean, variance = moments.mean, moments.variance
        low.add(y, mean, variance)
        high.add(1.0 - y, 1.0 - mean, variance)
        moments.add(y)
        out.append((low.bound, 1.0 - high.bound))
    return out


def _steps(values: Sequence[float]) -> list[tuple[float, float, float]]:
    """(μ̂_{t−1}, σ̂²_{t−1}, y_t) for every t: all the bet needs, whatever the margin."""
    moments, out = _Moments(), []
    for y in values:
        out.append((moments.mean, moments.variance, y))
        moments.add(y)
    return out


def _reaches(steps: Sequence[tuple[float, float, float]], margin: float, threshold: float,
             truncation: float) -> bool:
    """Did K_P at `margin` (aGRAPA bet) reach `threshold` at some time? (the running maximum)"""
    wealth, cap = 1.0, truncation / margin
    for mean, variance, y in steps:
        gap = mean - margin
        if gap > 0.0:
            wealth *= 1.0 + min(gap / (variance + gap * gap), cap) * (y - margin)
            if wealth >= threshold:
                return True
    return False


def _largest_rejected(steps: Sequence[tuple[float, float, float]], threshold: float,
                      truncation: float) -> float:
    """inf{m ∈ (0, 1): K_P(m) never reached threshold}: every m below it was rejected.

    aGRAPA's bet depends on m, so K_P is not monotone in m by construction (in practice it is
    near the crossing; tests check it on a fine grid). The search therefore does not assume
    it: it scans a grid of step 1/50 upwards for the first margin not rejected and bisects only
    inside that cell, so the result is the infimum of the non-rejected set up to the grid (a
    non-rejected island strictly inside a lower cell, never seen in practice, would be missed).
    """
    lo = 0.0                                     # "mean ≥ 0" needs no evidence
    for j in range(1, _GRID + 1):
        m = j / _GRID
        if m >= 1.0 or not _reaches(steps, m, threshold, truncation):
            hi = m
            break
        lo = m
    for _ in range(_BISECT):
        mid = (lo + hi) / 2
        if mid <= lo or mid >= hi:
            break
        if _reaches(steps, mid, threshold, truncation):
            lo = mid
        else:
            hi = mid
    return lo


# --------------------------------------------------------------------------- the test

class BettingTest:
    """Sequential two-one-sided test of the mean of scores in [0, 1], by betting.

    FAIL when the wealth K_F betting "mean < m_fail" reaches 1/α; PASS when K_P betting
    "mean > m_pass" reaches 1/α; otherwise INCONCLUSIVE (Waudby-Smith & Ramdas 2024, §4–5;
    aGRAPA bet; see the module docstring for the formulas). Each verdict is wrong with
    probability ≤ α at whatever item it is reached: the test may be looked at after every item.
    The first verdict reached is kept (items still in flight when it was reached may be fed
    and count for n, the mean and the interval, but do not change it).

    `update(y)` takes a score in [0, 1], None for an item that could not be scored, or
    (lo, hi) for one known only to lie in that range. `from_observations` rebuilds the same
    state from `observations` (for --resume): the result is identical to feeding one by one.
    Deterministic: no randomness inside.
    """

    def __init__(self, m_fail: float, m_pass: float | None = None, alpha: float = DEFAULT_ALPHA, *,
                 truncation: float = TRUNCATION, interval_alpha: float | None = None) -> None:
        m_pass = m_fail if m_pass is None else m_pass
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must lie in (0, 1)")
        if not 0.0 < truncation < 1.0:
            raise ValueError("truncation must lie in (0, 1)")
        if not m_fail < 1.0:
            raise ValueError(f"FAIL margin {m_fail} ≥ 1: every score would fail")
        if not m_pass > 0.0:
            raise ValueError(f"PASS margin {m_pass} ≤ 0: every score would pass (tolerance ≥ reference?)")
        if m_fail > m_pass:
            raise ValueError(f"FAIL margin {m_fail} above PASS margin {m_pass}")
        self.m_fail, self.m_pass, self.alpha, self.truncation = m_fail, m_pass, alpha, truncation
        self.interval_alpha = alpha if interval_alpha is None else interval_alpha
        if not 0.0 < self.interval_alpha < 1.0:
            raise ValueError("interval_alpha must lie in (0, 1)")
        self.threshold = 1.0 / alpha
        self._observations: list[Observation] = []
        self._lo: list[float] = []               # pessimistic stream: PASS side, lower bound
        self._hi: list[float] = []               # optimistic stream: FAIL side, upper bound
        self._m_lo, self._m_hi = _Moments(), _Moments()
        log_term = math.log(2.0 / self.interval_alpha)
        self._cs_lo, self._cs_hi = _EBLower(log_term, truncation), _EBLower(log_term, truncation)
        self._lower, self._upper = 0.0, 1.0
        self.e_fail = self.e_pass = 1.0
        self.peak_e_fail = self.peak_e_pass = 1.0
        self._scored, self._scored_total = 0, 0.0
        self._verdict: str | None = None
        self.decided_at: int | None = None
        self.e_value_at_decision: float | None = None

    @classmethod
    def from_observations(cls, observations: Iterable[Observation], m_fail: float,
                          m_pass: float | None = None, alpha: float = DEFAULT_ALPHA,
                          **options: Any) -> "BettingTest":
        test = cls(m_fail, m_pass, alpha, **options)
        for observation in observations:
            test.update(observation)
        return test

    def update(self, observation: Observation) -> str:
        """Feed one item (a score, None if unscored, or (lo, hi)); returns the verdict so far."""
        lo, hi = _bounds(observation)
        self._observations.append(list(observation) if isinstance(observation, tuple) else observation)
        self._lo.append(lo)
        self._hi.append(hi)
        if lo == hi:
            self._scored += 1
            self._scored_total += lo
        # PASS side on the pessimistic stream: wealth, then the lower bound.
        mean, variance = self._m_lo.mean, self._m_lo.variance
        lam = agrapa_bet(mean, variance, self.m_pass, self.truncation)
        self.e_pass *= 1.0 + lam * (lo - self.m_pass)
        self._cs_lo.add(lo, mean, variance)
        self._m_lo.add(lo)
        # FAIL side on the optimistic stream, mirrored (Y → 1 − Y, m → 1 − m).
        mean, variance = self._m_hi.mean, self._m_hi.variance
        lam = agrapa_bet(1.0 - mean, variance, 1.0 - self.m_fail, self.truncation)
        self.e_fail *= 1.0 - lam * (hi - self.m_fail)
        self._cs_hi.add(1.0 - hi, 1.0 - mean, variance)
        self._m_hi.add(hi)
        self.peak_e_pass = max(self.peak_e_pass, self.e_pass)
        self.peak_e_fail = max(self.peak_e_fail, self.e_fail)
        self._lower = max(self._lower, self._cs_lo.bound)
        self._upper = min(self._upper, 1.0 - self._cs_hi.bound)
        if self._verdict is None:
            if self.e_fail >= self.threshold:
                self._verdict, self.e_value_at_decision = FAIL, self.e_fail
            elif self.e_pass >= self.threshold:
                self._verdict, self.e_value_at_decision = PASS, self.e_pass
            if self._verdict is not None:
                self.decided_at = self.n
        return self.verdict

    # -- state

    @property
    def n(self) -> int:
        """Items fed, scored or not."""
        return len(self._lo)

    @property
    def scored(self) -> int:
        return self._scored

    @property
    def errored(self) -> int:
        """Items fed as unscored (None or a (lo, hi) range)."""
        return self.n - self._scored

    @property
    def mean(self) -> float | None:
        """Mean score of the scored items (None before any); errored items are not in it."""
        return self._scored_total / self._scored if self._scored else None

    @property
    def verdict(self) -> str:
        return self._verdict or INCONCLUSIVE

    @property
    def decided(self) -> bool:
        return self._verdict is not None

    @property
    def wealths(self) -> dict[str, float]:
        """Current e-values (a nonnegative supermartingale under its null is an e-value at any
        stopping time) and their running maxima (what the verdict compares with 1/α)."""
        return {"fail": self.e_fail, "pass": self.e_pass,
                "peak_fail": self.peak_e_fail, "peak_pass": self.peak_e_pass}

    @property
    def observations(self) -> list[Observation]:
        """What was fed, JSON-ready (a (lo, hi) range as a list): journal it for --resume."""
        return list(self._observations)

    def interval(self) -> tuple[float, float]:
        """PrPl-EB confidence sequence (Theorem 2), two-sided 1 − interval_alpha (half each
        side), running intersection, clipped to [0, 1]; valid at every n. Errored items count
        as 0 for the lower bound and 1 for the upper."""
        return max(0.0, min(self._lower, 1.0)), min(1.0, max(self._upper, 0.0))

    def pass_bound(self) -> float:
        """The largest margin m at which the items seen would have given PASS, i.e. a lower
        confidence bound for the mean at level 1 − α, one-sided, by duality with the test.

        Validity for a test looked at throughout: the monitored test at margin m would have
        stopped with PASS at the first time K_P(m) crossed 1/α, so this uses the running
        maximum of K_P(m), not its last value. "mean ≥ bound" is false only if the mean itself
        was rejected, i.e. K_P(mean) crossed 1/α at some time, which by Ville has probability
        ≤ α: so the bound holds at every n simultaneously and may be quoted whenever the run
        ends. The bound is the infimum of the margins never rejected (see _largest_rejected),
        so it does not rely on K_P being monotone in m. At m_pass it agrees with the verdict:
        PASS iff pass_bound() ≥ m_pass (up to bisection precision, 1e-12)."""
        return _largest_rejected(_steps(self._lo), self.threshold, self.truncation)

    def fail_bound(self) -> float:
        """The smallest margin m at which the items seen would have given FAIL: an upper
        confidence bound for the mean (one-sided, 1 − α), the mirror image of pass_bound()
        on the optimistic stream (K_F(m) on Y is K_P(1 − m) on 1 − Y)."""
        return 1.0 - _largest_rejected(_steps([1.0 - y for y in self._hi]), self.threshold, self.truncation)


# --------------------------------------------------------------------------- reference error

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b), a, b > 0."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _beta_quantile(q: float, a: float, b: float) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid <= lo or mid >= hi:
            break
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(successes: float, n: int, alpha: float) -> tuple[float, float]:
    """Exact (Clopper-Pearson) one-sided bounds for a binomial proportion, each at level 1 − α:
    P(p < lower) ≤ α and P(p > upper) ≤ α. `successes` may be fractional (a published accuracy
    times its n): the beta quantiles are defined for real arguments."""
    if n <= 0:
        return 0.0, 1.0
    if not 0.0 <= successes <= n:
        raise ValueError("successes must lie in [0, n]")
    lower = 0.0 if successes == 0 else _beta_quantile(alpha, successes, n - successes + 1.0)
    upper = 1.0 if successes == n else _beta_quantile(1.0 - alpha, successes + 1.0, n - successes)
    return lower, upper


def reference_bounds(reference: float, reference_n: int | None, alpha: float) -> tuple[float, float]:
    """(lower, upper) of the reference's true accuracy, each one-sided at 1 − α (Clopper-Pearson
    on reference·n successes); (r, r) when reference_n is None (treated as exact)."""
    if not 0.0 <= reference <= 1.0:
        raise ValueError("reference must lie in [0, 1]")
    if reference_n is None:
        return reference, reference
    return clopper_pearson(reference * reference_n, reference_n, alpha)


def bonferroni(alpha: float, checks: int) -> float:
    """α per check for "any of `checks` checks fails falsely" ≤ α (union bound): α / k."""
    return alpha / max(int(checks), 1)


def bonferroni_note(alpha: float, checks: int) -> dict[str, Any]:
    """The statement for results.json."""
    k = max(int(checks), 1)
    return {"method": "bonferroni", "family_alpha": alpha, "checks": k, "alpha_per_check": alpha / k,
            "statement": f"each of the {k} benchmark checks runs at α = {alpha:g}/{k} = {alpha / k:.4g} "
                         f"per side, so the chance that any of them gives a false verdict is ≤ {alpha:g}"}


# --------------------------------------------------------------------------- the two designs

class _Design:
    """What both designs expose of the betting test they run (`self.test`)."""

    test: BettingTest

    @property
    def n(self) -> int:
        return self.test.n

    @property
    def verdict(self) -> str:
        return self.test.verdict

    @property
    def decided(self) -> bool:
        return self.test.decided

    @property
    def decided_at(self) -> int | None:
        return self.test.decided_at


class OneSample(_Design):
    """Vendor accuracy against a reference value r, tolerance τ: FAIL iff evidence that the
    vendor is below r − τ, PASS iff evidence it is above r − τ.

    A published r has its own sampling error (`reference_n` items behind it): a share of α
    (`reference_share`, default half) is spent on it: Clopper-Pearson bounds r_L, r_U, each
    one-sided at α_r = share·α, and the test runs at α_t = α − α_r with m_fail = r_L − τ and
    m_pass = r_U − τ. A false FAIL needs either r < r_L or a false K_F crossing: probability
    ≤ α_r + α_t = α; the same for PASS. `reference_n=None` treats r as exact (α_t = α) and
    metric() says so (`reference_exact: true`).
    """

    design = "one-sample"

    def __init__(self, reference: float, tolerance: float, alpha: float = DEFAULT_ALPHA, *,
                 reference_n: int | None = None, reference_share: float = REFERENCE_SHARE,
                 truncation: float = TRUNCATION, observations: Iterable[Observation] = ()) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must lie in (0, 1)")
        if tolerance < 0.0:
            raise ValueError("tolerance must be ≥ 0")
        self.reference, self.tolerance, self.alpha, self.reference_n = reference, tolerance, alpha, reference_n
        if reference_n is None:
            self.alpha_reference, self.alpha_test = 0.0, alpha
        else:
            if not 0.0 < reference_share < 1.0:
                raise ValueError("reference_share must lie in (0, 1)")
            self.alpha_reference = alpha * reference_share
            self.alpha_test = alpha - self.alpha_reference
        self.reference_lower, self.reference_upper = reference_bounds(reference, reference_n, self.alpha_reference)
        self.test = BettingTest(self.reference_lower - tolerance, self.reference_upper - tolerance,
                                self.alpha_test, truncation=truncation, interval_alpha=alpha)
        for observation in observations:
            self.update(observation)

    def update(self, score: Observation) -> str:
        return self.test.update(score)

    @property
    def observations(self) -> list[Observation]:
        return self.test.observations

    def certifiable_margin(self) -> float:
        """The smallest τ at which the items seen would have given PASS: r_U − pass_bound().
        "The vendor is within τ* of the reference", valid at every n (see pass_bound). Negative
        when the vendor is certifiably above the reference."""
        return self.reference_upper - self.test.pass_bound()

    def metric(self) -> dict[str, Any]:
        """The `metric` object of results.json (issue 7, item 6). `lower`/`upper` are the PrPl-EB
        sequence (two-sided 1 − α); `betting_lower`/`betting_upper` are the bounds dual to the
        test itself (pass_bound/fail_bound, each one-sided at 1 − alpha_test): those agree with
        the verdict, and are far tighter at small n (after ~20 items PrPl-EB is still ~[0, 1]),
        so quote them in a summary ("FAIL after 17 items: accuracy ≤ betting_upper")."""
        test = self.test
        lower, upper = test.interval()
        pass_bound = test.pass_bound()
        return {
            "name": "accuracy", "design": self.design, "value": test.mean,
            "lower": lower, "upper": upper, "confidence": 1.0 - self.alpha,
            "interval": "PrPl-EB confidence sequence (Waudby-Smith & Ramdas 2024, Thm 2), two-sided, "
                        "α/2 per side, valid at every n",
            "reference": self.reference, "reference_n": self.reference_n,
            "reference_exact": self.reference_n is None,
            "reference_lower": self.reference_lower, "reference_upper": self.reference_upper,
            "tolerance": self.tolerance, "alpha": self.alpha, "alpha_test": self.alpha_test,
            "alpha_reference": self.alpha_reference,
            "margin_fail": test.m_fail, "margin_pass": test.m_pass,
            **_common(test),
            "betting_lower": pass_bound, "betting_upper": test.fail_bound(),
            "certifiable_margin": self.reference_upper - pass_bound,
        }


class Paired(_Design):
    """Vendor against a live reference on the same items: D = vendor − reference ∈ [−1, 1]
    (∈ {−1, 0, 1} for right/wrong scores), Y = (D + 1)/2, margin m0 = (1 − τ)/2 on both sides
    (mean D < −τ ⇔ mean Y < m0). Item difficulty cancels; only discordant items carry
    information, and the variance-adaptive bet uses that (a Hoeffding bound would not).

    `update(vendor, reference)` takes both scores; None for a side that could not be scored:
    the vendor's missing score counts as 0 and the reference's as 1 for PASS, the other way
    round for FAIL.
    """

    design = "paired"

    def __init__(self, tolerance: float, alpha: float = DEFAULT_ALPHA, *, truncation: float = TRUNCATION,
                 observations: Iterable[Sequence[float | None]] = ()) -> None:
        if not 0.0 <= tolerance < 1.0:
            raise ValueError("tolerance must lie in [0, 1)")
        self.tolerance, self.alpha = tolerance, alpha
        margin = (1.0 - tolerance) / 2.0
        self.test = BettingTest(margin, margin, alpha, truncation=truncation)
        self._pairs: list[list[float | None]] = []
        self._both, self._vendor_total, self._reference_total, self._discordant = 0, 0.0, 0.0, 0
        for vendor, reference in observations:
            self.update(vendor, reference)

    def update(self, vendor: float | None, reference: float | None) -> str:
        v_lo, v_hi = _bounds(vendor)
        r_lo, r_hi = _bounds(reference)
        self._pairs.append([vendor, reference])
        if vendor is not None and reference is not None:
            self._both += 1
            self._vendor_total += v_lo
            self._reference_total += r_lo
            self._discordant += v_lo != r_lo
        return self.test.update(((v_lo - r_hi + 1.0) / 2.0, (v_hi - r_lo + 1.0) / 2.0))

    @property
    def observations(self) -> list[list[float | None]]:
        """[vendor, reference] per item, for --resume (Paired(τ, α, observations=...))."""
        return [list(p) for p in self._pairs]

    @property
    def discordance(self) -> float | None:
        """Share of the pairs scored on both sides where vendor and reference differ."""
        return self._discordant / self._both if self._both else None

    def certifiable_margin(self) -> float:
        """The smallest τ at which the pairs seen would have given PASS: 1 − 2·pass_bound()."""
        return 1.0 - 2.0 * self.test.pass_bound()

    def metric(self) -> dict[str, Any]:
        """As OneSample.metric(), on the difference vendor − reference (D scale)."""
        test = self.test
        lower, upper = test.interval()
        pass_bound = test.pass_bound()
        both = self._both
        return {
            "name": "accuracy", "design": self.design,
            "value": self._vendor_total / both if both else None,
            "reference": self._reference_total / both if both else None,
            "difference": 2.0 * test.mean - 1.0 if test.mean is not None else None,
            "lower": 2.0 * lower - 1.0, "upper": 2.0 * upper - 1.0, "confidence": 1.0 - self.alpha,
            "interval": "of the mean difference vendor − reference: PrPl-EB confidence sequence "
                        "(Waudby-Smith & Ramdas 2024, Thm 2) on (D + 1)/2, two-sided, α/2 per side",
            "discordance": self.discordance, "tolerance": self.tolerance, "alpha": self.alpha,
            "reference_exact": None, "margin": test.m_pass,
            **_common(test),
            "betting_lower": 2.0 * pass_bound - 1.0, "betting_upper": 2.0 * test.fail_bound() - 1.0,
            "certifiable_margin": 1.0 - 2.0 * pass_bound,
        }


def _common(test: BettingTest) -> dict[str, Any]:
    if test.decided:
        e_value = test.e_value_at_decision
    else:
        e_value = max(test.e_fail, test.e_pass)
    return {"n": test.n, "scored": test.scored, "errored": test.errored, "verdict": test.verdict,
            "decided_at": test.decided_at, "e_value": e_value, "e_fail": test.e_fail, "e_pass": test.e_pass,
            "threshold": test.threshold,
            "method": "sequential two-one-sided test by betting (Waudby-Smith & Ramdas 2024, §4–5, aGRAPA bet, "
                      "c = %g); anytime-valid by Ville's inequality" % test.truncation}


# --------------------------------------------------------------------------- planning

Test = BettingTest | OneSample | Paired


def run(test: Test, observations: Iterable[Any], *, max_items: int, stop: bool = True) -> Test:
    """Feed `test` until it is decided (if `stop`) or max_items have been fed; returns it.
    A Paired test takes (vendor, reference) pairs, the others scores."""
    feed = (lambda o: test.update(*o)) if isinstance(test, Paired) else test.update
    for count, observation in enumerate(observations, 1):
        feed(observation)
        if (stop and test.decided) or count >= max_items:
            break
    return test


@dataclass(frozen=True)
class Plan:
    """Items to a verdict over seeded simulated runs. median/p90 are None when more than half /
    a tenth of the runs did not reach it within max_items."""

    runs: int
    max_items: int
    verdict: str | None          # the verdict counted (None: any)
    median: int | None
    p90: int | None
    reached: float               # share of runs that reached it
    verdicts: dict[str, int]     # final verdicts of all runs

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def phrase(self) -> str:
        """"about 24 items (p90 39)", for `kvv plan`."""
        if self.median is None:
            return f"more than {self.max_items} items"
        p90 = f"{self.p90}" if self.p90 is not None else f"> {self.max_items}"
        return f"about {self.median} items (p90 {p90})"


def _quantile(values: Sequence[float], q: float) -> int | None:
    ordered = sorted(values)
    value = ordered[max(0, math.ceil(q * len(ordered)) - 1)]
    return None if math.isinf(value) else int(value)


def summarize(tests: Sequence[Test], *, max_items: int, verdict: str | None = None) -> Plan:
    """Plan of `tests` (already run): items to `verdict` (any verdict if None)."""
    # decided_at is set exactly when a test decides (BettingTest.update), so it stands for `decided`.
    items = [float(t.decided_at) if t.decided_at is not None and (verdict is None or t.verdict == verdict)
             else math.inf for t in tests]
    counts: dict[str, int] = {}
    for t in tests:
        counts[t.verdict] = counts.get(t.verdict, 0) + 1
    return Plan(len(tests), max_items, verdict, _quantile(items, 0.5), _quantile(items, 0.9),
                sum(not math.isinf(i) for i in items) / len(items), counts)


def simulate(factory: Callable[[], Test], draw: Callable[[int], Iterable[Any]], *, seeds: int = 200,
             max_items: int = 1000, seed: int = 0, stop: bool = True) -> list[Test]:
    """Run factory() on draw(seed + i) for i < seeds: the tests, for summarize()."""
    return [run(factory(), draw(seed + i), max_items=max_items, stop=stop) for i in range(seeds)]


def bernoulli_draw(accuracy: float) -> Callable[[int], Iterator[float]]:
    """Right/wrong scores of a vendor of this accuracy: draw(seed) -> endless iterator."""
    def draw(seed: int) -> Iterator[float]:
        rng = random.Random(seed)
        while True:
            yield 1.0 if rng.random() < accuracy else 0.0
    return draw


def paired_draw(drift: float, discordance: float,
                accuracy: float = 0.5) -> Callable[[int], Iterator[tuple[float, float]]]:
    """(vendor, reference) right/wrong pairs: a share `discordance` of items disagree, split so
    that mean(vendor − reference) = drift (vendor-only right (d + drift)/2, reference-only right
    (d − drift)/2); agreeing items are both right with probability `accuracy` (irrelevant to
    the test). Needs |drift| ≤ discordance ≤ 1."""
    if not abs(drift) <= discordance <= 1.0:
        raise ValueError("need |drift| ≤ discordance ≤ 1")
    up, down = (discordance + drift) / 2.0, (discordance - drift) / 2.0

    def draw(seed: int) -> Iterator[tuple[float, float]]:
        rng = random.Random(seed)
        while True:
            u = rng.random()
            if u < up:
                yield 1.0, 0.0
            elif u < up + down:
                yield 0.0, 1.0
            else:
                both = 1.0 if rng.random() < accuracy else 0.0
                yield both, both
    return draw


def plan_one_sample(true_accuracy: float, reference: float, tolerance: float, alpha: float = DEFAULT_ALPHA, *,
                    reference_n: int | None = None, max_items: int = 1000, seeds: int = 200, seed: int = 0,
                    verdict: str | None = None) -> Plan:
    """Items to a verdict (median, p90) for a vendor of `true_accuracy` against `reference`
    (for `kvv plan`), by seeded simulation of Bernoulli scores drawn with replacement."""
    tests = simulate(lambda: OneSample(reference, tolerance, alpha, reference_n=reference_n),
                     bernoulli_draw(true_accuracy), seeds=seeds, max_items=max_items, seed=seed)
    return summarize(tests, max_items=max_items, verdict=verdict)


def plan_paired(drift: float, discordance: float = 0.10, tolerance: float = 0.03, alpha: float = DEFAULT_ALPHA, *,
                max_items: int = 1000, seeds: int = 200, seed: int = 0, verdict: str | None = None) -> Plan:
    """Items to a verdict for the paired design at a true drift (vendor − reference accuracy,
    negative for a drop) and a discordance rate (share of items where the two disagree, as
    Paired.discordance measures it; 10 % if none seen yet)."""
    tests = simulate(lambda: Paired(tolerance, alpha), paired_draw(drift, discordance),
                     seeds=seeds, max_items=max_items, seed=seed)
    return summarize(tests, max_items=max_items, verdict=verdict)
