"""The kvv action's entrypoint (github-action.md §1).

Outside GitHub it *is* `kvv`: `docker run IMAGE run --base-url …` takes the same arguments.
With GITHUB_ACTIONS=true it turns the action's INPUT_* variables into a `kvv run` command,
runs it with the API key in the child's environment (never in argv), and then, whatever the
run's outcome, writes the job summary, the step outputs and the annotations, and exits with
the run's code.

With `comment: true` on a pull_request or pull_request_target event it also creates or updates
kvv's comment on the pull request (kvv/github_api.py, in this process: the GitHub token never
reaches a child process). The comment is found again by a marker of model, profile, suite,
endpoint and `key=WORKFLOW-FILE/JOB/OUTPUT-DIR`, so matrix legs that differ in any of those (give
each leg its own `output-dir` otherwise) keep a comment each. Commenting never changes the exit
code: a token that cannot write (a fork's read-only one) is a notice, any other failure a warning.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path

import kvv
from kvv.redact import Redactor
from kvv.report import github, markdown

# input -> `kvv run` option. Every input of action.yml is here, in FLAGS, or special below.
OPTIONS = {
    "base-url": "--base-url", "model": "--model", "profile": "--profile",
    "think-mode": "--think-mode", "suite": "--suite", "config": "--config", "fail-on": "--fail-on",
    "only": "--only", "skip": "--skip", "concurrency": "--concurrency", "timeout": "--timeout",
    "request-deadline": "--request-deadline", "max-duration": "--max-duration",
    "max-requests": "--max-requests", "max-completion-tokens": "--max-completion-tokens",
    "max-prompt-tokens": "--max-prompt-tokens",
    "max-retries": "--max-retries", "cases": "--cases", "shard": "--shard",
    "reference-base-url": "--reference-base-url", "reference-model": "--reference-model",
    "judge-base-url": "--judge-base-url", "judge-model": "--judge-model",
}
FLAGS = {"resume": "--resume", "allow-insecure-http": "--allow-insecure-http", "simulate": "--simulate"}
# Inputs of the action alone, not of `kvv run` (`kvv comment` is their CLI side).
ACTION_ONLY = {"comment": "false", "github-token": "${{ github.token }}"}
# action.yml's defaults, which are also the CLI's (a test keeps the three in step). An input
# left at its default is not passed on, so a config file can still set that option.
DEFAULTS = {
    "output-dir": "kvv-out", "profile": "kimi-k3", "suite": "preflight", "fail-on": "fail",
    "concurrency": "4", "timeout": "120", "max-retries": "4", "max-prompt-tokens": "131072",
}
KEY_ENVS = ("KVV_API_KEY", "KIMI_API_KEY")              # what the CLI reads the key from
REFERENCE_KEY_ENV = "KVV_REFERENCE_API_KEY"             # and the reference endpoint's key
JUDGE_KEY_ENV = "KVV_JUDGE_API_KEY"                     # and the judge's (BEAM)
BASE_URL_ENVS = ("KVV_BASE_URL", "KIMI_BASE_URL")
GITHUB_TOKEN_ENVS = ("GITHUB_TOKEN", "GH_TOKEN")         # kvv run never needs these
PR_EVENTS = ("pull_request", "pull_request_target")
# Reports a run writes beside results.json, as step outputs when this run wrote them.
FILE_OUTPUTS = {"sarif-file": "kvv.sarif", "badge-file": "badge.json", "junit-file": "junit.xml"}
TRUE, FALSE = ("true", "True", "TRUE"), ("false", "False", "FALSE")   # toolkit getBooleanInput
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# This file sits beside the kvv package (repo root, /app in the image); the child imports
# kvv from there whether or not it is pip-installed.
PACKAGE_ROOT = str(Path(kvv.__file__).resolve().parent.parent)
TAIL_LINES = 20
DOCUMENTED_EXIT_CODES = (0, 1, 2, 3)


class InputError(Exception):
    """An action input is missing or malformed: exit 2."""


def main(argv: list[str]) -> int:
    if os.environ.get("GITHUB_ACTIONS") != "true":
        from kvv.cli import main as kvv_main
        kvv_main(argv)          # click exits with the run's code
        return 0
    return action()


def action() -> int:
    # The step's env may set any locale; the log is UTF-8 whatever it says.
    sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    key, reference_key = read_input("api-key"), read_input("reference-api-key")
    judge_key = read_input("judge-api-key")
    # `docker run` users have no action.yml default: the token may come from the environment.
    github_token = read_input("github-token") or next(filter(None, map(os.environ.get, GITHUB_TOKEN_ENVS)), None)
    # Masks first: nothing may print a secret before the runner knows to hide it.
    secrets = list(dict.fromkeys(s for s in (key, reference_key, os.environ.get(REFERENCE_KEY_ENV),
                                             judge_key, os.environ.get(JUDGE_KEY_ENV),
                                             os.environ.get("HF_TOKEN"), *map(os.environ.get, KEY_ENVS),
                                             github_token, *map(os.environ.get, GITHUB_TOKEN_ENVS)) if s))
    for secret in secrets:
        print(github.add_mask(secret), flush=True)
    output_dir = Path(read_input("output-dir") or DEFAULTS["output-dir"])
    try:
        args = kvv_args(output_dir, key)
        comment = read_boolean("comment")
    except InputError as exc:
        return finish_without_results(2, str(exc), output_dir, [])

    results_file = output_dir / "results.json"
    # Never report a previous run's results, nor its reports (a cached output directory).
    for name in ("results.json", *FILE_OUTPUTS.values()):
        (output_dir / name).unlink(missing_ok=True)
    redact = Redactor(*secrets)
    rc, tail = run_kvv(args, child_env(key, reference_key, judge_key), redact)
    try:
        results = json.loads(results_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        reason = f"kvv exited with code {rc} before writing results.json"
        # A crash exits 1 like a failed run; without results kvv proved nothing either way.
        return finish_without_results(rc if rc in (2, 3) else 3, reason, output_dir, tail)
    # Only the documented codes leave the action: an interrupted kvv (130) is "could not finish".
    return finish(rc if rc in DOCUMENTED_EXIT_CODES else 3, results, output_dir,
                  github_token if comment else None, redact, comment)


# --- inputs --------------------------------------------------------------------------------

def read_input(name: str) -> str | None:
    """`INPUT_API-KEY` as the runner sets it, else `INPUT_API_KEY` (shells, buildah); empty is unset."""
    upper = name.upper()
    for var in (f"INPUT_{upper}", f"INPUT_{upper.replace('-', '_')}"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return None


def read_boolean(name: str) -> bool:
    value = read_input(name)
    if value is None or value in FALSE:
        return False
    if value in TRUE:
        return True
    raise InputError(f"input '{name}' must be true or false, got {value!r}")


def split_list(value: str | None) -> list[str]:
    """Newline- or comma-separated, as lists in action inputs are written."""
    return [part.strip() for part in (value or "").replace("\n", ",").split(",") if part.strip()]


def _fresh_resume(name: str, output_dir: Path) -> bool:
    """`resume: true` with nothing to resume yet (the first run of a cached output directory)
    starts a new run, and says so; kvv itself refuses --resume without a journal."""
    if name != "resume" or (output_dir / "journal.jsonl").is_file():
        return False
    print(github.command("notice", f"resume: no journal in {output_dir} yet, so this is a new run"))
    return True


def kvv_args(output_dir: Path, key: str | None) -> list[str]:
    """The `kvv run` arguments for the inputs; raises InputError for bad ones."""
    simulate = read_boolean("simulate")
    args = []
    for name, option in OPTIONS.items():
        value = read_input(name)
        if value is None or value == DEFAULTS.get(name):
            continue
        args += [option, ",".join(split_list(value)) if name in ("only", "skip") else value]
    # Always explicit: this process must know where results.json will be.
    args += ["--output-dir", str(output_dir)]
    args += [flag for name, flag in FLAGS.items() if read_boolean(name) and not _fresh_resume(name, output_dir)]
    for fault in split_list(read_input("simulate-faults")):
        args += ["--sim-fault", fault]
    if key:
        args += ["--api-key-env", "KVV_API_KEY"]   # the input wins over a config's api-key-env
    endpoint = read_input("base-url") or read_input("config") or any(map(os.environ.get, BASE_URL_ENVS))
    if not (endpoint or simulate):
        raise InputError("no endpoint: set the 'base-url' input (or 'config', or 'simulate: true')")
    if not (key or simulate or any(map(os.environ.get, KEY_ENVS))):
        print(github.command("warning", "no API key: set the 'api-key' input or KVV_API_KEY "
                             "(secrets are not passed to workflows triggered from forks)"))
    return args


# --- the run -------------------------------------------------------------------------------

def child_env(key: str | None, reference_key: str | None = None, judge_key: str | None = None) -> dict[str, str]:
    """The environment for `kvv run`: the step's, minus what a workflow could have poisoned."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("INPUT_", "PYTHON")) and name not in GITHUB_TOKEN_ENVS}
    home = env.get("HOME", "")
    env.update(PATH=SAFE_PATH, HOME=home if os.path.isabs(home) and os.path.isdir(home) else "/tmp",
               PYTHONPATH=PACKAGE_ROOT, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    if key:
        env["KVV_API_KEY"] = key
    if reference_key:
        env[REFERENCE_KEY_ENV] = reference_key
    if judge_key:
        env[JUDGE_KEY_ENV] = judge_key
    return env


def run_kvv(args: list[str], env: dict[str, str], redact: Redactor) -> tuple[int, list[str]]:
    """Run `kvv run`, echoing its output where it cannot issue workflow commands.

    Returns the exit code and the last lines of output.
    """
    # -P: the workspace (cwd) must not shadow the kvv package. A CI log gets a line per finished
    # check (not an input: a job log is never a terminal, so rich would be no use).
    command = [sys.executable, "-P", "-m", "kvv", "run", "--progress", "plain", *args]
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace")
    # A cancelled job stops this process; pass it on so kvv closes its journal.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda sig, frame: child.send_signal(sig))
    start, end = github.stop_markers()
    print(start, flush=True)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    for line in child.stdout:
        line = redact.text(line)
        sys.stdout.write(line)
        tail.append(line.rstrip("\n"))
    rc = child.wait()
    print(end, flush=True)
    return rc, list(tail)


# --- reporting back to GitHub --------------------------------------------------------------

def finish(rc: int, results: dict, output_dir: Path, github_token: str | None = None,
           redact: Redactor | None = None, comment: bool = False) -> int:
    summary_file: Path | None = output_dir / "summary.md"
    if not summary_file.exists():
        summary_file = None
    budget = github.SUMMARY_LIMIT - _size(os.environ.get("GITHUB_STEP_SUMMARY"))
    text = summary_file.read_text(encoding="utf-8") if summary_file else markdown.render(results)
    if len(text.encode("utf-8")) > budget:
        text = markdown.render(results, max_bytes=budget)      # cut whole sections, with a note
    comment_url = pr_comment(results, output_dir, github_token, redact or Redactor()) if comment else None
    write_back(rc, results.get("verdict", "error"), text, output_dir, summary_file,
               bool(results.get("target", {}).get("simulated")), comment_url, reports=True)
    config = results.get("config_file") or read_input("config")
    for line in github.annotations(results, workspace_relative(config) if config else None):
        print(line)
    return rc


def finish_without_results(rc: int, reason: str, output_dir: Path, tail: list[str]) -> int:
    """What went wrong, where the user looks: an error annotation, the summary, the outputs."""
    last = next((line for line in reversed(tail) if line.strip()), "")
    print(github.command("error", f"{reason}: {last}" if last else reason, title="kvv"))
    text = f"## 🛑 kvv: ERROR — kvv could not run (exit {rc})\n\n{markdown.inline(reason, 1000)}\n"
    if tail:
        text += "\nThe last lines kvv printed:\n\n" + markdown.fence("\n".join(tail)) + "\n"
    write_back(rc, "error", text, output_dir, None)
    return rc


def write_back(rc: int, verdict: str, summary: str, output_dir: Path, summary_file: Path | None,
               simulated: bool = False, comment_url: str | None = None, reports: bool = False) -> None:
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        github.append_summary(os.environ["GITHUB_STEP_SUMMARY"], summary)
    if os.environ.get("GITHUB_OUTPUT"):
        results_file = output_dir / "results.json"
        github.write_outputs(os.environ["GITHUB_OUTPUT"], {
            "verdict": verdict,
            "results-json": workspace_relative(results_file) if results_file.exists() else "",
            "summary-file": workspace_relative(summary_file) if summary_file else "",
            "exit-code": rc,
            "simulated": "true" if simulated else "false",
            # the reports this run wrote (stale ones were removed before it)
            **{name: workspace_relative(output_dir / filename) for name, filename in FILE_OUTPUTS.items()
               if reports and (output_dir / filename).is_file()},
            **({"comment-url": comment_url} if comment_url else {}),
        })
    give_back_to_workspace_owner(output_dir)


# --- the pull-request comment ------------------------------------------------------------

def pr_comment(results: dict, output_dir: Path, token: str | None, redact: Redactor) -> str | None:
    """Create or update kvv's comment on the pull request; the comment's URL, or None.

    Never raises and never changes the step's outcome: the verdict is the exit code's."""
    event = os.environ.get("GITHUB_EVENT_NAME", "")
    if event not in PR_EVENTS:
        print(github.command("notice", f"comment: true, but this run is for a {event or 'unknown'} event: "
                             "there is no pull request to comment on"))
        return None
    try:
        pr = pull_request_number(os.environ.get("GITHUB_EVENT_PATH"))
        repo = os.environ.get("GITHUB_REPOSITORY", "")
        if not token:
            raise ValueError("no token: set the 'github-token' input (its default is github.token)")
        from kvv import github_api

        done = github_api.post_results(results, token=token, repo=repo, pr=pr,
                                       api_url=os.environ.get("GITHUB_API_URL") or None,
                                       run_url=run_url(), key=comment_key(output_dir))
    except Exception as exc:            # noqa: BLE001 - a comment must never fail the step
        status, on_write = getattr(exc, "status", None), getattr(exc, "on_write", False)
        message = redact.text(str(exc))
        if on_write and status in (403, 404):
            print(github.command("notice", f"kvv did not comment: the token cannot write comments ({message}): "
                                 "fork PRs get a read-only token; the job summary has the report. For a "
                                 "same-repository PR, give the job `permissions: pull-requests: write`."))
        else:
            print(github.command("warning", f"kvv could not comment on the pull request: {message}"))
        return None
    print(f"kvv: PR comment {done.action}: {done.url}", flush=True)
    return done.url


def pull_request_number(event_path: str | None) -> int:
    """`pull_request.number` of the event payload."""
    if not event_path:
        raise ValueError("GITHUB_EVENT_PATH is not set: no event payload to read the pull request from")
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
        number = event["pull_request"]["number"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"no pull_request.number in the event payload ({type(exc).__name__})") from None
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"bad pull_request.number in the event payload: {number!r}")
    return number


