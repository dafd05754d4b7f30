"""The API key never appears in any artifact, log line or error."""

from __future__ import annotations

import subprocess
import sys

from conftest import CANARY_KEY


def test_key_appears_nowhere(kvv, simulator, tmp_path):
    # The vendor requires the key (so it is really sent), fails a contract (evidence, curl lines)
    # and rate-limits (error records in the journal).
    sim = simulator("kimi-k3", "ignore-temperature", "rate-limit=0.3", "stream-cut=0.3", api_key=CANARY_KEY)
    run = kvv("run", "--base-url", sim.url, "--model", "kimi-k3", "--max-retries", "8",
              env={"KVV_API_KEY": CANARY_KEY})
    assert run.exit_code == 1, run.output
    files = list(run.out.rglob("*"))
    assert {"results.json", "journal.jsonl", "summary.md"} <= {f.name for f in files}
    for path in files:
        assert CANARY_KEY not in path.read_text(), path
    assert CANARY_KEY not in run.output + run.stderr
    assert sim.stats["requests"] > 0
    evidence = [e for c in run.results["checks"] for e in c["evidence"]]
    assert evidence and all('Bearer $KVV_API_KEY' in e["curl"] for e in evidence)


def test_key_absent_from_errors_and_the_cli_process(simulator, tmp_path):
    sim = simulator("kimi-k3", api_key="sk-a-different-key-42424242")
    env = {"KVV_API_KEY": CANARY_KEY, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "kvv", "run", "--base-url", sim.url, "--model", "kimi-k3",
                           "--only", "baseline", "--output-dir", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert CANARY_KEY not in proc.stdout + proc.stderr
    for path in (tmp_path / "o").rglob("*"):
        assert CANARY_KEY not in path.read_text()


def test_the_judge_key_appears_nowhere(kvv, simulator, tmp_path):
    # BEAM with a judge that needs its own key (so it is really sent), rate-limits (error records
    # in the journal) and sometimes garbles its reply (judge evidence with a curl line).
    from pathlib import Path

    judge_key = CANARY_KEY + "-judge"
    sample = Path(__file__).resolve().parent / "fixtures" / "beam"
    config = tmp_path / "kvv.yaml"
    config.write_text(f"checks:\n  beam:\n    dataset: {sample / 'chats.jsonl.gz'}\n"
                      f"    questions: {sample / 'questions.jsonl'}\n    max-items: 12\n")
    sim = simulator("kimi-k3", api_key=CANARY_KEY)
    judge = simulator("kimi-k3", "rate-limit=0.3", "long-output-corrupt=1", api_key=judge_key)
    run = kvv("run", "--base-url", sim.url, "--model", "kimi-k3", "--only", "beam", "--config", str(config),
              "--judge-base-url", judge.url, "--max-retries", "8",
              env={"KVV_API_KEY": CANARY_KEY, "KVV_JUDGE_API_KEY": judge_key})
    assert judge.stats["statuses"].get(200, 0) > 0, run.output          # answered: the key arrived
    files = list(run.out.rglob("*"))
    assert {"results.json", "journal.jsonl", "summary.md"} <= {f.name for f in files}
    for path in files:
        text = path.read_text()
        assert judge_key not in text and CANARY_KEY not in text, path
    assert judge_key not in run.output + run.stderr
    evidence = run.check("beam")["evidence"]
    assert evidence and all("Bearer $KVV_JUDGE_API_KEY" in e["curl"] for e in evidence)


def test_journal_lines_mask_a_key_however_json_writes_it(tmp_path):
    """The journal masks the JSON text it writes: a key with characters JSON escapes (a quote, a
    backslash, a tab) or writes raw (non-ASCII) is masked as written, in keys and values alike."""
    import json

    from kvv.journal import Journal
    from kvv.redact import MASK, Redactor

    keys = ['sk-"quoted"-0001', "sk-back\\slash-02", "sk-tab\there-003", "ключ-секрет-0004", CANARY_KEY]
    journal = Journal(tmp_path / "journal.jsonl", Redactor(*keys), append=False)
    for key in keys:
        journal.write("attempt", detail=f"401: bad key {key}!", usage={key: [key, {"k": key + key}]})
    journal.close()
    lines = (tmp_path / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    for key, line in zip(keys, lines, strict=True):
        record = json.loads(line)
        assert record["detail"] == f"401: bad key {MASK}!"
        assert record["usage"] == {MASK: [MASK, {"k": MASK * 2}]}
        assert key not in json.dumps(record, ensure_ascii=False) and key not in line
