"""Bounds and verdict rules on hand-worked examples."""

from __future__ import annotations

import pytest

from kvv.stats import threshold_verdict, wilson
from kvv.verdict import exit_code, worst


@pytest.mark.parametrize("k,n,lower,upper", [
    (8, 10, 0.4902, 0.9433),      # p = 0.8, z = 1.96: centre 0.7167, half-width 0.2265
    (10, 10, 0.7225, 1.0),        # all successes: the upper bound is 1, the lower is not
    (0, 10, 0.0, 0.2775),
    (1, 1, 0.2065, 1.0),
    (0, 0, 0.0, 1.0),             # no evidence, no information
])
def test_wilson_interval(k, n, lower, upper):
    low, high = wilson(k, n)
    assert low == pytest.approx(lower, abs=5e-4) and high == pytest.approx(upper, abs=5e-4)


def test_threshold_verdicts():
    assert threshold_verdict(100, 0, 0, 0.95)[0] == "pass"           # lower 0.963 ≥ 0.95
    assert threshold_verdict(50, 50, 0, 0.95)[0] == "fail"           # upper 0.597 < 0.95
    assert threshold_verdict(95, 5, 0, 0.90)[0] == "inconclusive"    # [0.888, 0.978] straddles 0.90
    assert threshold_verdict(20, 0, 0, 0.95)[0] == "inconclusive"    # too few items to clear 0.95


def test_errors_blur_a_verdict_but_never_fake_one():
    # 95 valid, 5 unknown: had the 5 failed, the lower bound would be 0.888 < 0.95 -> not a pass.
    verdict, metric = threshold_verdict(95, 0, 5, 0.95)
    assert verdict == "inconclusive" and metric["value"] == 1.0 and metric["lower"] < 0.95
    # 40 failures and 60 unknowns cannot pass; had all 60 succeeded the upper bound is 0.69 < 0.95 -> fail.
    assert threshold_verdict(0, 40, 60, 0.95)[0] == "fail"


def test_worst_and_exit_codes():
    assert worst([]) == "pass"
    assert worst(["pass", "inconclusive", "error"]) == "error"
    assert worst(["error", "fail", "pass"]) == "fail"
    assert [exit_code(v) for v in ("pass", "fail", "error", "inconclusive")] == [0, 1, 3, 0]
    assert exit_code("inconclusive", "inconclusive") == 3
    assert exit_code("fail", "never") == 0