def run_url() -> str | None:
    names = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    parts = [os.environ.get(name, "").rstrip("/") for name in names]
    return f"{parts[0]}/{parts[1]}/actions/runs/{parts[2]}" if all(parts) else None


def comment_key(output_dir: Path) -> str:
    """WORKFLOW-FILE/JOB/OUTPUT-DIR: the marker's extra identity (with model, profile, suite and
    endpoint from results.json). Matrix legs share the job id, so legs that differ in nothing
    else need their own output-dir to keep a comment each."""
    workflow = os.environ.get("GITHUB_WORKFLOW_REF", "").split("@")[0]
    workflow = workflow.rpartition("/.github/workflows/")[2] or os.environ.get("GITHUB_WORKFLOW", "")
    return "/".join(part for part in (workflow, os.environ.get("GITHUB_JOB", ""),
                                      workspace_relative(output_dir)) if part)


def workspace() -> Path:
    return Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()


def workspace_relative(path: str | Path) -> str:
    """A path later steps can use: relative to the workspace (the container's mount point
    means nothing on the host), else as it is."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(workspace()))
    except ValueError:
        return str(path)


def give_back_to_workspace_owner(output_dir: Path) -> None:
    """Files this root process made in the workspace go to the workspace's owner, so a
    self-hosted runner's next checkout can clean them (github-action.md §1.4)."""
    root = workspace()
    try:
        owner = root.stat()
        relative = output_dir.resolve().relative_to(root)
    except (OSError, ValueError):
        return
    if os.geteuid() != 0 or owner.st_uid == 0 or not relative.parts:
        return
    top = root / relative.parts[0]             # parents kvv created belong to the owner too
    for path in [top, *top.rglob("*")] if top.exists() else []:
        if path.lstat().st_uid == 0:
            os.lchown(path, owner.st_uid, owner.st_gid)


def _size(path: str | None) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
