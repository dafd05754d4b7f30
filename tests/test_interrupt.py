"""A cancelled job (SIGTERM) or Ctrl-C leaves a usable journal, and --resume finishes the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_resumes_to_the_same_verdicts(simulator, tmp_path, signum):
    sim = simulator("kimi-k3", "tool-trigger-drift=0.5")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "kvv", "run", "--base-url", sim.url, "--model", "kimi-k3",
               "--suite", "tools", "--concurrency", "2", "--output-dir", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVV_", "KIMI_"))}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    journal = out / "journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:       # interrupt once some items, not all, are finished
        if journal.is_file() and journal.read_text().count('"kind": "item"') >= 20:
            break
        time.sleep(0.02)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "--resume" in stderr
    partial = json.loads((out / "results.json").read_text())    # what finished, marked as such
    assert partial["complete"] is False and partial["stopped"].startswith("interrupted")
    # A failure found before the interrupt stands; otherwise an unfinished run proved nothing.
    found = any(c["verdict"] == "fail" for c in partial["checks"])
    assert (partial["verdict"], partial["exit_code"]) == (("fail", 1) if found else ("error", 3))
    unfinished = [c for c in partial["checks"] if c["n"] < c["planned"]]
    unstarted = [c for c in partial["not_run"] if c["reason"] == "the run stopped first"]
    assert unfinished or unstarted                        # the partial document says what is missing
    finished = [json.loads(line) for line in journal.read_text().splitlines() if '"kind": "item"' in line]
    assert finished                                       # every line written is whole JSON

    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, env=env, timeout=120)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    results = json.loads((out / "results.json").read_text())
    reused = sum(i["resumed"] for c in results["checks"] for i in c["items"])
    assert reused >= len({(r["check"], r["item"]) for r in finished if r["verdict"] != "error"})

    fresh = subprocess.run(command[:-2] + ["--output-dir", str(tmp_path / "fresh")], capture_output=True,
                           text=True, env=env, timeout=120)
    again = json.loads((tmp_path / "fresh" / "results.json").read_text())
    assert fresh.returncode == 1
    assert {c["id"]: c["verdict"] for c in results["checks"]} == {c["id"]: c["verdict"] for c in again["checks"]}
