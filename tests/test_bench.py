"""The bench suite end to end: real datasets through the viewer-API stand-in, the simulated
vendor answering them, anytime-valid verdicts that stop early, and preflight as the gate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kvv.simulator.datasets_server import DatasetsServer


def config(tmp_path, **checks) -> str:
    path = tmp_path / "kvv.yaml"
    path.write_text("checks:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in checks.items()))
    return str(path)


def test_a_healthy_vendor_never_fails_and_says_what_it_can_certify(kvv, tmp_path):
    run = kvv("run", "--simulate", "--suite", "bench", "--config",
              config(tmp_path, **{"ocrbench": {"max-items": 300}, "mmmu-pro": {"max-items": 300}}))
    assert run.exit_code == 0, run.output
    for check_id in ("ocrbench", "mmmu-pro"):
        check = run.check(check_id)
        assert check["verdict"] in ("pass", "inconclusive"), check["message"]
        metric = check["metric"]
        assert metric["reference_exact"] is False and metric["reference_n"] > 0
        if check["verdict"] == "inconclusive":
            assert 0 < metric["certifiable_margin"] < 1 and "within" in check["message"]
    not_run = {c["id"]: c["reason"] for c in run.results["not_run"]}
    assert "aime2025" in not_run and "runs no aime2025" in not_run["aime2025"]


@pytest.mark.parametrize("fault, check_id", [("accuracy-drop=0.45", "ocrbench"), ("accuracy-drop=0.45", "mmmu-pro"),
                                             ("image-dropped", "ocrbench"), ("image-dropped", "mmmu-pro")])
def test_a_gross_fault_fails_in_a_few_dozen_items(kvv, fault, check_id):
    run = kvv("run", "--simulate", "--suite", "bench", "--only", check_id, "--sim-fault", fault)
    assert run.exit_code == 1, run.output
    check = run.check(check_id)
    assert check["verdict"] == "fail" and check["stopped_early"] is True
    assert check["n"] <= 60 < check["planned"]
    assert check["message"].startswith(f"FAIL after {check['n']} items: accuracy ≤ ")
    assert run.results["totals"]["requests"] == check["n"]


def test_preflight_gates_the_benchmarks(kvv, tmp_path):
    settings = config(tmp_path, **{"ocrbench": {"max-items": 20}, "mmmu-pro": {"max-items": 20}})
    gated = kvv("run", "--simulate", "--suite", "all", "--sim-fault", "ignore-temperature", "--config", settings,
                "--skip", "toolcall-replay,tool-schema,dynamic-tools", out="gated")
    assert gated.exit_code == 1
    not_run = {c["id"]: c["reason"] for c in gated.results["not_run"]}
    assert not_run["ocrbench"].startswith("gated: preflight did not pass (param-temperature fail")
    assert "--no-gate" in not_run["ocrbench"] and "ocrbench" not in gated.verdicts()
    forced = kvv("run", "--simulate", "--suite", "all", "--sim-fault", "ignore-temperature", "--config", settings,
                 "--skip", "toolcall-replay,tool-schema,dynamic-tools", "--no-gate", out="forced")
    assert {"ocrbench", "mmmu-pro"} <= set(forced.verdicts())


def test_an_endpoint_and_a_dataset_server_given_as_settings(kvv, simulator):
    """The same run pointed at an endpoint and a dataset viewer API works unchanged."""
    sim = simulator("kimi-k3", "accuracy-drop=0.45")
    with DatasetsServer() as rows:
        run = kvv("run", "--base-url", sim.url, "--model", "kimi-k3", "--suite", "bench", "--only", "ocrbench",
                  "--datasets-server", rows.url)
    assert run.exit_code == 1, run.output
    assert run.check("ocrbench")["stopped_early"] is True


def test_resume_mid_benchmark_gives_the_same_verdict(kvv, simulator):
    sim = simulator("kimi-k3", "accuracy-drop=0.45")
    with DatasetsServer() as rows:
        args = ("run", "--base-url", sim.url, "--model", "kimi-k3", "--suite", "bench", "--only", "ocrbench",
                "--datasets-server", rows.url)
        first = kvv(*args)
        again = kvv(*args, "--resume")
    assert first.exit_code == again.exit_code == 1
    assert again.check("ocrbench")["n"] == first.check("ocrbench")["n"]
    assert all(i["resumed"] for i in again.check("ocrbench")["items"])
    assert again.check("ocrbench")["metric"]["e_value"] == first.check("ocrbench")["metric"]["e_value"]


def test_a_bad_local_dataset_exits_2_naming_file_and_row(kvv, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"question": "what is written?", "question_type": "Regular Text Recognition"}\n')
    run = kvv("run", "--simulate", "--suite", "bench", "--only", "ocrbench", "--config",
              config(tmp_path, ocrbench={"dataset": str(rows)}))
    assert run.exit_code == 2, run.output
    assert str(rows) in run.stderr and "line 1" in run.stderr and "Traceback" not in run.output


def test_kvv_plan_counts_benchmark_items_with_no_network(kvv):
    run = kvv("plan", "--simulate", "--suite", "bench")
    assert run.exit_code == 0, run.output
    assert "ocrbench" in run.output and "1000" in run.output and "not run: aime2025" in run.output


def test_paired_against_a_live_reference(kvv, simulator):
    """Two healthy instances never fail each other; a gross drift fails in a few dozen pairs."""
    official = simulator("kimi-k3", seed=7)
    with DatasetsServer() as rows:
        healthy = kvv("run", "--base-url", simulator("kimi-k3", seed=3).url, "--model", "kimi-k3", "--suite", "bench",
                      "--only", "ocrbench", "--reference-base-url", official.url, "--datasets-server", rows.url,
                      out="healthy")
        broken = kvv("run", "--base-url", simulator("kimi-k3", "accuracy-drop=0.45").url, "--model", "kimi-k3",
                     "--suite", "bench", "--only", "ocrbench", "--reference-base-url", official.url,
                     "--datasets-server", rows.url, out="broken")
    assert healthy.exit_code == 0, healthy.output
    assert healthy.check("ocrbench")["verdict"] in ("pass", "inconclusive")
    metric = healthy.check("ocrbench")["metric"]
    assert metric["design"] == "paired" and metric["tolerance"] == 0.03 and 0 <= metric["discordance"] < 0.2
    assert broken.exit_code == 1, broken.output
    check = broken.check("ocrbench")
    assert check["stopped_early"] and check["n"] <= 80
    assert check["message"].startswith(f"FAIL after {check['n']} paired items")
    assert broken.results["totals"]["requests"] == 2 * check["n"]


@pytest.mark.parametrize("budget, value", [("--max-requests", "25"), ("--max-completion-tokens", "2000")])
def test_a_budget_stops_sending_and_resume_continues(kvv, simulator, tmp_path, budget, value):
    sim = simulator("kimi-k3")
    with DatasetsServer() as rows:
        args = ("run", "--base-url", sim.url, "--model", "kimi-k3", "--suite", "bench", "--only", "ocrbench",
                "--datasets-server", rows.url, "--config", config(tmp_path, ocrbench={"max-items": 100}))
        short = kvv(*args, budget, value)
        results = short.results            # before the resumed run writes its own
        resumed = kvv(*args, "--resume")
    assert short.exit_code == 3, short.output
    assert results["complete"] is False and budget in results["stopped"]
    scored = [i for i in results["checks"][0]["items"] if i["verdict"] != "error"]
    assert 0 < len(scored) < 100
    if budget == "--max-requests":
        assert results["totals"]["attempts"] <= 25
    assert resumed.exit_code == 0, resumed.output
    assert resumed.results["complete"] is True and resumed.results["totals"]["reused"] == len(scored)


def test_the_hf_token_reaches_the_dataset_server_and_nothing_else(kvv, simulator, monkeypatch):
    token = "hf_canary_token_7c1d9e2f4a6b8c0d"
    monkeypatch.setenv("HF_TOKEN", token)
    sim = simulator("kimi-k3", "accuracy-drop=0.45")
    with DatasetsServer(token=token) as rows:
        run = kvv("run", "--base-url", sim.url, "--model", "kimi-k3", "--suite", "bench", "--only", "ocrbench",
                  "--datasets-server", rows.url)
        asked = [entry for entry in rows.log]
    assert run.exit_code == 1, run.output
    assert any(f"Bearer {token}" in str(entry) for entry in asked)      # the gated dataset was read
    assert token not in run.output + run.stderr
    cache = Path(os.environ["KVV_CACHE_DIR"])
    for path in [*run.out.rglob("*"), *cache.rglob("*")]:
        if path.is_file():
            assert token not in path.read_text(errors="replace"), path


def test_a_local_dataset_is_read_once_and_judged(kvv, tmp_path):
    from kvv.simulator.benchmarks import fixture_rows

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(row) + "\n" for row in fixture_rows()["ocrbench"]))
    run = kvv("run", "--simulate", "--suite", "bench", "--only", "ocrbench", "--sim-fault", "image-dropped",
              "--config", config(tmp_path, ocrbench={"dataset": str(rows)}))
    assert run.exit_code == 1, run.output
    check = run.check("ocrbench")
    assert check["planned"] == 40 and check["stopped_early"] is True     # the file's size, not upstream's
    assert {i["data"]["row"] for i in check["items"]} <= set(range(40))
