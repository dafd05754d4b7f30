"""Bad input through the CLI: exit 2 with the file, the key or line, and what was expected;
never a traceback, never a hang, and nothing already written is touched.

`kvv plan` sends nothing, so most cases use it; the "nothing lost" test uses `kvv run`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

ENDPOINT = ("--base-url", "http://127.0.0.1:9/v1", "--model", "m")
MiB = 1 << 20


def assert_refused(run, *fragments: str) -> None:
    """Exit 2 through kvv's own error path (a SystemExit, not an exception), every fragment in the message."""
    assert run.exit_code == 2, (run.output, run.stderr, run.exception)
    assert isinstance(run.exception, SystemExit), run.exception
    assert "Traceback" not in run.output + run.stderr
    for fragment in fragments:
        assert fragment in run.stderr, run.stderr


def write(path: Path, content: str | bytes) -> str:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def plan_config(kvv, path: str, *extra: str):
    return kvv("plan", "--config", path, *ENDPOINT, *extra)


def plan_cases(kvv, check: str, path: str):
    return kvv("plan", "--simulate", "--suite", "tools", "--only", check, "--cases", path)


# -- not text: a non-UTF-8 or binary config, profile or case file -------------------------------

NOT_TEXT = [
    (b"model: m\n\xff\xfe\n", "not UTF-8: byte 0xff at byte offset 9"),
    (b"model: caf\xe9\n", "not UTF-8: byte 0xe9 at byte offset 10"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary file (NUL byte at byte offset 7)"),
    ("model: m\n".encode("utf-16"), "binary file (NUL byte at byte offset 3)"),
]


@pytest.mark.parametrize("content,expected", NOT_TEXT)
def test_config_that_is_not_utf8_text(kvv, tmp_path, content, expected):
    path = write(tmp_path / "kvv.yaml", content)
    assert_refused(plan_config(kvv, path), path, expected, "expected UTF-8 text")


@pytest.mark.parametrize("content,expected", NOT_TEXT)
def test_profile_that_is_not_utf8_text(kvv, tmp_path, content, expected):
    path = write(tmp_path / "mine.yaml", content)
    assert_refused(kvv("plan", "--profile", path, *ENDPOINT), path, expected)
    # The same file named by a config's `profile:` key (relative to the config).
    config = write(tmp_path / "kvv.yaml", "profile: mine.yaml\n")
    assert_refused(plan_config(kvv, config), path, expected)


@pytest.mark.parametrize("check", ["tool-schema", "prompt-tokens"])
def test_case_file_that_is_not_utf8_text(kvv, tmp_path, check):
    path = write(tmp_path / "cases.jsonl", b'{"type": "string"}\n{"description": "\xc3("}\n')
    assert_refused(plan_cases(kvv, check, path), path, "not UTF-8: byte 0xc3 at byte offset 36")


def test_control_character_in_yaml_names_line_and_column(kvv, tmp_path):
    path = write(tmp_path / "kvv.yaml", "model: m\nsuite: to\x01ols\n")
    assert_refused(plan_config(kvv, path), path, "line 2, column 10", "unacceptable character #x0001")


def test_a_utf8_bom_is_not_an_error(kvv, tmp_path):
    # Windows editors start files with one; it is not part of the content.
    config = write(tmp_path / "kvv.yaml", "\ufeffmodel: from-file\n")
    run = kvv("plan", "--config", config, "--base-url", "http://127.0.0.1:9/v1")
    assert run.exit_code == 0, run.stderr
    assert "model from-file" in run.output
    cases = write(tmp_path / "cases.jsonl", '\ufeff{"type": "string"}\n')
    run = plan_cases(kvv, "tool-schema", cases)
    assert run.exit_code == 0, run.stderr
    assert "1 checks, 2 items" in run.output


@pytest.mark.parametrize("text,expected", [
    ("model: m\nsuite: 2026-02-30\n", "day is out of range for month"),     # PyYAML raises ValueError
    ("timeout: !!float fast\n", "could not convert string to float"),
    ("model: !!python/object:os.system ls\n", "could not determine a constructor"),
])
def test_yaml_the_loader_cannot_build(kvv, tmp_path, text, expected):
    path = write(tmp_path / "kvv.yaml", text)
    assert_refused(plan_config(kvv, path), path, "not valid YAML", expected)


# -- too deep, too big ----------------------------------------------------------------------------

DEEP = 50_000
TOO_DEEP_TO_PARSE = {
    "flow sequences": "[" * DEEP + "]" * DEEP,
    "flow mappings": "{a: " * DEEP + "}" * DEEP,
    "block sequences": "- " * DEEP + "x",
    # Block mappings indent one column a level: 1,400 levels fill 1 MiB, and already overflow PyYAML.
    "block mappings": "".join(" " * i + "a:\n" for i in range(1_400)),
}


@pytest.mark.parametrize("style", TOO_DEEP_TO_PARSE)
def test_config_nested_too_deep_for_the_parser(kvv, tmp_path, style):
    path = write(tmp_path / "kvv.yaml", TOO_DEEP_TO_PARSE[style])
    assert Path(path).stat().st_size <= MiB        # refused for its depth, not its size
    assert_refused(plan_config(kvv, path), path, "nested too deeply to read; expected at most 64 levels")


def test_profile_nested_too_deep_for_the_parser(kvv, tmp_path):
    path = write(tmp_path / "mine.yaml", TOO_DEEP_TO_PARSE["flow mappings"])
    assert_refused(kvv("plan", "--profile", path, *ENDPOINT), path, "nested too deeply to read")


def test_config_parsed_but_deeper_than_any_setting(kvv, tmp_path):
    # 100 levels parse, but would overflow the readers behind the loader.
    path = write(tmp_path / "kvv.yaml", "checks:\n  tool-schema: {cases: " + "[" * 100 + "]" * 100 + "}\n")
    assert_refused(plan_config(kvv, path), path, "nested more than 64 levels deep (from checks.tool-schema.cases")


def test_case_line_deeper_than_any_schema(kvv, tmp_path):
    deep = '{"properties": {"a": ' * 40 + "{}" + "}}" * 40
    path = write(tmp_path / "cases.jsonl", '{"type": "string"}\n' + deep + "\n")
    assert_refused(plan_cases(kvv, "tool-schema", path), path, "line 2: nested more than 64 levels deep")
    path = write(tmp_path / "cases.jsonl", '{"type": "string"}\n' + "[" * DEEP + "]" * DEEP + "\n")
    assert_refused(plan_cases(kvv, "tool-schema", path), path, "line 2: not JSON")


def test_aliases_that_expand_without_end(kvv, tmp_path):
    # Nine levels of ten aliases each: a billion values once expanded.
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10))
    path = write(tmp_path / "kvv.yaml", bomb)
    started = time.monotonic()
    assert_refused(plan_config(kvv, path), path, "more than 1,000,000 values once YAML aliases are expanded")
    assert time.monotonic() - started < 20
    path = write(tmp_path / "self.yaml", "checks:\n  tool-schema: {cases: &me [*me]}\n")    # contains itself
    assert_refused(plan_config(kvv, path), path, "nested more than 64 levels deep")


