"""The action's entrypoint, run as the runner runs it (github-action.md §5): a subprocess with
a crafted environment, file commands under tmp_path, and the simulated vendor."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import yaml

from github_stub import GitHubStub
from kvv.profile import load_profile
from kvv.simulator import Simulator
from test_github import parse_outputs

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "entrypoint.py"
RESULTS_SCHEMA = json.loads((ROOT / "kvv" / "schemas" / "results.schema.json").read_text())
CANARY = "sk-canary-5f0c1e9a7d3b4c2e8a6f"
GH_CANARY = "ghs_canary_0d9e8f7a6b5c4d3e2f1a0b9c8d7e"
REPO = "octo-org/kvv-demo"
TIMEOUT = 180


def load_entrypoint():
    spec = importlib.util.spec_from_file_location("entrypoint", ENTRYPOINT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entrypoint = load_entrypoint()


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    workspace: Path
    output_file: Path
    summary_file: Path

    @property
    def outputs(self) -> dict[str, str]:
        return parse_outputs(self.output_file.read_text(encoding="utf-8"))

    @property
    def summary(self) -> str:
        return self.summary_file.read_text(encoding="utf-8")

    def lines(self, prefix: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(prefix)]


def run_action(tmp_path: Path, inputs: dict[str, str], env: dict[str, str] | None = None) -> Run:
    """`python entrypoint.py` in an environment shaped like the action container's."""
    workspace = tmp_path / "workspace"
    commands = tmp_path / "file_commands"
    workspace.mkdir(exist_ok=True)
    commands.mkdir(exist_ok=True)
    full_env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(commands / "set_output"),
        "GITHUB_STEP_SUMMARY": str(commands / "step_summary"),
        "HOME": str(tmp_path / "no-such-home"),
        "PATH": "utter-nonsense",                    # a workflow may do this (pypa issue #112)
        "PYTHONPATH": "/nonexistent",
        **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
        **(env or {}),
    }
    proc = subprocess.run([sys.executable, str(ENTRYPOINT)], cwd=workspace, env=full_env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    return Run(proc.returncode, proc.stdout, proc.stderr, workspace,
               commands / "set_output", commands / "step_summary")


def assert_commands_stopped_around_kvv_output(run: Run) -> list[str]:
    """Checks that kvv's output sits inside one stop-commands span; returns the lines after it."""
    starts = run.lines("::stop-commands::")
    assert len(starts) == 1
    token = starts[0].removeprefix("::stop-commands::")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    lines = run.stdout.splitlines()
    begin, end = lines.index(starts[0]), lines.index(f"::{token}::")
    assert any(line.startswith("kvv ") for line in lines[begin:end])        # the report is inside
    for line in lines[:begin] + lines[end + 1:]:                            # commands are outside
        assert line.startswith(("::", "kvv: PR comment ")), line
    return lines[end + 1:]


# --- end to end ----------------------------------------------------------------------------

def test_healthy_simulated_vendor_passes(tmp_path):
    run = run_action(tmp_path, {"simulate": "true"})
    assert run.rc == 0, run.stdout + run.stderr
    reports = report_outputs(run.workspace / "kvv-out")
    assert "sarif-file" in reports
    assert run.outputs == {"verdict": "pass", "results-json": "kvv-out/results.json",
                           "summary-file": "kvv-out/summary.md", "exit-code": "0", "simulated": "true",
                           **reports}
    results = json.loads((run.workspace / "kvv-out" / "results.json").read_text())
    jsonschema.validate(results, RESULTS_SCHEMA)
    assert results["target"]["simulated"] is True
    assert run.summary.startswith("![kvv · kimi-k3 | ") and "-brightgreen)" in run.summary.split("\n", 1)[0]
    after_badge = run.summary.split("\n\n", 1)[1]
    assert after_badge.startswith("## ✅ kvv: PASS — kimi-k3 at kvv's simulated vendor")
    assert "**Simulated:**" in run.summary
    assert run.summary == (run.workspace / "kvv-out" / "summary.md").read_text()
    after = assert_commands_stopped_around_kvv_output(run)
    assert after == []                                                      # nothing to annotate
    assert run.stderr == ""
    assert re.search(r"^kvv: baseline PASS \d+/\d+ items, \d+ requests?, ", run.stdout, re.M)   # progress, plain


@pytest.mark.parametrize("faults_input", ["simulate-faults", "simulate_faults"])
def test_a_vendor_that_ignores_temperature_fails_with_annotations(tmp_path, faults_input):
    run = run_action(tmp_path, {"simulate": "true", faults_input: "ignore-temperature"})
    assert run.rc == 1, run.stdout + run.stderr
    assert run.outputs["verdict"] == "fail" and run.outputs["exit-code"] == "1"
    jsonschema.validate(json.loads((run.workspace / "kvv-out" / "results.json").read_text()), RESULTS_SCHEMA)
    after = assert_commands_stopped_around_kvv_output(run)
    errors = [line for line in after if line.startswith("::error ")]
    assert 1 <= len(errors) <= 10
    assert any("title=kvv param-temperature%3A FAIL" in line for line in errors)
    assert not any("file=" in line for line in errors)                     # no config to anchor to
    assert run.summary.startswith("![kvv · kimi-k3 | ") and "-red)" in run.summary.split("\n", 1)[0]
    assert run.summary.split("\n\n", 1)[1].startswith("## ❌ kvv: FAIL")    # after the badge
    assert "`param-temperature`" in run.summary and "```sh\ncurl " in run.summary


def test_findings_are_anchored_to_the_config_file(tmp_path):
    (tmp_path / "workspace").mkdir()
    config = ("# kvv settings\nconcurrency: 2\nchecks:\n  param-top-p:\n    enabled: true\n"
              "  param-temperature:\n    enabled: true\n")
    (tmp_path / "workspace" / "kvv.yaml").write_text(config)
    run = run_action(tmp_path, {"simulate": "true", "simulate-faults": "ignore-temperature",
                                "config": "kvv.yaml"})
    assert run.rc == 1, run.stdout + run.stderr
    errors = [line for line in run.stdout.splitlines() if line.startswith("::error ")]
    assert any("file=kvv.yaml,line=6::" in line and "param-temperature" in line for line in errors)


@pytest.mark.parametrize("key_input", ["api-key", "api_key"])
def test_the_key_reaches_the_vendor_and_nothing_else(tmp_path, key_input):
    with Simulator(load_profile("kimi-k3"), api_key=CANARY) as sim:     # answers 401 without it
        run = run_action(tmp_path, {"base-url": sim.url, "model": "kimi-k3", key_input: CANARY},
                         env={"KVV_API_KEY": "sk-canary-from-env-0000"})
    assert run.stdout.splitlines()[0] == f"::add-mask::{CANARY}"        # before anything else
    assert run.stdout.splitlines()[1] == "::add-mask::sk-canary-from-env-0000"
    assert run.stdout.count(CANARY) == 1 and CANARY not in run.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert CANARY not in path.read_text(encoding="utf-8", errors="replace"), path
    assert run.outputs["verdict"] == "pass", run.stdout     # the input's key won over the env's
    assert run.rc == 0


def test_the_reference_key_reaches_the_reference_and_nothing_else(tmp_path):
    reference_key = CANARY + "-reference"
    with Simulator(load_profile("kimi-k3")) as vendor, \
            Simulator(load_profile("kimi-k3"), api_key=reference_key) as reference:
        run = run_action(tmp_path, {"base-url": vendor.url, "model": "kimi-k3", "only": "toolcall-replay",
                                    "reference-base-url": reference.url, "reference-api-key": reference_key})
        assert reference.stats["statuses"].get(200, 0) > 0          # answered: the key arrived
    assert run.stdout.splitlines()[0] == f"::add-mask::{reference_key}"
    assert run.stdout.count(reference_key) == 1 and reference_key not in run.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert reference_key not in path.read_text(encoding="utf-8", errors="replace"), path
    assert run.outputs["verdict"] == "pass", run.stdout
    results = json.loads((run.workspace / "kvv-out" / "results.json").read_text())
    assert "live" in json.dumps(results["checks"][0]["details"]["reference"])


def test_missing_endpoint_is_a_usage_error(tmp_path):
    run = run_action(tmp_path, {"api-key": CANARY, "profile": "kimi-k3"})
    assert run.rc == 2
    assert run.stdout.splitlines()[0] == f"::add-mask::{CANARY}"
    assert any(line.startswith("::error") and "base-url" in line for line in run.stdout.splitlines())
    assert run.outputs == {"verdict": "error", "results-json": "", "summary-file": "", "exit-code": "2",
                           "simulated": "false"}
    assert "kvv could not run (exit 2)" in run.summary and "base-url" in run.summary
    assert CANARY not in run.summary + run.output_file.read_text()


@pytest.mark.parametrize("value", ["yes", "1", "tRuE"])
def test_a_bad_boolean_is_a_usage_error(tmp_path, value):
    run = run_action(tmp_path, {"simulate": value})
    assert run.rc == 2
    [error] = run.lines("::error")
    assert "'simulate' must be true or false" in error and value in error
    assert run.outputs["verdict"] == "error"


def test_a_config_error_in_kvv_reports_what_went_wrong(tmp_path):
    (tmp_path / "workspace").mkdir()
    (tmp_path / "workspace" / "kvv.yaml").write_text("concurrency: lots\n")
    stale = tmp_path / "workspace" / "kvv-out" / "results.json"
    stale.parent.mkdir()
    stale.write_text(json.dumps({"verdict": "pass"}))           # a previous run's, never reported
    for name in entrypoint.FILE_OUTPUTS.values():               # nor its reports
        (stale.parent / name).write_text("stale")
    run = run_action(tmp_path, {"config": "kvv.yaml", "simulate": "true"})
    assert run.rc == 2
    assert run.outputs["verdict"] == "error" and run.outputs["exit-code"] == "2"
    assert not set(entrypoint.FILE_OUTPUTS) & set(run.outputs)
    [error] = [line for line in run.stdout.splitlines() if line.startswith("::error")]
    assert "kvv.yaml" in error and "concurrency" in error
    assert "kvv could not run (exit 2)" in run.summary and "concurrency" in run.summary


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root, as in the container")
def test_output_files_go_to_the_workspace_owner(tmp_path):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "theirs.txt").write_text("untouched")
    os.chown(workspace, 4321, 4321)
    run = run_action(tmp_path, {"simulate": "true", "output-dir": "reports/kvv"})
    assert run.outputs["results-json"] == "reports/kvv/results.json"
    made = [workspace / "reports", *(workspace / "reports").rglob("*")]
    assert len(made) >= 4 and all(p.stat().st_uid == 4321 for p in made)
    assert (workspace / "theirs.txt").stat().st_uid == 0


