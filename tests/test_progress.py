"""Progress on stderr (--progress rich|plain|none, --quiet): shown live on a terminal, a line per
finished check in CI, and never a byte of difference in results, journal, stdout or exit code."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from kvv.progress import PlainProgress, Progress, RichProgress, choose, default_mode

RUN = [sys.executable, "-m", "kvv", "run", "--simulate", "--sim-fault", "ignore-temperature",
       "--suite", "preflight", "--concurrency", "1"]
LINE = re.compile(r"^kvv: (?P<check>[a-z0-9-]+) (?P<verdict>PASS|FAIL|ERROR|INCONCLUSIVE|NOT APPLICABLE|[A-Z_ ]+) "
                  r"(?P<n>\d+)/(?P<planned>\d+) items(?: \([^)]*\))?, (?P<requests>\d+) requests?, "
                  r"(?P<tokens>[\d.]+[kM]?) tokens, (?P<seconds>\d+\.\d) s$")
ESC = "\x1b["
# What differs between two runs whatever they show: clocks, the simulator's free port, and the
# response ids and `created` stamps it makes up (quoted in evidence).
VOLATILE = {"ts", "started_at", "finished_at", "duration_s", "latency_s", "elapsed_s"}
MADE_UP = re.compile(r'chatcmpl-[0-9a-f]+|"created": \d+')


def env_without_ci(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith(("KVV_", "KIMI_"))}
    return {**env, "TERM": "xterm", **extra}


def run_on_pty(command: list[str], env: dict[str, str], columns: int = 100, lines: int = 30,
               timeout: float = 120) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal of that size (stdout a pipe): rc, stdout, the terminal's bytes."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:         # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    stdout = proc.stdout.read().decode()
    return proc.wait(timeout=10), stdout, screen.decode("utf-8", "replace")


def normalized(value, port: str):
    if isinstance(value, dict):
        return {k: normalized(v, port) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalized(v, port) for v in value]
    if isinstance(value, str):
        return MADE_UP.sub("X", value.replace(port, "PORT"))
    return value


def artifacts(out, stdout: str) -> tuple:
    results = json.loads((out / "results.json").read_text())
    port = re.search(r"127\.0\.0\.1:\d+", results["target"]["base_url"]).group(0)
    journal = [normalized(json.loads(line), port) for line in (out / "journal.jsonl").read_text().splitlines()]
    shown = re.sub(r"\d+\.\d+ ?s\b", "T s", stdout.replace(port, "PORT"))     # durations in the report
    return normalized(results, port), journal, shown.replace(str(out), "OUT")


def test_results_journal_stdout_and_exit_code_are_the_same_with_every_progress_mode(tmp_path):
    runs = {}
    for mode in ("none", "plain", "rich"):
        out = tmp_path / mode
        command = RUN + ["--output-dir", str(out), "--progress", mode]
        if mode == "rich":
            rc, stdout, screen = run_on_pty(command, env_without_ci())
            assert ESC in screen                     # it did draw
        else:
            done = subprocess.run(command, capture_output=True, text=True, env=env_without_ci(), timeout=120)
            rc, stdout = done.returncode, done.stdout
            assert (done.stderr == "") == (mode == "none"), done.stderr
        runs[mode] = (rc, *artifacts(out, stdout))
    assert runs["none"][0] == 1                      # the fault is caught, whatever is shown
    assert runs["plain"] == runs["none"]
    assert runs["rich"] == runs["none"]


def test_ci_gets_one_plain_line_per_finished_check(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(RUN + ["--output-dir", str(out)], capture_output=True, text=True,
                          env=env_without_ci(CI="true"), timeout=120)
    assert done.returncode == 1
    assert ESC not in done.stderr
    lines = [LINE.match(line) for line in done.stderr.splitlines() if line.startswith("kvv: ")]
    assert all(lines), done.stderr
    results = json.loads((out / "results.json").read_text())
    by_check = {m["check"]: m for m in lines}
    assert len(lines) == len(by_check) == len(results["checks"])
    for check in results["checks"]:
        line = by_check[check["id"]]
        assert line["verdict"] == check["verdict"].upper().replace("_", " ")
        assert (int(line["n"]), int(line["planned"])) == (check["n"], check["planned"])
        assert int(line["requests"]) == sum(i["requests"] for i in check["items"])
    assert by_check["param-temperature"]["verdict"] == "FAIL"


def test_a_terminal_gets_a_live_block_that_ends_in_the_plain_lines(tmp_path):
    out = tmp_path / "out"
    rc, stdout, screen = run_on_pty(RUN + ["--output-dir", str(out)], env_without_ci(), columns=72, lines=12)
    assert rc == 1
    assert "\x1b[?25l" in screen and screen.rstrip().endswith("\x1b[?25h")     # the cursor comes back
    assert re.search(r"kvv: \d+/\d+ checks finished, \d+ requests in flight", screen)
    assert re.search(r"\n\x1b\[2K  [a-z-]+ +\d+/\d+ +pass \d+ fail \d+ error \d+", screen)
    # Every line of the live block fits the terminal (a wrapped line would break the redraw) ...
    drawn = [part.split("\r")[0] for part in screen.split(ESC + "2K")[1:]]
    assert drawn and max(len(line) for line in drawn if not LINE.match(line)) < 72
    # ... the block never outgrows it, and what stays on screen is a line per finished check.
    ups = [int(n) for n in re.findall(r"\x1b\[(\d+)F", screen)]
    assert ups and max(ups) <= 10
    results = json.loads((out / "results.json").read_text())
    finished = {m["check"] for m in map(LINE.match, drawn) if m}
    assert finished == {c["id"] for c in results["checks"]}
    assert "kvv: param-temperature FAIL 10/10 items" in screen


def test_ci_set_on_a_terminal_still_means_plain_and_quiet_means_nothing(tmp_path):
    rc, _, screen = run_on_pty(RUN + ["--output-dir", str(tmp_path / "ci")], env_without_ci(CI="true"))
    assert rc == 1 and ESC not in screen and "kvv: param-temperature FAIL" in screen
    rc, _, screen = run_on_pty(RUN + ["--output-dir", str(tmp_path / "q"), "--quiet"], env_without_ci())
    assert rc == 1 and ESC not in screen and "kvv: param-temperature" not in screen


def test_demo_shows_progress_too(kvv, tmp_path):
    run = kvv("demo", "--output-dir", str(tmp_path / "demo"), "--progress", "plain")
    assert run.exit_code == 0, run.output
    assert run.stderr.count("kvv: param-temperature ") == 2          # the healthy run, then the faulty one
    assert "kvv: param-temperature PASS" in run.stderr and "kvv: param-temperature FAIL" in run.stderr
    quiet = kvv("demo", "--output-dir", str(tmp_path / "quiet"), "-q")
    assert quiet.exit_code == 0 and "kvv: param-temperature" not in quiet.stderr


def test_a_bad_progress_mode_is_a_usage_error(kvv):
    run = kvv("run", "--simulate", "--progress", "fancy")
    assert run.exit_code == 2 and "--progress" in run.output


@pytest.mark.parametrize("ci, tty, term, expected", [
    ("", True, "xterm", "rich"), ("true", True, "xterm", "plain"), ("1", True, "xterm", "plain"),
    ("false", True, "xterm", "rich"), ("", False, "xterm", "plain"), ("", True, "dumb", "plain"),
])
def test_the_default_is_rich_only_on_a_terminal_outside_ci(ci, tty, term, expected):
    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

        def fileno(self) -> int:
            return 2

    assert default_mode(Stream(), {"CI": ci, "TERM": term}) == expected


def test_stderr_captured_in_process_gets_none_unless_asked(kvv, tmp_path):
    assert default_mode(io.StringIO(), {}) == "none"            # no file descriptor: a program reads it
    run = kvv("run", "--simulate", "--only", "baseline")
    assert run.exit_code == 0 and "kvv: baseline" not in run.stderr
    asked = kvv("run", "--simulate", "--only", "baseline", "--progress", "plain", out="asked")
    assert asked.exit_code == 0 and LINE.match(asked.stderr.splitlines()[-1])


def test_sinks_report_what_they_were_told():
    stream = io.StringIO()
    plain = choose("plain", stream)
    assert isinstance(plain, PlainProgress) and type(choose("none", stream)) is Progress
    plain.check_started("tool-schema", 3)
    for verdict in ("pass", "fail"):
        plain.request_started("tool-schema")
        plain.request_finished("tool-schema")
        plain.item_finished("tool-schema", verdict, {"prompt_tokens": 600_000, "completion_tokens": 10})
    plain.item_finished("tool-schema", "pass", {}, resumed=True)
    assert stream.getvalue() == ""                                    # nothing until the check ends
    plain.check_finished("tool-schema", {"verdict": "fail", "n": 3, "planned": 3, "duration_s": 41.26,
                                         "tokens": {"prompt_tokens": 1_200_000, "completion_tokens": 20}})
    assert stream.getvalue() == ("kvv: tool-schema FAIL 3/3 items (2 pass, 1 fail, 1 reused), 2 requests, "
                                 "1.2M tokens, 41.3 s\n")


def test_a_broken_stderr_never_stops_a_run():
    stream = io.StringIO()
    stream.close()
    rich = RichProgress(stream)
    rich.check_started("baseline", 1)
    rich.check_finished("baseline", {"verdict": "pass", "n": 1, "planned": 1, "duration_s": 0.1, "tokens": {}})
    rich.close()
    plain = PlainProgress(stream)
    plain.check_started("baseline", 1)
    plain.check_finished("baseline", {"verdict": "pass", "n": 1, "planned": 1, "duration_s": 0.1, "tokens": {}})
