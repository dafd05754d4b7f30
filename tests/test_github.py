"""GitHub workflow-command helpers: escaping, annotation caps, output and summary files."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from kvv.report import github

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"results-{name}.json").read_text(encoding="utf-8"))


def parse_outputs(text: str) -> dict[str, str]:
    """Read a $GITHUB_OUTPUT file back: `name=value` lines and `name<<DELIM` blocks."""
    outputs, lines = {}, iter(text.split("\n"))
    for line in lines:
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            value = []
            for body in lines:
                if body == delimiter:
                    break
                value.append(body)
            else:
                raise AssertionError(f"unterminated output {name!r}")
            outputs[name] = "\n".join(value)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def test_escaping_follows_the_toolkit():
    assert github.escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert github.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    # A newline in a message cannot start a second command.
    assert github.command("error", "x\n::add-mask::y", title="t: 1,2") == \
        "::error title=t%3A 1%2C2::x%0A::add-mask::y"


def test_add_mask():
    assert github.add_mask("sk-secret") == "::add-mask::sk-secret"


def test_annotations_for_a_failing_run_anchor_to_the_config_file():
    lines = github.annotations(fixture("fail"), "kvv.yaml", None)
    assert len(lines) == 2 and all(line.startswith("::error ") for line in lines)
    assert "file=kvv.yaml,line=7::" in lines[0]
    assert "title=kvv param-temperature%3A FAIL" in lines[0]
    assert "6/8 passed" in lines[0] and "reject temperature=1.1 [thinking]" in lines[0]
    # config_lines overrides the line recorded in the results
    assert "line=42" in github.annotations(fixture("fail"), "kvv.yaml", {"param-temperature": 42})[0]


def test_annotations_without_a_config_file_carry_no_location():
    lines = github.annotations(fixture("fail"), None, None)
    assert lines and not any("file=" in line or "line=" in line for line in lines)


def test_errors_and_inconclusive_checks_are_warnings():
    lines = github.annotations(fixture("error"), None, None)
    assert [line.split(" ", 1)[0] for line in lines] == ["::warning"] * 3
    assert github.annotations(fixture("pass"), "kvv.yaml", None) == []


def test_annotations_are_capped_at_ten_per_level_with_one_notice():
    results = fixture("fail")
    template, warn = results["checks"][0], fixture("error")["checks"][2]
    results["checks"] = [dict(copy.deepcopy(template), id=f"check-{i}") for i in range(25)]
    results["checks"] += [dict(copy.deepcopy(warn), id=f"flaky-{i}") for i in range(12)]
    lines = github.annotations(results, "kvv.yaml", None)
    assert sum(line.startswith("::error ") for line in lines) == 10
    assert sum(line.startswith("::warning ") for line in lines) == 10
    assert lines[-1] == "::notice::17 more findings, see the job summary"
    assert len(lines) == 21


def test_outputs_round_trip_through_the_heredoc_format(tmp_path):
    out = tmp_path / "output"
    out.write_text("earlier=1\n")
    values = {"verdict": "fail", "multi": "line one\nline two\nEOF", "exit-code": 1, "empty": ""}
    github.write_outputs(out, values)
    text = out.read_text()
    assert parse_outputs(text) == {"earlier": "1", **{k: str(v) for k, v in values.items()}}
    delimiters = re.findall(r"<<(.+)", text)
    assert len(set(delimiters)) == len(delimiters) == 4     # random per value


def test_summary_is_appended_whole_when_it_fits(tmp_path):
    path = tmp_path / "summary.md"
    github.append_summary(path, "# one\n")
    github.append_summary(path, "# two\n")
    assert path.read_text() == "# one\n# two\n"


def test_summary_is_cut_below_the_limit_with_a_note(tmp_path):
    path = tmp_path / "summary.md"
    path.write_text("x" * 1000 + "\n")                      # an earlier append in the same step
    lines = ["| row | é |"] * 20_000 + ["```json"] + ['{"a": 1}'] * 100_000 + ["```"]
    github.append_summary(path, "\n".join(lines))
    data = path.read_bytes()
    assert len(data) <= github.SUMMARY_LIMIT
    assert len(data) > github.SUMMARY_LIMIT - 2048             # cut, not dropped
    text = data.decode("utf-8")                              # never split inside a character
    assert "the job summary was cut" in text
    assert text.count("```") % 2 == 0                        # the open fence was closed


@pytest.mark.parametrize("limit", [200, 5000])
def test_small_limits_are_never_exceeded(tmp_path, limit):
    path = tmp_path / "summary.md"
    github.append_summary(path, "word " * 10_000, limit=limit)
    assert len(path.read_bytes()) <= limit


def test_stop_commands_wrap_text_with_a_random_token():
    text = "model says ::error::gotcha\n::add-mask::x"
    wrapped = github.stop_commands(text)
    first, *_, last = wrapped.rstrip("\n").split("\n")
    token = first.removeprefix("::stop-commands::")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert last == f"::{token}::"
    assert text in wrapped
    assert github.stop_commands(text).split("\n")[0] != first   # fresh per call
