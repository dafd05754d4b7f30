"""The `kvv` command: a thin layer of click over the library."""

from __future__ import annotations

from . import interrupt

if interrupt.command_line():
    interrupt.defer()       # before the imports below: a SIGTERM during them must still leave a journal

import contextlib
import json
import os
import math
import signal
import sys
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import click
from tabulate import tabulate

from . import __version__
from .checks import SUITES, registry
from .config import Settings, load_settings, parse_shard
from .errors import ConfigError
from .profile import builtin_profiles, differences, load_profile, load_profile_data
from .thinking import THINK_MODES
from .verdict import FAIL_ON

RUN_EPILOG = """\b
The API key is read from the environment, never from the command line:
KVV_API_KEY, else KIMI_API_KEY, else the variable named by --api-key-env.
KVV_BASE_URL/KIMI_BASE_URL, KVV_MODEL/MODEL_NAME and THINK_MODE are defaults.
Precedence: flags > --config file > environment.

\b
Exit codes: 0 pass, 1 fail, 2 usage or configuration error,
            3 inconclusive or infrastructure error (see --fail-on).

\b
Examples:
  kvv run --base-url https://api.example.com/v1 --model kimi-k3 --profile kimi-k3
  kvv run --simulate --sim-fault ignore-temperature
  kvv run --config kvv.yaml --only param-temperature,param-top-p
"""


