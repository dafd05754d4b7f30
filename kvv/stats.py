"""Confidence bounds for proportions.

Binary outcomes at small n get the Wilson score interval, never the normal approximation
(which gives [1, 1] for 8 passes out of 8).
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")


def z_value(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson score interval for successes/n; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    z = z_value(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def threshold_verdict(successes: int, failures: int, errors: int, minimum: float,
                      confidence: float = 0.95) -> tuple[str, dict[str, float]]:
    """Judge a rate against a minimum, treating items kvv could not run as unknown.

    PASS when the lower bound is at or above `minimum` even if every errored item had failed;
    FAIL when the upper bound is below it even if every errored item had succeeded;
    otherwise INCONCLUSIVE. So infrastructure errors can blur a verdict, never fake one.
    """
    n = successes + failures + errors
    lower, _ = wilson(successes, n, confidence)
    _, upper = wilson(successes + errors, n, confidence)
    value = successes / (successes + failures) if successes + failures else 0.0
    if n and lower >= minimum:
        verdict = "pass"
    elif n and upper < minimum:
        verdict = "fail"
    else:
        verdict = "inconclusive"
    return verdict, {"value": round(value, 4), "lower": round(lower, 4), "upper": round(upper, 4),
                     "confidence": confidence, "minimum": minimum}


def bootstrap(rows: Sequence[T], statistic: Callable[[Sequence[T]], float | None], *, resamples: int = 2000,
              confidence: float = 0.95, seed: int = 0) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of `statistic` over `rows` resampled with replacement.

    For statistics with no closed-form interval (F1). Seeded, so a verdict is reproducible.
    Resamples where the statistic is undefined (None, e.g. precision with no positive) are
    dropped; (None, None) if every one is. Note the percentile interval of a sample that is
    all alike is a point: it measures sampling spread, not what a small n cannot show.
    """
    rng = random.Random(seed)
    values = sorted(v for v in (statistic(rng.choices(rows, k=len(rows))) for _ in range(resamples))
                    if v is not None)
    if not values:
        return None, None
    tail = (1 - confidence) / 2
    return values[math.floor(tail * (len(values) - 1))], values[math.ceil((1 - tail) * (len(values) - 1))]