def test_a_huge_config_is_refused_before_parsing(kvv, tmp_path):
    path = tmp_path / "kvv.yaml"
    with open(path, "wb") as file:
        file.truncate(50 * MiB)          # sparse: 50 MB without writing them
    started = time.monotonic()
    assert_refused(plan_config(kvv, str(path)), str(path), "the file is 52,428,800 bytes; at most 1 MiB")
    assert time.monotonic() - started < 5
    write(path, "# padding\n" * (MiB // 10 + 1))
    assert_refused(plan_config(kvv, str(path)), "bytes; at most 1 MiB")


def test_a_huge_profile_is_refused(kvv, tmp_path):
    path = write(tmp_path / "mine.yaml", "# padding\n" * (MiB // 10 + 1))
    assert_refused(kvv("plan", "--profile", path, *ENDPOINT), path, "at most 1 MiB")


# -- not a regular file: a FIFO, a directory, a device --------------------------------------------

@contextlib.contextmanager
def fifo(path: Path) -> Iterator[threading.Event]:
    """A FIFO at `path`. Opening it to read blocks until a writer comes: if kvv opens it, a writer
    thread answers, so the test fails on the returned event instead of hanging."""
    os.mkfifo(path)
    opened, done = threading.Event(), threading.Event()

    def writer() -> None:
        while not done.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)     # ENXIO until a reader opens it
            except OSError:
                done.wait(0.05)
                continue
            opened.set()
            os.write(fd, b"model: m\n")
            os.close(fd)
            return

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        done.set()
        thread.join()


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


@needs_fifo
def test_fifo_as_config_is_refused_unopened(kvv, tmp_path):
    path = tmp_path / "kvv.yaml"
    with fifo(path) as opened:
        run = plan_config(kvv, str(path))
    assert not opened.is_set(), "kvv opened the FIFO"
    assert_refused(run, str(path), "a FIFO, not a regular file")


@needs_fifo
def test_fifo_as_profile_is_refused_unopened(kvv, tmp_path):
    path = tmp_path / "mine.yaml"
    with fifo(path) as opened:
        run = kvv("plan", "--profile", str(path), *ENDPOINT)
    assert not opened.is_set(), "kvv opened the FIFO"
    assert_refused(run, str(path), "a FIFO, not a regular file")


@needs_fifo
def test_fifo_as_case_file_is_refused_unopened(kvv, tmp_path):
    path = tmp_path / "cases.jsonl"
    with fifo(path) as opened:
        flag = plan_cases(kvv, "tool-schema", str(path))
        config = write(tmp_path / "kvv.yaml", "checks:\n  prompt-tokens: {cases: cases.jsonl}\n")
        option = kvv("plan", "--simulate", "--suite", "tools", "--only", "prompt-tokens", "--config", config)
    assert not opened.is_set(), "kvv opened the FIFO"
    assert_refused(flag, "--cases", "not a regular file")
    assert_refused(option, "checks.prompt-tokens.cases")


def test_directory_as_profile_or_case_file(kvv, tmp_path):
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    assert_refused(kvv("plan", "--profile", str(folder), *ENDPOINT), str(folder), "a directory, not a regular file")
    assert_refused(plan_cases(kvv, "tool-schema", str(folder)), "--cases", "is a directory")   # click's check
    assert_refused(plan_config(kvv, str(folder)), "--config", "is a directory")


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_device_as_config_or_profile(kvv):
    # Refused for what it is, not its content: /dev/zero would never end. (/dev/null here, so a
    # regression fails this test instead of filling memory.)
    assert_refused(plan_config(kvv, "/dev/null"), "/dev/null", "a device, not a regular file")
    assert_refused(kvv("plan", "--profile", "/dev/null", *ENDPOINT), "/dev/null", "a device")


# -- NaN and infinity where a number goes ---------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "+Infinity", "1e999"])
def test_timeout_flag_must_be_finite(kvv, value):
    run = kvv("plan", *ENDPOINT, f"--timeout={value}")
    assert_refused(run)
    assert f"Invalid value for '--timeout': '{value}' is not a finite number" in run.output + run.stderr


def test_timeout_flag_still_takes_a_number(kvv):
    run = kvv("plan", *ENDPOINT, "--timeout", "2.5")
    assert run.exit_code == 0, run.output + run.stderr


@pytest.mark.parametrize("text,key", [
    ("timeout: .nan\n", "timeout"),
    ("timeout: .inf\n", "timeout"),
    ("timeout: -.Inf\n", "timeout"),
    ("checks:\n  toolcall-replay: {temperature: .NaN}\n", "checks.toolcall-replay.temperature"),
])
def test_config_number_must_be_finite(kvv, tmp_path, text, key):
    path = write(tmp_path / "kvv.yaml", text)
    assert_refused(plan_config(kvv, path), f"{path}: {key}: expected a finite number")


def test_profile_number_must_be_finite(kvv, tmp_path):
    path = write(tmp_path / "mine.yaml", "id: mine\nthinking: {modes: [thinking], default: thinking}\n"
                                         "parameters:\n  temperature:\n"
                                         "    thinking: {equals: .nan, accept: [1.0], reject: [2.0]}\n")
    assert_refused(kvv("plan", "--profile", path, *ENDPOINT),
                   f"{path}: parameters.temperature.thinking.equals: expected a finite number, got nan")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("check,line", [
    ("tool-schema", '{"type": "number", "maximum": %s}'),
    ("prompt-tokens", '{"id": "x", "request": {"messages": [{"role": "user", "content": "hi"}]}, '
                      '"expected_prompt_tokens": %s}'),
])
def test_case_line_number_must_be_finite(kvv, tmp_path, check, line, number):
    first = '{"type": "string"}' if check == "tool-schema" else line.replace("%s", "14").replace('"x"', '"y"')
    path = write(tmp_path / "cases.jsonl", first + "\n\n" + line.replace("%s", number) + "\n")
    assert_refused(plan_cases(kvv, check, path), f"{path}: line 3: {number} is not a JSON number")


# -- an empty case file, named, for every check that reads one -----------------------------------

CASE_FILES = [        # (check, config option)
    ("tool-schema", "cases"), ("prompt-tokens", "cases"), ("toolcall-replay", "requests"),
    ("toolcall-replay", "reference"), ("tool-choice", "cases"), ("response-format", "cases"),
    ("dynamic-tools", "cases"), ("thinking-effort", "cases"),
]


@pytest.mark.parametrize("content,detail", [("", ""), ("\n  \n\t\n", " (only blank lines)")])
@pytest.mark.parametrize("check,option", CASE_FILES)
def test_empty_case_file_is_named(kvv, tmp_path, check, option, content, detail):
    empty = write(tmp_path / "empty.cases", content)
    options = {option: str(empty)}
    if check == "toolcall-replay" and option == "requests":     # a requests file needs its reference
        options["reference"] = write(tmp_path / "ref.jsonl", '{"data_index": 1, "finish_reason": "stop"}\n')
    config = write(tmp_path / "kvv.yaml", "checks:\n  " + check + ": " + json.dumps(options) + "\n")
    run = kvv("plan", "--simulate", "--suite", "tools", "--only", check, "--config", config)
    assert_refused(run, f"{empty}: no cases: the file is empty{detail}")


def test_yaml_case_file_of_only_comments_is_empty(kvv, tmp_path):
    empty = write(tmp_path / "cases.yaml", "# cases to come\n")
    config = write(tmp_path / "kvv.yaml", "checks:\n  tool-choice: {cases: cases.yaml}\n")
    run = kvv("plan", "--simulate", "--suite", "tools", "--only", "tool-choice", "--config", config)
    assert_refused(run, f"{empty}: no cases: the file is empty (only comments)")


def test_empty_case_file_by_flag(kvv, tmp_path):
    empty = write(tmp_path / "cases.jsonl", "")
    assert_refused(plan_cases(kvv, "prompt-tokens", empty), f"{empty}: no cases: the file is empty")


# -- nothing lost ---------------------------------------------------------------------------------

def test_bad_input_leaves_an_earlier_run_untouched(kvv, simulator, tmp_path):
    sim = simulator("kimi-k3")
    first = kvv("run", "--base-url", sim.url, "--model", "kimi-k3", "--only", "baseline")
    assert first.exit_code == 0, first.output
    before = {p.name: p.read_bytes() for p in first.out.iterdir()}
    assert {"results.json", "journal.jsonl"} <= set(before)
    bad = [
        ("--config", write(tmp_path / "bin.yaml", b"\x00\x01")),
        ("--config", write(tmp_path / "deep.yaml", "[" * DEEP + "]" * DEEP)),
        ("--config", write(tmp_path / "nan.yaml", "timeout: .nan\n")),
        ("--timeout", "nan"),
        ("--cases", write(tmp_path / "empty.jsonl", "")),
    ]
    for flag, value in bad:
        extra = ("--suite", "tools", "--only", "tool-schema") if flag == "--cases" else ("--only", "baseline")
        run = kvv("run", "--base-url", sim.url, "--model", "kimi-k3", *extra, flag, value)
        assert_refused(run)
        assert {p.name: p.read_bytes() for p in run.out.iterdir()} == before, (flag, value)
