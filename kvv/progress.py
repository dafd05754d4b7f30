"""Progress while a run is under way, on stderr: what the runner reports, shown to a person.

The runner reports events to a sink the CLI hands it (a check started with so many items
planned, an item finished, a request went out or came back, a check finished); the runner knows
nothing of terminals, and no sink can change a result, the journal or stdout. Sinks:

- `Progress`: none (the base class; every event is a no-op);
- `PlainProgress`: one line per finished check, for CI logs and pipes;
- `RichProgress`: a block redrawn in place on a terminal (plain ANSI escapes, at most 10×/s),
  a line per running check, finished checks printed above it as plain lines.

`choose()` picks rich on a terminal and plain elsewhere (or when `CI` is set), as `--progress`
does not say otherwise.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

MODES = ("rich", "plain", "none")
REDRAW_S = 0.1          # at most 10 redraws a second: a terminal over ssh keeps up
# ESC[2K clears a line, ESC[nF goes n lines up to their start, ESC[J clears below the cursor.
CLEAR_LINE, UP, CLEAR_BELOW, HIDE_CURSOR, SHOW_CURSOR = "\x1b[2K", "\x1b[{}F", "\x1b[J", "\x1b[?25l", "\x1b[?25h"


def default_mode(stream: TextIO, env: os._Environ | dict[str, str] = os.environ) -> str:
    """rich on a terminal, plain in CI (`CI` set, as GitHub Actions, GitLab and most CIs do) or a
    pipe or file; none when stderr is no OS stream at all (captured in-process: click's CliRunner,
    a notebook), where a program, not a person, reads it."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):      # io.UnsupportedOperation is both
        return "none"
    in_ci = env.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "rich" if tty and not in_ci and env.get("TERM") != "dumb" else "plain"


def choose(mode: str | None, stream: TextIO | None = None) -> Progress:
    """The sink for `--progress MODE` (None: the default for `stream`, stderr unless given)."""
    stream = stream or sys.stderr
    mode = mode or default_mode(stream)
    if mode == "rich":
        return RichProgress(stream)
    if mode == "plain":
        return PlainProgress(stream)
    return Progress()


class Progress:
    """The sink the runner reports to; this one shows nothing (`--progress none`, `--quiet`)."""

    def check_started(self, check_id: str, planned: int) -> None: ...

    def item_finished(self, check_id: str, verdict: str | None, tokens: dict[str, int],
                      resumed: bool = False) -> None: ...

    def request_started(self, check_id: str) -> None: ...

    def request_finished(self, check_id: str) -> None: ...

    def check_finished(self, check_id: str, result: dict[str, Any]) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class Tally:
    """One check as far as the events told: what the lines are made of."""

    planned: int
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    reused: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: {"pass": 0, "fail": 0, "error": 0})
    in_flight: int = 0
    requests: int = 0
    tokens: int = 0
    result: dict[str, Any] | None = None