def report_outputs(output_dir: Path) -> dict[str, str]:
    """The report outputs a run should have: those whose file it wrote."""
    return {name: f"kvv-out/{filename}" for name, filename in entrypoint.FILE_OUTPUTS.items()
            if (output_dir / filename).is_file()}


# --- the pull-request comment --------------------------------------------------------------

COMMENT_INPUTS = {"simulate": "true", "only": "param-temperature", "comment": "true", "github-token": GH_CANARY}


def pr_env(tmp_path: Path, stub: GitHubStub, event: str = "pull_request", number: int = 7) -> dict[str, str]:
    """What the runner sets for a pull_request event, with the API at the stub."""
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps({"action": "synchronize", "number": number,
                                      "pull_request": {"number": number, "head": {"ref": "feature"}}}))
    return {"GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(event_file), "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": stub.url, "GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "4242",
            "GITHUB_JOB": "verify", "GITHUB_WORKFLOW_REF": f"{REPO}/.github/workflows/kvv.yml@refs/pull/7/merge"}


@pytest.fixture
def gh():
    with GitHubStub(token=GH_CANARY, repo=REPO, page_size=5) as stub:
        yield stub


def test_a_pr_run_comments_then_updates_its_comment_with_what_changed(tmp_path, gh):
    for i in range(11):
        gh.add_comment(7, f"review comment {i}", user=f"reviewer{i}")
    first = run_action(tmp_path, COMMENT_INPUTS, pr_env(tmp_path, gh))
    assert first.rc == 0, first.stdout + first.stderr
    [ours] = [c for c in gh.on(7) if c["user"]["login"] == "github-actions[bot]"]
    assert first.outputs["comment-url"] == ours["html_url"]
    assert f"kvv: PR comment created: {ours['html_url']}" in first.stdout.splitlines()
    assert "kvv: PASS" in ours["body"] and "Since the previous" not in ours["body"]
    assert f"https://github.com/{REPO}/actions/runs/4242" in ours["body"]
    assert "key=kvv.yml/verify/kvv-out -->" in ours["body"]
    assert_commands_stopped_around_kvv_output(first)

    gh.add_comment(7, "a later review comment", user="reviewer")      # ours is now on page 3 of 3
    gh.requests.clear()
    second = run_action(tmp_path, {**COMMENT_INPUTS, "simulate-faults": "ignore-temperature"}, pr_env(tmp_path, gh))
    assert second.rc == 1, second.stdout + second.stderr                # the verdict's code
    assert [r.query.get("page", ["1"])[0] for r in gh.calls("GET")] == ["1", "2", "3"]
    [patch] = gh.calls("PATCH")
    assert patch.path == f"/repos/{REPO}/issues/comments/{ours['id']}" and not gh.calls("POST")
    assert second.outputs["comment-url"] == ours["html_url"]
    body = gh.on(7)[11]["body"]
    assert "kvv: FAIL" in body
    assert "- `param-temperature`: ✅ pass → ❌ fail" in body and "- verdict: ✅ pass → ❌ fail" in body
    assert len(gh.on(7)) == 13


