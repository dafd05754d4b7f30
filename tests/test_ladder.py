"""The ladder probes' shared verdict: per rung, naming where a deployment breaks (kvv.checks.ladder)."""

from __future__ import annotations

from kvv.checks.base import Context, Item
from kvv.checks.ladder import Rung, interleaved, settled, summarize
from kvv.profile import load_profile
from kvv.verdict import FAIL, INCONCLUSIVE, PASS

RUNGS = [Rung("1k tokens", 1024), Rung("4k tokens", 4096), Rung("16k tokens", 16384)]


def rungs_of(ctx: Context) -> list[Rung]:
    return RUNGS


def context() -> Context:
    return Context(model="m", profile=load_profile("kimi-k3"), think_mode="kimi")


def records(rates: dict[str, float], n: int) -> list[dict]:
    """n items per rung, round-robin; a rung at rate r has its first round(r * n) items right."""
    out = []
    for k in range(n):
        for rung in RUNGS:
            score = 1.0 if k < round(rates[rung.label] * n) else 0.0
            out.append({"id": f"{rung.label} {k}", "verdict": PASS if score else FAIL,
                        "data": {"rung": rung.label, "score": score}})
    return out


def test_items_go_round_robin_over_rungs():
    per_rung = [[Item(f"{r} {k}", [], rung=r) for k in range(n)] for r, n in (("a", 2), ("b", 3), ("c", 1))]
    assert [i.id for i in interleaved(per_rung)] == ["a 0", "b 0", "c 0", "a 1", "b 1", "b 2"]


def test_every_rung_sound_passes():
    sound = records(dict.fromkeys([r.label for r in RUNGS], 1.0), 30)
    summary = summarize("long-output", rungs_of, "exact copying")(sound, context())
    assert summary.verdict == PASS
    assert summary.details["breaks_at"] is None
    assert [row["verdict"] for row in summary.details["rungs"]] == [PASS] * 3


def test_the_least_demanding_broken_rung_is_named():
    summary = summarize("long-output", rungs_of, "exact copying")(
        records({"1k tokens": 1.0, "4k tokens": 0.0, "16k tokens": 0.0}, 30), context())
    assert summary.verdict == FAIL
    assert summary.details["breaks_at"] == "4k tokens"
    assert summary.message.startswith("FAIL: exact copying breaks at 4k tokens")
    assert "1k tokens pass" in summary.message


def test_too_few_items_is_inconclusive_not_a_verdict():
    summary = summarize("long-output", rungs_of, "exact copying")(
        records({"1k tokens": 1.0, "4k tokens": 0.0, "16k tokens": 1.0}, 3), context())
    assert summary.verdict == INCONCLUSIVE


def test_settled_waits_for_the_rungs_below_a_failure():
    decide, ctx = settled("long-output", rungs_of), context()
    # The 4k rung fails, the 1k rung is still undecided at 5 items each: not settled.
    assert not decide(records({"1k tokens": 1.0, "4k tokens": 0.0, "16k tokens": 0.0}, 5), ctx)
    assert decide(records({"1k tokens": 1.0, "4k tokens": 0.0, "16k tokens": 0.0}, 30), ctx)


def test_a_finding_fails_whatever_the_rates():
    def describe(recs, ctx, broken):
        return {"finding": "an over-limit request was answered"}, ""
    summary = summarize("context-depth", rungs_of, "recall", describe)(
        records(dict.fromkeys([r.label for r in RUNGS], 1.0), 30), context())
    assert summary.verdict == FAIL and summary.details["finding"] == "an over-limit request was answered"


def test_a_healthy_ladder_stops_early_though_its_longest_rung_is_slow(kvv):
    """Each rung's test sees its own items in plan order: a slow 64k-token copy holds up only its
    rung, so the probe stops once every rung is decided instead of running all 160 items."""
    run = kvv("run", "--simulate", "--only", "long-output")
    assert run.exit_code == 0, run.output
    check = run.check("long-output")
    assert check["verdict"] == "pass" and check["stopped_early"], check["message"]
    assert check["n"] < 120, check["n"]
    assert all(row["verdict"] == "pass" for row in check["details"]["rungs"])