class _Tallying(Progress):
    """Keeps a Tally per check; subclasses decide what to show and when."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.checks: dict[str, Tally] = {}
        self.lock = threading.Lock()           # events come from the run, redraws from a thread

    def check_started(self, check_id: str, planned: int) -> None:
        with self.lock:
            self.checks[check_id] = Tally(planned)

    def item_finished(self, check_id: str, verdict: str | None, tokens: dict[str, int],
                      resumed: bool = False) -> None:
        with self.lock:
            tally = self.checks.get(check_id)
            if tally is None:
                return
            tally.done += 1
            tally.reused += resumed
            if verdict in tally.verdicts:
                tally.verdicts[verdict] += 1
            tally.tokens += sum(v for v in (tokens or {}).values() if isinstance(v, int))

    def request_started(self, check_id: str) -> None:
        with self.lock:
            if check_id in self.checks:
                self.checks[check_id].in_flight += 1
                self.checks[check_id].requests += 1

    def request_finished(self, check_id: str) -> None:
        with self.lock:
            if check_id in self.checks:
                self.checks[check_id].in_flight -= 1

    def check_finished(self, check_id: str, result: dict[str, Any]) -> None:
        with self.lock:
            if check_id in self.checks:
                self.checks[check_id].result = result
        self.finished(check_id)

    def finished(self, check_id: str) -> None: ...

    def write(self, text: str) -> None:
        """Progress is never worth a crash: a closed or broken stderr only silences it."""
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass


def finished_line(check_id: str, tally: Tally) -> str:
    """kvv: tool-schema PASS 408/408 items, 412 requests, 1.2M tokens, 41.3 s
    (and, when any item did not pass: kvv: tool-schema FAIL 408/408 items (401 pass, 7 fail), ...)"""
    result = tally.result or {}
    n, planned = result.get("n", tally.done), result.get("planned", tally.planned)
    tokens = sum(v for v in (result.get("tokens") or {}).values() if isinstance(v, int)) or tally.tokens
    notes = []
    if tally.verdicts["fail"] or tally.verdicts["error"]:     # "3/3 items" alone would read as all passed
        notes += [f"{count} {verdict}" for verdict, count in tally.verdicts.items() if count]
    if tally.reused:
        notes.append(f"{tally.reused} reused")
    if result.get("stopped_early"):
        notes.append("settled early")
    extra = f" ({', '.join(notes)})" if notes else ""
    duration = result.get("duration_s", time.monotonic() - tally.started)
    return (f"kvv: {check_id} {str(result.get('verdict', '?')).upper()} {n}/{planned} items{extra}, "
            f"{_count(tally.requests, 'request')}, {_tokens(tokens)} tokens, {duration:.1f} s")


class PlainProgress(_Tallying):
    """One line per finished check: what a CI log can hold."""

    def finished(self, check_id: str) -> None:
        with self.lock:
            line = finished_line(check_id, self.checks[check_id])
        self.write(line + "\n")


class RichProgress(_Tallying):
    """A live block on a terminal: a line per running check, redrawn in place by a thread (so
    elapsed time moves while a long request is out), finished checks as plain lines above it."""

    def __init__(self, stream: TextIO):
        super().__init__(stream)
        self.clock = time.monotonic()
        self._done_lines: list[str] = []        # finished checks' lines not yet printed
        self._drawn = 0                         # lines of the live block now on screen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._redraw, name="kvv-progress", daemon=True)
        self._thread.start()

    def finished(self, check_id: str) -> None:
        with self.lock:
            self._done_lines.append(finished_line(check_id, self.checks[check_id]))

    def _redraw(self) -> None:
        while not self._stop.wait(REDRAW_S):
            self.draw()

    def draw(self, final: bool = False) -> None:
        width, height = self._size()
        with self.lock:
            out = [UP.format(self._drawn) if self._drawn else "\r"]
            for line in self._done_lines:       # whole: above the block, a wrapped line does no harm
                out.append(CLEAR_LINE + line + "\n")
            self._done_lines.clear()
            block = [] if final else self._block(width, height)
            for line in block:
                out.append(CLEAR_LINE + line + "\n")
            out.append(CLEAR_BELOW)
            self._drawn = len(block)
        self.write(("" if final else HIDE_CURSOR) + "".join(out) + (SHOW_CURSOR if final else ""))

    def _block(self, width: int, height: int) -> list[str]:
        running = [(c, t) for c, t in self.checks.items() if t.result is None]
        in_flight = sum(t.in_flight for t in self.checks.values())
        done = len(self.checks) - len(running)
        elapsed = f"{time.monotonic() - self.clock:.1f} s"
        if not self.checks:                     # the probe, before any check starts
            return [f"kvv: probing the endpoint, {elapsed}"[:width - 1]]
        header = f"kvv: {done}/{len(self.checks)} checks finished, {in_flight} requests in flight, {elapsed}"
        rows = max(2, height - 2)               # the block must fit, or redrawing scrolls it apart
        lines = [header] + [self._line(c, t) for c, t in running[:rows - 1]]
        if len(running) > rows - 1:
            lines[-1] = f"  ... and {len(running) - rows + 2} more checks running"
        return [line[:width - 1] for line in lines]

    @staticmethod
    def _line(check_id: str, tally: Tally) -> str:
        v = tally.verdicts
        return (f"  {check_id:<24} {tally.done:>5}/{tally.planned:<5} pass {v['pass']} fail {v['fail']} "
                f"error {v['error']}  {tally.in_flight} in flight  {time.monotonic() - tally.started:.1f} s  "
                f"{_tokens(tally.tokens)} tokens")

    def _size(self) -> tuple[int, int]:
        try:
            size = os.get_terminal_size(self.stream.fileno())
        except (AttributeError, ValueError, OSError):
            size = os.terminal_size((0, 0))
        if not (size.columns and size.lines):      # a terminal that does not say: COLUMNS/LINES, else 80×24
            size = shutil.get_terminal_size()
        return max(size.columns, 20), max(size.lines, 4)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self.draw(final=True)               # the finished lines stay; the live block goes


def _tokens(n: int) -> str:
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"