def test_matrix_legs_with_their_own_output_dir_keep_a_comment_each(tmp_path, gh):
    for leg in ("kvv-out/a", "kvv-out/b"):
        run = run_action(tmp_path, {**COMMENT_INPUTS, "output-dir": leg}, pr_env(tmp_path, gh))
        assert run.rc == 0 and run.outputs["comment-url"]
    assert len(gh.on(7)) == 2 and len(gh.calls("POST")) == 2


def test_the_github_token_is_masked_first_and_written_nowhere(tmp_path, gh):
    run = run_action(tmp_path, COMMENT_INPUTS, {**pr_env(tmp_path, gh), "GITHUB_TOKEN": GH_CANARY})
    assert run.rc == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[0] == f"::add-mask::{GH_CANARY}"
    assert run.stdout.count(GH_CANARY) == 1 and GH_CANARY not in run.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert GH_CANARY not in path.read_text(encoding="utf-8", errors="replace"), path
    assert GH_CANARY not in json.dumps(gh.comments)
    assert all(r.headers["Authorization"] == f"Bearer {GH_CANARY}" for r in gh.requests)   # it was used


@pytest.mark.parametrize("status", [403, 404])
def test_a_token_that_cannot_write_is_a_notice_and_the_verdict_decides(tmp_path, gh, status):
    gh.fail("POST", status)
    run = run_action(tmp_path, {**COMMENT_INPUTS, "simulate-faults": "ignore-temperature"}, pr_env(tmp_path, gh))
    assert run.rc == 1, run.stdout + run.stderr
    [notice] = [line for line in run.lines("::notice::") if "comment" in line]
    assert "the token cannot write comments" in notice and "fork PRs get a read-only token" in notice
    assert f"HTTP {status}" in notice
    assert not run.lines("::warning") and "comment-url" not in run.outputs
    assert run.outputs["verdict"] == "fail" and run.outputs["exit-code"] == "1"