class FiniteFloat(click.FloatRange):
    """A FloatRange that refuses nan and inf: click lets them through (every comparison with nan
    is false), and a NaN timeout would make every request time out at once or never."""

    name = "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class ShardType(click.ParamType):
    name = "I/N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_shard(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _suite_options(command):
    """Options shared by `run` and `plan` (every one also a key of the config file)."""
    options = [
        click.option("--config", "config", type=click.Path(dir_okay=False),
                     help="YAML file whose keys mirror these long options."),
        click.option("--base-url", help="OpenAI-compatible base URL, e.g. https://api.moonshot.ai/v1."),
        click.option("--model", help="Model name sent in every request."),
        click.option("--profile", help=f"Model contract: {', '.join(builtin_profiles())}, or a YAML file. "
                                       "[default: kimi-k3]"),
        click.option("--think-mode", type=click.Choice(THINK_MODES),
                     help="How requests switch thinking: kimi `thinking`, opensource `chat_template_kwargs`, "
                          "or none. [default: the profile's]"),
        click.option("--suite", type=click.Choice(SUITES),
                     help="preflight (parameter contract, usage, streaming), tools (tool calling and the "
                          "API contract), bench (OCRBench, MMMU-Pro, AIME 2025, BEAM against the profile's "
                          "reference, stopping once settled), probes (long-output, image-ladder, context-depth: "
                          "where a deployment breaks, rung by rung), or all. [default: preflight]"),
        click.option("--only", help="Run only these check ids (comma-separated)."),
        click.option("--skip", help="Skip these check ids (comma-separated)."),
        click.option("--cases", type=click.Path(dir_okay=False),
                     help="Case file for the one check chosen with --only (e.g. upstream's schema-per-line "
                          "or prompt-token files)."),
        click.option("--reference-base-url",
                     help="Official endpoint for paired checks (toolcall-replay collects its reference live); "
                          "key in KVV_REFERENCE_API_KEY."),
        click.option("--reference-model", help="Model name at the reference endpoint. [default: the --model value]"),
        click.option("--judge-base-url",
                     help="OpenAI-compatible endpoint of the judge that scores BEAM's answers; key in "
                          "KVV_JUDGE_API_KEY. Without one, beam is not applicable (kvv's simulator judges "
                          "its own answers)."),
        click.option("--judge-model", help="Model name at the judge endpoint. [default: the --model value]"),
        click.option("--concurrency", type=click.IntRange(1, 256), help="Requests in flight. [default: 4]"),
        click.option("--timeout", type=FiniteFloat(min=0, min_open=True),
                     help="Seconds a request may wait between two bytes (a stalled connection); "
                          "--request-deadline bounds the whole request. [default: 120]"),
        click.option("--max-duration", "--deadline", "max_duration", type=FiniteFloat(min=0, min_open=True),
                     metavar="SECONDS",
                     help="Budget for the whole run: items not started by then are not run (error), and no "
                          "Retry-After wait goes past it. [default: the run is not time-boxed]"),
        click.option("--max-requests", type=click.IntRange(min=1), metavar="N",
                     help="Budget: HTTP requests (retries included) for the whole run; then no item starts. "
                          "[default: the run is not capped]"),
        click.option("--max-completion-tokens", type=click.IntRange(min=1), metavar="N",
                     help="Budget: completion tokens the vendor reports, for the whole run. "
                          "[default: the run is not capped]"),
        click.option("--request-deadline", type=FiniteFloat(min=0, min_open=True), metavar="SECONDS",
                     help="Total seconds one request attempt may take, connect to last byte (--timeout bounds "
                          "only the gap between bytes). [default: the floor max(60 s, --timeout) plus 0.1 s per "
                          "token of max_tokens (4096 if unset), at most 1800 s]"),
        click.option("--max-retries", type=click.IntRange(0, 20),
                     help="Retries on 429, 5xx and connection errors. [default: 4]"),
        click.option("--output-dir", type=click.Path(file_okay=False), help="Where results go. [default: kvv-out]"),
        click.option("--fail-on", type=click.Choice(FAIL_ON),
                     help="What breaks the build: fail, also inconclusive, or never. [default: fail]"),
        click.option("--resume", is_flag=True, default=None,
                     help="Reuse the items an earlier run of the same target and settings finished (its journal "
                          "in --output-dir); exits 2 naming what differs if it was another run."),
        click.option("--api-key-env", metavar="NAME", help="Environment variable that holds the API key."),
        click.option("--allow-insecure-http", is_flag=True, default=None,
                     help="Allow plain http:// to a host that is not loopback."),
        click.option("--max-prompt-tokens", type=click.IntRange(min=1), metavar="N",
                     help="The longest prompt a probe sends: context-depth leaves out longer rungs (and the "
                          "over-limit request) and `kvv plan` says which; env KVV_MAX_PROMPT_TOKENS. "
                          "[default: 131072]"),
        click.option("--seed", type=int, help="Seed of the benchmarks' sampling order. [default: 1]"),
        click.option("--full-pass", is_flag=True, default=None,
                     help="Benchmark rows each once (in a seeded order) instead of drawn uniformly with "
                          "replacement; the anytime guarantee assumes draws, so prefer the default."),
        click.option("--shard", type=ShardType(),
                     help="Run only the I-th of N slices of every check's items (1/4 … 4/4 in a matrix; slices are "
                          "disjoint for any N); combine the outputs with `kvv merge`. Without it every item runs."),
        click.option("--no-gate", "gate", flag_value=False, default=None,
                     help="Run benchmarks even when a preflight check of the same run did not pass."),
        click.option("--datasets-server", metavar="URL",
                     help="Dataset viewer API benchmarks read rows from. [default: KVV_DATASETS_SERVER, else "
                          "the public Hugging Face one]"),
        click.option("--simulate", is_flag=True, default=False,
                     help="Run against kvv's simulated vendor in-process (no endpoint or key needed)."),
        click.option("--sim-fault", multiple=True, metavar="NAME[=VALUE]",
                     help="With --simulate: a fault to inject (repeatable; see `kvv simulate --list-faults`)."),
        click.option("--sim-seed", type=int, default=0, show_default=True, help="With --simulate: the seed."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _progress_options(command):
    """Where a run happens (`run`, `demo`): what it shows on stderr while under way."""
    command = click.option("--quiet", "-q", is_flag=True, help="Show no progress (--progress none).")(command)
    return click.option("--progress", "progress_mode", type=click.Choice(("rich", "plain", "none")),
                        help="Progress on stderr: rich (a live block per check), plain (a line per finished "
                             "check) or none; results and stdout are the same with each. [default: rich on a "
                             "terminal unless CI is set, else plain]")(command)


def _progress(progress_mode: str | None, quiet: bool):
    from .progress import choose
    return choose("none" if quiet else progress_mode)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kvv")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """kvv verifies that an inference provider serves an open-weight model correctly.

    \b
    Start here:
      kvv demo                       see a healthy and a broken vendor, no credentials needed
      kvv checks                     what each check catches
      kvv profiles                   the model contracts kvv knows, each as of a date
      kvv plan --simulate            what a run would send, without sending it
      kvv run --base-url URL --model NAME --profile kimi-k3
      kvv ingest swe-bench REPORT    a SWE-bench / DeepSWE harness report as a kvv check
    """
    # Only a run keeps signals deferred until its journal can be resumed (kvv.interrupt).
    if interrupt.deferring() and ctx.invoked_subcommand not in ("run", "demo"):
        interrupt.raise_on_signal()


@cli.command(epilog=RUN_EPILOG)
@_suite_options
@_progress_options
def run(simulate: bool, sim_fault: tuple[str, ...], sim_seed: int, progress_mode: str | None, quiet: bool,
        **flags: Any) -> None:
    """Run a suite against an endpoint and judge it.

    Writes results.json, summary.md and journal.jsonl to the output directory,
    prints a report, and exits with the verdict's code.
    """
    from . import runner

    with _config_errors(), _target(flags, simulate, sim_fault, sim_seed) as (settings, target, api_key):
        plan = runner.plan_for(settings, target)
        if not interrupt.deferring():     # invoked in-process, not as the kvv command
            _handle_sigterm()
        try:
            with _progress(progress_mode, quiet) as progress:
                results = runner.run(settings, target, plan, api_key, progress)
        except runner.Interrupted as interrupted:
            _publish(interrupted.results, Path(settings.output_dir))
            click.echo(f"kvv: interrupted; finished items are in {settings.output_dir}/journal.jsonl — "
                       "run again with --resume to finish", err=True)
            sys.exit(130)
    _publish(results, Path(settings.output_dir))
    sys.exit(results["exit_code"])


@cli.command(epilog="Sends nothing: safe to run before you have credentials.")
@_suite_options
def plan(simulate: bool, sim_fault: tuple[str, ...], sim_seed: int, **flags: Any) -> None:
    """Show every check a run would perform, its requests and its token ceiling."""
    from . import runner

    with _config_errors():
        settings = load_settings({k: v for k, v in flags.items() if v is not None})
        if simulate:
            settings.base_url = settings.base_url or "(simulated vendor)"
            settings.model = settings.model or load_profile(settings.profile).id
        target = runner.resolve_target(settings)
        if simulate:   # what `kvv run --simulate` would meet: the simulator, with its default tokenizer
            from .simulator.tokenizer import DEFAULT
            target.simulator = DEFAULT.identity
        planned = runner.plan_for(settings, target)
    # Prompt tokens are shown where checks estimate theirs (long contexts): the rest send short prompts.
    prompts = any(p.prompt_tokens is not None for p in planned.checks)
    rows = [[p.check.id, len(p.items), p.requests, _ceiling(p.token_ceiling),
             *([_estimate(p.prompt_tokens)] if prompts else []), p.check.detects] for p in planned.checks]
    click.echo(f"kvv plan: suite {settings.suite} against {target.base_url}, model {target.model}, "
               f"profile {target.profile.id}, think mode {target.think_mode}\n")
    headers = ["check", "items", "requests", "max completion tokens", *(["≈ prompt tokens"] if prompts else []),
               "detects"]
    click.echo(tabulate(rows, headers=headers, tablefmt="simple",
                        maxcolwidths=[None] * (len(headers) - 1) + [60 - 10 * prompts]))
    capped, uncapped = planned.token_budget
    budget = f"at most {capped:,} completion tokens"
    if uncapped:
        budget += f", plus {uncapped} answer(s) at the server's default max_tokens"
    if prompts:
        budget += f" and ≈ {sum(p.prompt_tokens or 0 for p in planned.checks):,} prompt tokens in long contexts"
    click.echo(f"\n{len(planned.checks)} checks, {sum(len(p.items) for p in planned.checks)} items, "
               f"{planned.requests} requests (+ 2 for the probe before the suite, "
               f"+ up to {settings.max_retries} retries each on 429/5xx), "
               f"{budget}.")
    for check_id, why in planned.skipped.items():
        click.echo(f"not run: {check_id} ({why})")
    from .checks import bench, ladder
    for planned_check in planned.checks:
        expected = bench.expectation(planned_check) or ladder.expectation(planned_check)
        if expected:
            click.echo(f"{planned_check.check.id} stops once settled: {expected}")
    from .checks import context_depth
    for planned_check in planned.checks:
        for note in context_depth.plan_notes(planned_check):
            click.echo(note)
    for planned_check in planned.checks:
        rungs = planned_check.rungs()
        if rungs:
            click.echo(f"\n{planned_check.check.id} by rung:")
            click.echo(tabulate([[r["rung"], r["items"], r["requests"], _ceiling(r["completion"]),
                                  _estimate(r["prompt"])] for r in rungs],
                                headers=["rung", "items", "requests", "max completion tokens", "≈ prompt tokens"],
                                tablefmt="simple"))


def _ceiling(value: int | None) -> str:
    return "server default" if value is None else f"{value:,}"


def _estimate(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


FORMATS = ("markdown", "sarif", "junit", "badge", "badge-svg", "terminal")


@cli.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--format", "form", type=click.Choice(FORMATS), default="markdown", show_default=True,
              help="markdown (the job summary), sarif (for code scanning), junit (CI test reports), "
                   "badge (shields.io endpoint JSON), badge-svg, or terminal.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write here instead of standard output.")
def report(source: str, form: str, output: str | None) -> None:
    """Render a report from results.json (a file, or the output directory holding it).

    Sends nothing: every report is a rendering of results.json, the same bytes `kvv run` wrote.
    """
    from . import report as reports

    from .merge import load

    with _config_errors():
        [(_, results)] = load([source])
    renderers = {"markdown": reports.render_markdown, "sarif": reports.sarif.render,
                 "junit": reports.junit.render, "badge": reports.badge.render_json,
                 "badge-svg": reports.badge.render_svg, "terminal": reports.render_terminal}
    text = renderers[form](results)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@cli.command(epilog="""\b
Example (one matrix job per vendor, each uploading its output directory as an artifact):
  kvv compare kvv-out-*/ --output comparison.md""")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--format", "form", type=click.Choice(("markdown", "json")), default="markdown", show_default=True,
              help="markdown (a table to publish) or json (the same comparison as data).")
@click.option("--output", type=click.Path(dir_okay=False), help="Write here instead of standard output.")
def compare(sources: tuple[str, ...], form: str, output: str | None) -> None:
    """Compare vendors: runs of one model and profile (each a results.json or its directory).

    Rows are vendors, columns checks, cells verdicts with their metric and bounds. Runs of
    different profiles are refused (exit 2). Sends nothing.
    """
    from .merge import load
    from .report import compare as comparing

    with _config_errors():
        loaded = load(list(sources))
        documents, names = [r for _, r in loaded], [s for s, _ in loaded]
        render = comparing.render if form == "markdown" else comparing.render_json
        text = render(documents, names)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


COMMENT_EPILOG = """\b
The token is read from GITHUB_TOKEN, never from the command line; it needs
pull-requests: write (or issues: write). The comment is found again by a hidden marker
(model, profile, suite, endpoint and --key), edited in place, and says what changed since
the previous one.

\b
Exit codes (never the vendor's verdict: `kvv run` gives that):
  0  comment created or updated, or --dry-run; also when GitHub refuses the write
     (403/404: a fork PR's read-only token): a notice, since nothing is wrong with kvv's run
  2  usage or configuration: GITHUB_TOKEN unset, bad --repo/--pr, not a results.json,
     token rejected (401), repository or pull request not found (404 reading comments)
  3  any other GitHub failure: 422 (GitHub's message is printed), 403 reading, 5xx after one
     retry, no answer

\b
Example:
  GITHUB_TOKEN=... kvv comment kvv-out --repo octo-org/app --pr 42 \\
    --run-url "$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID"
"""


@cli.command(epilog=COMMENT_EPILOG)
@click.argument("source", type=click.Path(exists=True))
@click.option("--repo", required=True, metavar="OWNER/NAME", help="The repository of the pull request.")
@click.option("--pr", required=True, type=click.IntRange(min=1), help="The pull request number.")
@click.option("--api-url", envvar="GITHUB_API_URL", default="https://api.github.com", show_default=True,
              metavar="URL", help="GitHub REST API base URL (GitHub Enterprise: https://HOST/api/v3). "
                                  "Also read from GITHUB_API_URL.")
@click.option("--run-url", metavar="URL", help="Link to the run (its job summary has the full report).")
@click.option("--key", metavar="TEXT", help="Extra identity for the comment's marker, e.g. the job, so "
                                            "several kvv comments can live on one pull request.")
@click.option("--dry-run", is_flag=True, help="Print the comment body instead of posting it (sends nothing).")
def comment(source: str, repo: str, pr: int, api_url: str, run_url: str | None, key: str | None,
            dry_run: bool) -> None:
    """Post (or update) the kvv comment on a pull request from results.json (a file, or the
    output directory holding it)."""
    from . import github_api
    from .merge import load
    from .report import comment as rendering

    with _config_errors():
        try:
            github_api.validate(repo, pr)
        except ValueError as exc:
            raise ConfigError(str(exc), source="--repo") from None
        [(_, results)] = load([source])
    if dry_run:
        click.echo(rendering.render(results, None, run_url, key=key), nl=False)
        return
    token = os.environ.get("GITHUB_TOKEN", "").strip()
    if not token:
        click.echo("kvv: error: GITHUB_TOKEN is not set: kvv comment needs a token that can write "
                   "pull-request comments", err=True)
        sys.exit(2)
    try:
        done = github_api.post_results(results, token=token, repo=repo, pr=pr, api_url=api_url,
                                       run_url=run_url, key=key)
    except ValueError as exc:
        click.echo(f"kvv: error: {exc}", err=True)
        sys.exit(2)
    except github_api.GitHubError as exc:
        if exc.on_write and exc.status in (403, 404):
            click.echo(f"kvv: notice: the token cannot write comments ({exc}): fork pull requests get "
                       "a read-only token; nothing was posted", err=True)
            return
        if exc.status == 401:
            click.echo(f"kvv: error: GitHub rejected the token ({exc}): check GITHUB_TOKEN", err=True)
            sys.exit(2)
        if exc.status == 404:
            click.echo(f"kvv: error: {repo} pull request {pr} not found, or the token cannot see it "
                       f"({exc})", err=True)
            sys.exit(2)
        click.echo(f"kvv: error: {exc}", err=True)
        sys.exit(3)
    click.echo(f"kvv: comment {done.action}: {done.url}", err=True)
    click.echo(done.url)


@cli.command()
@click.option("--profile", default="kimi-k3", show_default=True,
              help="Include the parameter checks this profile pins.")
def checks(profile: str) -> None:
    """List every check with the deployment fault it detects."""
    with _config_errors():
        loaded = load_profile(profile)
    rows = [[c.id, ",".join(c.suites), c.detects] for c in registry(loaded)]
    click.echo(tabulate(rows, headers=["check", "suite", "detects"], tablefmt="simple",
                        maxcolwidths=[None, None, 70]))


@cli.group(invoke_without_command=True, epilog="""\b
Examples:
  kvv profiles                            the built-in profiles and the date of each contract
  kvv profiles diff kimi-k2.5 kimi-k3     what changed from one contract to the next
  kvv profiles diff kimi-k3 my-k3.yaml    your edited copy against kvv's""")
@click.pass_context
def profiles(ctx: click.Context) -> None:
    """The model profiles: each is a model's API contract as of a date, from an upstream source."""
    if ctx.invoked_subcommand is not None:
        return
    with _config_errors():
        loaded = [load_profile(name) for name in builtin_profiles()]
    rows = [[p.id, p.as_of or "—", p.title, p.source or "—"] for p in loaded]
    click.echo(tabulate(rows, headers=["profile", "as of", "model", "source"], tablefmt="simple",
                        maxcolwidths=[None, None, 24, 60]))


@profiles.command("diff")
@click.argument("old")
@click.argument("new")
def profiles_diff(old: str, new: str) -> None:
    """What changed from profile OLD to profile NEW (built-in names or files): every setting
    added (+), removed (-) or changed (~), as dotted keys."""
    with _config_errors():
        (old_data, _), (new_data, _) = load_profile_data(old), load_profile_data(new)
    dates = [d.get("as-of") or "no date" for d in (old_data, new_data)]
    click.echo(f"{old} (as of {dates[0]}) → {new} (as of {dates[1]})")
    changes = differences(old_data, new_data)
    for key, before, after in changes:
        if before is None:
            click.echo(f"+ {key}: {_compact(after)}")
        elif after is None:
            click.echo(f"- {key}: {_compact(before)}")
        else:
            click.echo(f"~ {key}: {_compact(before)} → {_compact(after)}")
    click.echo(f"{len(changes)} difference{'s' * (len(changes) != 1)}" if changes else "no differences")


def _compact(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= 100 else text[:99] + "…"


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port; 0 picks a free one.")
@click.option("--profile", default="kimi-k3", show_default=True, help="Contract the simulated model enforces.")
@click.option("--fault", "faults", multiple=True, metavar="NAME[=VALUE]", help="Inject a fault (repeatable).")
@click.option("--seed", default=0, show_default=True, help="Seed for answers and fault draws.")
@click.option("--api-key-env", metavar="NAME", help="Require the key held in this variable.")
@click.option("--list-faults", is_flag=True, help="List the faults and exit.")
@click.option("--tokenizer", default="kvv-words-1", show_default=True, metavar="NAME",
              help="Tokenizer and chat template usage is counted with: kvv-words-1, or kvv-chunks-1 "
                   "(another model's numbers, which no built-in reference predicts).")
def simulate(host: str, port: int, profile: str, faults: tuple[str, ...], seed: int,
             api_key_env: str | None, list_faults: bool, tokenizer: str) -> None:
    """Serve a simulated vendor: an OpenAI-compatible endpoint with injectable faults.

    \b
    Example:
      kvv simulate --port 0 --fault ignore-temperature &
      kvv run --base-url http://127.0.0.1:PORT/v1 --model kimi-k3
    """
    import os

    from .identity import header_value
    from .simulator import Simulator, fault_catalogue, parse_faults
    from .simulator.tokenizer import TOKENIZERS

    if list_faults:
        rows = [[f["name"], f["value"] if f["value"] != "none" else "", f["description"],
                 ", ".join(f["detected_by"] or ()) or "retried, counted"]
                for f in fault_catalogue()]
        click.echo(tabulate(rows, headers=["fault", "value", "imitates", "detected by"], tablefmt="simple",
                            maxcolwidths=[None, None, 56, 30]))
        return
    with _config_errors():
        loaded = load_profile(profile)
        parsed = parse_faults(list(faults))
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(f"kvv simulate: warning: binding {host}, reachable beyond this machine", err=True)
        api_key = os.environ.get(api_key_env) if api_key_env else None
        if tokenizer not in TOKENIZERS:
            raise ConfigError(f"unknown tokenizer {tokenizer!r}; expected one of {', '.join(TOKENIZERS)}",
                              source="--tokenizer")
        sim = Simulator(loaded, parsed, seed=seed, host=host, port=port, api_key=api_key, tokenizer=tokenizer)
    described = ", ".join(f"{k}={v}" if v is not None else k for k, v in parsed.items()) or "none"
    click.echo(f"kvv simulate: {loaded.id} at {sim.url} (faults: {described}; {header_value(sim.identity)}); "
               "Ctrl-C stops", nl=True)
    sys.stdout.flush()
    _handle_sigterm()
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


@cli.command()
@click.option("--profile", default="kimi-k3", show_default=True, help="Profile the simulated vendor serves.")
@click.option("--fault", default="ignore-temperature", show_default=True, metavar="NAME[=VALUE]",
              help="The fault for the second run.")
@click.option("--output-dir", default="kvv-out/demo", show_default=True, type=click.Path(file_okay=False))
@_progress_options
def demo(profile: str, fault: str, output_dir: str, progress_mode: str | None, quiet: bool) -> None:
    """Run the preflight suite against a healthy simulated vendor, then a faulty one.

    Nothing leaves this machine. Exit 0 when kvv passes the healthy vendor and fails the faulty one.
    """
    from . import runner
    from .simulator import Simulator, parse_faults

    outcomes = []
    with _config_errors():
        loaded = load_profile(profile)
        parsed = parse_faults([fault])
    for label, faults in (("healthy", {}), (fault.split("=")[0], parsed)):
        with Simulator(loaded, faults).start() as sim:
            settings = Settings(base_url=sim.url, model=loaded.id, profile=profile,
                                output_dir=str(Path(output_dir) / label))
            target = runner.resolve_target(settings)
            target.simulated, target.simulator = {"faults": faults, "seed": 0}, sim.identity
            try:
                with _progress(progress_mode, quiet) as progress:
                    results = runner.run(settings, target, runner.plan_for(settings, target), None, progress)
            except runner.Interrupted:
                click.echo("kvv demo: interrupted", err=True)
                sys.exit(130)
        click.echo(f"\n=== simulated vendor: {label} ===")
        _publish(results, Path(settings.output_dir))
        outcomes.append(results["verdict"])
    healthy, faulty = outcomes
    click.echo(f"\nkvv demo: healthy vendor -> {healthy.upper()}, vendor with {fault} -> {faulty.upper()}")
    sys.exit(0 if (healthy, faulty) == ("pass", "fail") else 1)


@cli.command(epilog="""\b
Example (the shards of a workflow matrix, downloaded as artifacts):
  kvv run --config kvv.yaml --shard 2/4 --output-dir kvv-out/2     (on each of 4 runners)
  kvv merge kvv-out/1 kvv-out/2 kvv-out/3 kvv-out/4 --output-dir kvv-out
\b
A run with an ingested report (`kvv ingest swe-bench`), both checks in one result:
  kvv merge kvv-out kvv-swe-bench --output-dir kvv-merged""")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--output-dir", default="kvv-out", show_default=True, type=click.Path(file_okay=False),
              help="Where the merged results.json and every report go.")
@click.option("--profile", metavar="FILE", help="The profile file the shards ran with, if not a built-in one.")
@click.option("--fail-on", type=click.Choice(FAIL_ON),
              help="What the merged verdict's exit code breaks on (shards often run with `never` so that "
                   "only the merge gates). [default: the shards' own]")
def merge(sources: tuple[str, ...], output_dir: str, profile: str | None, fail_on: str | None) -> None:
    """Combine the outputs of `kvv run --shard I/N` (and of `kvv ingest`) into one result.

    Each check's statistics are computed again over the union of the shards' items (never
    averaged), and every report is written as `kvv run` would. Exits with the merged verdict's
    code; a missing shard makes the result incomplete (error). Sends nothing.
    """
    from . import merge as merging

    with _config_errors():
        out = Path(output_dir)
        shards = merging.load(list(sources))
        if any(Path(source).resolve().parent == out.resolve() for source, _ in shards):
            raise ConfigError("would overwrite a shard's own results.json; choose another directory",
                              source="--output-dir")
        results = merging.merge(shards, profile, fail_on)
    _publish(results, out, journal=False)
    sys.exit(results["exit_code"])


INGEST_EPILOG = """\b
Reads (recognised from the content):
  the SWE-bench harness's run report  <model>.<run_id>.json (resolved_ids, error_ids, ...)
  per-instance reports                report.json {instance_id: {"resolved": ...}}, or the
                                      harness's logs/run_evaluation/<run_id>/<model>/ directory
  task results, JSON or JSON Lines    DeepSWE's bench/analyze.py records (task, reward, mode), or
                                      {instance_id|task_id|task, resolved|solved|success|reward}

\b
Solve rate = resolved / instances (upstream's): errored and not-run instances count as
unresolved, and are counted; when most instances errored the verdict is error.

\b
Exit codes: 0 pass (or inconclusive), 1 fail, 2 bad input (the file and field are named),
            3 error, or inconclusive with --fail-on inconclusive.

\b
Example (after `python -m swebench.harness.run_evaluation --predictions_path preds.jsonl --run_id r1`):
  kvv ingest swe-bench kimi-k3.r1.json --profile kimi-k3 --output-dir kvv-swe-bench
  kvv merge kvv-out kvv-swe-bench --output-dir kvv-merged
"""


@cli.group()
def ingest() -> None:
    """Turn an external harness's report into a kvv check (sends nothing).

    \b
    kvv does not run coding agents: the SWE-bench harness or DeepSWE does, and kvv judges its
    report with the benchmarks' test against the profile's reference. The results.json it
    writes merges with a run's (`kvv merge`) and renders like one (`kvv report`, `kvv comment`).

    \b
    Example:
      kvv ingest swe-bench kimi-k3.r1.json --profile kimi-k3 --output-dir kvv-swe-bench
    """


@ingest.command("swe-bench", epilog=INGEST_EPILOG)
@click.argument("report", type=click.Path())
@click.option("--profile", default="kimi-k3", show_default=True,
              help="The contract whose benchmarks.swe-bench reference judges the solve rate (built-in id or YAML).")
@click.option("--model", help="The model the agent ran. [default: the one the report names, else the profile's id]")
@click.option("--output-dir", default="kvv-swe-bench", show_default=True, type=click.Path(file_okay=False),
              help="Where results.json and the reports go (not a kvv run's own directory: merge the two instead).")
@click.option("--reference", type=FiniteFloat(min=0, max=1, min_open=True),
              help="The official solve rate. [default: the profile's benchmarks.swe-bench.reference]")
@click.option("--reference-n", type=click.IntRange(min=1),
              help="Tasks behind the reference (its own error is accounted for). [default: the profile's]")
@click.option("--tolerance", type=FiniteFloat(min=0, max=1, min_open=True),
              help="How far below the reference still passes. [default: the profile's, else 0.05]")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="fail", show_default=True,
              help="What breaks the build: fail, also inconclusive, or never.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the order instances are fed in.")
def ingest_swe_bench(report: str, profile: str, model: str | None, output_dir: str, reference: float | None,
                     reference_n: int | None, tolerance: float | None, fail_on: str, seed: int) -> None:
    """Judge a SWE-bench / DeepSWE report's solve rate against the profile's reference."""
    from . import ingest as ingesting
    from .merge import load

    with _config_errors():
        out = Path(output_dir)
        if (out / "results.json").is_file():
            [(existing, results)] = load([str(out)])
            if not ingesting.is_ingested(results):
                raise ConfigError(f"holds the results of a kvv run ({existing}), which ingesting would overwrite: "
                                  "choose another --output-dir, then `kvv merge` the two", source="--output-dir")
        loaded = load_profile(profile)
        results = ingesting.ingest(ingesting.read_report(report), loaded, model=model, reference=reference,
                                   reference_n=reference_n, tolerance=tolerance, seed=seed, fail_on=fail_on)
    _publish(results, out, journal=False)
    sys.exit(results["exit_code"])


def _publish(results: dict[str, Any], out: Path, journal: bool = True) -> None:
    """Write results.json (the single source) and its renderings, then print the terminal report."""
    from . import report

    out.mkdir(parents=True, exist_ok=True)
    # Where findings with no config line point (the workflow step), fixed now so every later
    # rendering of results.json (kvv report) gives the same bytes.
    results.setdefault("anchor", report.sarif.anchor())
    results.setdefault("sources", report.sarif.sources(results))
    paths = {"results": out / "results.json"}
    paths["results"].write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths.update(report.write_reports(results, out))
    if journal:
        paths["journal"] = out / "journal.jsonl"
    click.echo(report.terminal.render(results, color=sys.stdout.isatty(), paths=paths))


@contextlib.contextmanager
def _config_errors() -> Iterator[None]:
    """Bad input exits 2 with the file, the key and what was expected."""
    try:
        yield
    except ConfigError as exc:
        click.echo(f"kvv: error: {exc}", err=True)
        sys.exit(2)


@contextlib.contextmanager
def _target(flags: dict[str, Any], simulate: bool, faults: tuple[str, ...], seed: int):
    """Settings, target and API key; with --simulate, a simulated vendor running for the duration."""
    from . import runner
    from .client import is_loopback

    given = {k: v for k, v in flags.items() if v is not None}
    settings = load_settings(given)
    if not simulate:
        if faults:
            raise ConfigError("--sim-fault needs --simulate", source="--sim-fault")
        target = runner.resolve_target(settings)
        api_key = settings.api_key()
        if settings.api_key_env and not os.environ.get(settings.api_key_env):
            raise ConfigError(f"the variable {settings.api_key_env} is not set (or empty), so there is no API key",
                              source="--api-key-env")
        if api_key is None and not is_loopback(urlsplit(target.base_url).hostname or ""):
            click.echo(f"kvv: warning: no API key (KVV_API_KEY, KIMI_API_KEY and --api-key-env unset) for "
                       f"{target.base_url}; requests go without Authorization", err=True)
        yield settings, target, api_key
        return
    from .simulator import Simulator, parse_faults

    if "base_url" in given:
        raise ConfigError("--simulate replaces the endpoint; drop --base-url", source="--simulate")
    profile = load_profile(settings.profile)
    parsed = parse_faults(list(faults))
    from .simulator.datasets_server import DatasetsServer

    # The simulated vendor answers benchmark items from the stand-in's fixture datasets.
    with Simulator(profile, parsed, seed=seed).start() as sim, DatasetsServer().start() as rows:
        settings.base_url = sim.url
        settings.model = settings.model or profile.id
        settings.datasets_server = settings.datasets_server or rows.url
        target = runner.resolve_target(settings)
        target.simulated = {"faults": parsed, "seed": seed}
        target.simulator = sim.identity
        yield settings, target, None


def _handle_sigterm() -> None:
    """A cancelled CI job sends SIGTERM: treat it like Ctrl-C so the journal is closed cleanly."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)


@cli.group()
def datasets() -> None:
    """Benchmark datasets: fill the cache before a run, list it, serve the local stand-in.

    \b
    The cache is KVV_CACHE_DIR (default $XDG_CACHE_HOME/kvv or ~/.cache/kvv); rows come from
    the Hugging Face dataset viewer API (--datasets-server, else KVV_DATASETS_SERVER, else
    https://datasets-server.huggingface.co), with HF_TOKEN as a bearer token when set.
    """


@datasets.command("pull")
@click.option("--suite", metavar="NAME", help="The datasets a suite needs (bench, or all). [default: bench]")
@click.option("--dataset", "names", multiple=True, metavar="ID",
              help="A dataset by kvv's name (ocrbench) or Hugging Face id; NAME=ID or NAME=FILE.jsonl takes "
                   "another id, or checks a local file, as that benchmark's (repeatable).")
@click.option("--config", help="With --dataset: the config. [default: the dataset's, else default]")
@click.option("--split", help="With --dataset: the split. [default: the dataset's, else test]")
@click.option("--datasets-server", metavar="URL", help="Dataset viewer API base URL.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="[default: KVV_CACHE_DIR or the user cache]")
@click.option("--refresh", is_flag=True, help="Fetch again even when the cache holds a good copy.")
@click.option("--allow-insecure-http", is_flag=True, help="Allow plain http:// to a host that is not loopback.")
def datasets_pull(suite: str | None, names: tuple[str, ...], config: str | None, split: str | None,
                  datasets_server: str | None, cache_dir: str | None, refresh: bool, allow_insecure_http: bool) -> None:
    """Fetch datasets into the cache (for air-gapped runners and actions/cache).

    Exits 0 when every dataset is cached, 2 on bad usage or a bad local file, 3 when a dataset
    cannot be had (unreachable, refused, malformed).
    """
    import asyncio

    from . import datasets as ds

    with _config_errors():
        if suite and names:
            raise ConfigError("give --suite or --dataset, not both", source="kvv datasets pull")
        if (config or split) and not names:
            raise ConfigError("--config and --split go with --dataset", source="kvv datasets pull")
        if names:
            specs = []
            for name in names:
                key, is_pair, value = name.partition("=")
                if is_pair and key not in ds.builtin_specs():
                    raise ConfigError(f"{name!r}: {key!r} is not one of {', '.join(ds.builtin_specs())}",
                                      source="--dataset")
                spec = ds.find_spec(key).override(dataset=value) if is_pair else ds.find_spec(name)
                specs.append(spec.override(config=config, split=split))
        else:
            try:
                specs = ds.suite_specs(suite or "bench")
            except KeyError:
                raise ConfigError(f"unknown suite {suite!r}; expected one of "
                                  f"{', '.join([*ds.suites(), 'all'])}", source="--suite") from None
        server = ds.viewer.check_server(ds.server_url(datasets_server), allow_insecure_http)

    def progress(event: dict[str, Any]) -> None:
        if "note" in event:
            click.echo(f"  {event['dataset']}: {event['note']}", err=True)
        else:
            click.echo(f"  {event['dataset']}: {event['rows']:,}/{event['total']:,} rows, "
                       f"{event['images']:,} images", err=True)

    async def pull_all() -> list[str]:
        failed = []
        for spec in specs:
            try:
                data = await ds.aload(spec, server=server, cache_dir=cache_dir, refresh=refresh,
                                      allow_insecure_http=allow_insecure_http, on_progress=progress)
            except ds.DatasetError as exc:
                click.echo(f"kvv: error: {exc}", err=True)
                failed.append(spec.label)
                continue
            documented = f" (upstream documents {spec.rows:,})" if spec.rows and spec.rows != len(data) else ""
            size = sum(i.size for r in data for i in r.images.values())
            done = {"file": "a local file: checked, not cached", "cache": f"already cached -> {data.cache_dir}",
                    "server": f"from {data.origin} -> {data.cache_dir}"}[data.source]
            click.echo(f"{spec.key or spec.id}: {spec.label}: {len(data):,} row{'s' * (len(data) != 1)}{documented}, "
                       f"{data.images:,} image{'s' * (data.images != 1)} ({_bytes(size)}), {done}")
        return failed

    with _config_errors():
        failed = asyncio.run(pull_all())
    if failed:
        click.echo(f"kvv: {len(failed)} of {len(specs)} datasets not cached: {', '.join(failed)}", err=True)
        sys.exit(3)


@datasets.command("list")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="[default: KVV_CACHE_DIR or the user cache]")
@click.option("--verify", is_flag=True, help="Also check every file's sha256 against its manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def datasets_list(cache_dir: str | None, verify: bool, as_json: bool) -> None:
    """Show what the cache holds: dataset, config, split, rows, images, size, when fetched."""
    from .datasets import cache

    root = cache.cache_root(cache_dir)
    rows: list[dict[str, Any]] = []
    for entry, manifest, problem in cache.entries(root):
        if manifest is None:
            rows.append({"path": str(entry), "status": f"unreadable: {problem}"})
            continue
        status = (cache.verify(entry) or "ok") if verify else None
        rows.append({"dataset": manifest["dataset"], "config": manifest["config"], "split": manifest["split"],
                     "rows": manifest["num_rows"], "images": manifest.get("images", 0),
                     "size": manifest.get("size", 0), "fetched": manifest["fetched_at"],
                     "server": manifest["server"], "path": str(entry), **({"status": status} if verify else {})})
    if as_json:
        click.echo(json.dumps({"cache": str(root), "datasets": rows}, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"nothing cached in {root}; fill it with `kvv datasets pull --suite bench`")
        return
    headers = (["dataset", "config", "split", "rows", "images", "size", "fetched", "server"]
               + (["status"] if verify else []))
    table = [[r.get("dataset", r["path"]), r.get("config", ""), r.get("split", ""), r.get("rows", ""),
              r.get("images", ""), _bytes(r["size"]) if "size" in r else "", r.get("fetched", ""),
              r.get("server", r.get("status", ""))] + ([r.get("status", "")] if verify else []) for r in rows]
    click.echo(f"cache: {root}\n")
    click.echo(tabulate(table, headers=headers, tablefmt="simple"))


@datasets.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535),
              help="Port; 0 picks a free one.")
@click.option("--expire-assets", type=click.Choice(["once", "always"]),
              help="Refuse image URLs (403) until re-requested through /rows (once), or for ever.")
@click.option("--rate-limit", default=0, type=click.IntRange(0), help="Answer the first N requests with 429.")
@click.option("--retry-after", default="1", show_default=True, help="The Retry-After those 429s carry.")
@click.option("--server-errors", default=0, type=click.IntRange(0), help="Then answer N requests with 503.")
@click.option("--drop-field", "drop_fields", multiple=True, metavar="DATASET:ROW:FIELD",
              help="Serve that row without that field (repeatable).")
@click.option("--token-env", metavar="NAME", help="Require the bearer token held in this variable (gated).")
@click.option("--separate-assets", is_flag=True, help="Serve images from a second port (another origin).")
def datasets_serve(host: str, port: int, expire_assets: str | None, rate_limit: int, retry_after: str,
                   server_errors: int, drop_fields: tuple[str, ...], token_env: str | None,
                   separate_assets: bool) -> None:
    """Serve kvv's fixture datasets through a local stand-in of the dataset viewer API.

    \b
    Example:
      kvv datasets serve --port 8001 &
      KVV_DATASETS_SERVER=http://127.0.0.1:8001 kvv datasets pull --suite bench
    """
    from .simulator.datasets_server import DatasetsServer, fixtures

    with _config_errors():
        drops = []
        for value in drop_fields:
            dataset, _, rest = value.partition(":")
            row, _, name = rest.partition(":")
            if not (dataset and row.isdigit() and name):
                raise ConfigError(f"{value!r}: expected DATASET:ROW:FIELD", source="--drop-field")
            drops.append((dataset, int(row), name))
        token = os.environ.get(token_env) if token_env else None
        if token_env and not token:
            raise ConfigError(f"the variable {token_env} is not set (or empty)", source="--token-env")
        try:
            server = DatasetsServer(host=host, port=port, token=token, expire_assets=expire_assets,
                                    rate_limit=rate_limit, retry_after=retry_after, server_errors=server_errors,
                                    drop_fields=drops, separate_assets=separate_assets)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", source="--port") from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"kvv datasets serve: warning: binding {host}, reachable beyond this machine", err=True)
    served = ", ".join(f"{f.id} ({f.upstream}, {len(f.rows)} rows)" for f in fixtures())
    click.echo(f"kvv datasets serve: dataset viewer API at {server.url} serving {served}; Ctrl-C stops")
    sys.stdout.flush()
    _handle_sigterm()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"


def main(args: list[str] | None = None) -> None:
    interrupt.defer()
    cli.main(args=args, prog_name="kvv")