@pytest.mark.parametrize("method, status, expected", [
    ("GET", 401, "HTTP 401: Bad credentials"),
    ("GET", 500, "HTTP 500: Server Error"),
    ("POST", 422, "HTTP 422: Validation Failed"),
])
def test_other_api_failures_are_a_warning_and_the_verdict_decides(tmp_path, gh, method, status, expected):
    gh.fail(method, status)
    run = run_action(tmp_path, COMMENT_INPUTS, pr_env(tmp_path, gh))
    assert run.rc == 0, run.stdout + run.stderr
    [warning] = run.lines("::warning::")
    assert warning.startswith("::warning::kvv could not comment on the pull request") and expected in warning
    assert GH_CANARY not in warning and "comment-url" not in run.outputs


def test_pull_request_target_comments_too(tmp_path, gh):
    run = run_action(tmp_path, COMMENT_INPUTS, pr_env(tmp_path, gh, event="pull_request_target", number=9))
    assert run.rc == 0 and len(gh.on(9)) == 1


def test_a_push_has_no_pull_request_to_comment_on(tmp_path, gh):
    run = run_action(tmp_path, COMMENT_INPUTS, pr_env(tmp_path, gh, event="push"))
    assert run.rc == 0
    assert "::notice::comment: true, but this run is for a push event: there is no pull request to comment on" \
        in run.stdout.splitlines()
    assert not gh.requests and "comment-url" not in run.outputs


def test_no_comment_unless_asked(tmp_path, gh):
    run = run_action(tmp_path, {**COMMENT_INPUTS, "comment": "false"}, pr_env(tmp_path, gh))
    assert run.rc == 0 and not gh.requests and not run.lines("::notice")


def test_an_event_without_a_pull_request_number_is_a_warning(tmp_path, gh):
    env = pr_env(tmp_path, gh)
    Path(env["GITHUB_EVENT_PATH"]).write_text(json.dumps({"pull_request": {}}))
    run = run_action(tmp_path, COMMENT_INPUTS, env)
    assert run.rc == 0
    [warning] = run.lines("::warning::")
    assert "pull_request.number" in warning and not gh.requests


def test_a_bad_comment_boolean_is_a_usage_error(tmp_path):
    run = run_action(tmp_path, {"simulate": "true", "comment": "yes"})
    assert run.rc == 2
    [error] = run.lines("::error")
    assert "'comment' must be true or false" in error


# --- outside GitHub ------------------------------------------------------------------------

def standalone_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_"))}


def test_standalone_help_is_kvvs():
    proc = subprocess.run([sys.executable, str(ENTRYPOINT), "--help"], env=standalone_env(),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0
    assert "Usage: kvv" in proc.stdout and "::" not in proc.stdout


def test_standalone_run_passes_the_exit_code_through(tmp_path):
    proc = subprocess.run([sys.executable, str(ENTRYPOINT), "run", "--simulate", "--sim-fault",
                           "ignore-temperature", "--output-dir", str(tmp_path / "out")],
                          cwd=tmp_path, env=standalone_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text())["verdict"] == "fail"
    assert "::stop-commands::" not in proc.stdout


def test_standalone_usage_error_exits_2():
    proc = subprocess.run([sys.executable, str(ENTRYPOINT), "run", "--concurrency", "0"],
                          env=standalone_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 2


# --- inputs -> command line (in process) ---------------------------------------------------

@pytest.fixture
def inputs(monkeypatch):
    for name in list(os.environ):
        if name.startswith("INPUT_") or name in entrypoint.KEY_ENVS + entrypoint.BASE_URL_ENVS:
            monkeypatch.delenv(name)

    def set_inputs(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"INPUT_{name.upper()}", value)
    return set_inputs


def test_read_input_prefers_the_hyphenated_name_and_treats_empty_as_unset(inputs):
    inputs(**{"base-url": "http://a", "base_url": "http://b", "model": "  ", "think_mode": "kimi"})
    assert entrypoint.read_input("base-url") == "http://a"
    assert entrypoint.read_input("model") is None
    assert entrypoint.read_input("think-mode") == "kimi"


def test_inputs_become_kvv_run_arguments(inputs, tmp_path, capsys):
    inputs(**{"base-url": "https://api.example.com/v1", "profile": "kimi-k3", "concurrency": "8",
              "only": "param-temperature\nparam-top-p, param-n", "resume": "True", "simulate": "false",
              "simulate-faults": "", "fail-on": "inconclusive", "output-dir": "kvv-out"})
    # A first run of a cached output directory has nothing to resume: a new run, with a notice.
    assert "--resume" not in entrypoint.kvv_args(tmp_path / "kvv-out", "sk-x")
    assert "::notice::resume: no journal" in capsys.readouterr().out
    (tmp_path / "kvv-out").mkdir()
    (tmp_path / "kvv-out" / "journal.jsonl").write_text("")
    args = entrypoint.kvv_args(tmp_path / "kvv-out", "sk-x")
    args[args.index("--output-dir") + 1] = "kvv-out"
    assert args == ["--base-url", "https://api.example.com/v1", "--fail-on", "inconclusive",
                    "--only", "param-temperature,param-top-p,param-n", "--concurrency", "8",
                    "--output-dir", "kvv-out", "--resume", "--api-key-env", "KVV_API_KEY"]
    assert "sk-x" not in args


def test_simulate_faults_repeat_the_option(inputs):
    inputs(**{"simulate": "TRUE", "simulate-faults": "ignore-temperature\nrate-limit=0.2"})
    args = entrypoint.kvv_args(Path("out"), None)
    assert args == ["--output-dir", "out", "--simulate",
                    "--sim-fault", "ignore-temperature", "--sim-fault", "rate-limit=0.2"]


def test_the_child_environment_is_reset(monkeypatch):
    monkeypatch.setenv("PATH", "utter-nonsense")
    monkeypatch.setenv("HOME", "relative/home")
    monkeypatch.setenv("PYTHONWARNINGS", "error")
    monkeypatch.setenv("INPUT_API-KEY", CANARY)
    monkeypatch.setenv("GITHUB_TOKEN", GH_CANARY)
    monkeypatch.setenv("GH_TOKEN", GH_CANARY)
    env = entrypoint.child_env(CANARY)
    assert GH_CANARY not in env.values()                       # kvv run never needs the GitHub token
    assert env["PATH"].startswith("/usr/local/sbin:") and env["HOME"] == "/tmp"
    assert "PYTHONWARNINGS" not in env and not any(k.startswith("INPUT_") for k in env)
    assert env["KVV_API_KEY"] == CANARY and env["PYTHONPATH"] == str(ROOT)


# --- action.yml ----------------------------------------------------------------------------

def action_inputs() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "action.yml").read_text())["inputs"]


def test_every_input_maps_to_a_kvv_run_option_with_the_same_default():
    from kvv.cli import cli

    help_text = subprocess.run([sys.executable, "-m", "kvv", "run", "--help"], capture_output=True,
                               text=True, timeout=TIMEOUT, check=True).stdout
    run_params = {p.opts[0]: p for p in cli.commands["run"].params}
    # Keys reach kvv through its environment (KVV_API_KEY, KVV_REFERENCE_API_KEY), never argv.
    special = {"api-key": "--api-key-env", "reference-api-key": "--reference-base-url",
               "judge-api-key": "--judge-base-url", "output-dir": "--output-dir", "simulate-faults": "--sim-fault"}
    mapped = {**entrypoint.OPTIONS, **entrypoint.FLAGS, **special}
    assert set(action_inputs()) == set(mapped) | set(entrypoint.ACTION_ONLY)
    for name, spec in action_inputs().items():
        if name in entrypoint.ACTION_ONLY:                    # `kvv comment`'s, not `kvv run`'s
            assert spec.get("description") and str(spec.get("default")) == entrypoint.ACTION_ONLY[name], name
            continue
        option = mapped[name]
        assert re.search(rf"^\s+{re.escape(option)}\b", help_text, re.M), option
        assert spec.get("description"), name
        default = str(spec.get("default", ""))
        assert default == entrypoint.DEFAULTS.get(name, default)
        shown = re.search(r"\[default: ([^\]]+)\]", run_params[option].help or "")
        if name in entrypoint.FLAGS:
            assert default == "false" and not run_params[option].default
        elif shown and not shown.group(1).startswith("the "):
            assert default == shown.group(1), name            # e.g. concurrency "4" == [default: 4]
        else:
            assert default == "", name                        # no default: the CLI decides


def test_outputs_are_declared_with_descriptions():
    outputs = yaml.safe_load((ROOT / "action.yml").read_text())["outputs"]
    assert set(outputs) == {"verdict", "results-json", "summary-file", "exit-code", "simulated",
                            "sarif-file", "badge-file", "junit-file", "comment-url"}
    assert all(spec.get("description") for spec in outputs.values())


@pytest.mark.parametrize("schema, files", [
    ("vendor.github-actions", ["action.yml"]),
    ("vendor.github-workflows", [".github/workflows/self-test.yml", ".github/workflows/ci.yml"]),
])
def test_metadata_validates_against_schemastore(schema, files):
    pytest.importorskip("check_jsonschema")
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *files],
                          cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
