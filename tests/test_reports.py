"""Markdown and terminal reports rendered from hand-made results documents."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest

from kvv.report import markdown, render_markdown, render_terminal, write_reports

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = Path(__file__).parent.parent / "kvv" / "schemas" / "results.schema.json"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"results-{name}.json").read_text(encoding="utf-8"))


def fences(text: str) -> list[tuple[str, str, str]]:
    """(fence, language, body) for every fenced block."""
    return re.findall(r"^(`{3,})(\w*)\n(.*?)\n\1$", text, flags=re.S | re.M)


def outside_fences(text: str) -> str:
    return re.sub(r"^(`{3,})\w*\n.*?\n\1$", "", text, flags=re.S | re.M)


def banner(text: str) -> str:
    """The summary after its first line, the badge (tests/test_badge.py checks that line)."""
    first, _, rest = text.partition("\n\n")
    assert first.startswith("![kvv · ")
    return rest


@pytest.mark.parametrize("name", ["pass", "fail", "error"])
def test_fixtures_follow_the_results_schema(name):
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(fixture(name))


def test_top_level_schema_is_a_relative_symlink_to_the_package_copy():
    link = SCHEMA.parent.parent.parent / "schemas" / "results.schema.json"
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    assert link.resolve() == SCHEMA.resolve()


def test_schema_rejects_unknown_keys():
    results = fixture("pass")
    results["checks"][0]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(results, json.loads(SCHEMA.read_text()))


def test_passing_run_has_a_green_banner_a_table_and_no_findings():
    text = render_markdown(fixture("pass"))
    assert banner(text).startswith("## ✅ kvv: PASS — kimi-k3 at 127.0.0.1:8123\n")
    for fact in ("**profile** kimi-k3", "**think mode** kimi", "**suite** preflight",
                 "**duration** 3.2 s", "**requests** 20"):
        assert fact in text
    assert "| check " in text and "|---" in text
    assert "| `param-temperature` | ✅ pass " in text.replace("  ", " ").replace("  ", " ")
    assert "8/8" in text and "pass\\_rate" not in text and "pass_rate 1 \\[0.69, 1\\] (95% CI)" in text
    assert "Findings" not in text


def test_failing_run_shows_findings_with_evidence():
    text = render_markdown(fixture("fail"))
    assert banner(text).startswith("## ❌ kvv: FAIL — kimi-k3 at 127.0.0.1:8123\n")
    assert "### Findings" in text
    assert "`param-temperature` — temperature contract" in text
    assert "`tool-call-schema`" in text and "`param-top-p` —" not in text    # passing: no section
    assert "temperature=1.1 was accepted (HTTP 200); expected HTTP 400" in text
    assert "· HTTP 200" in text
    blocks = fences(text)
    curl = [body for _, lang, body in blocks if lang == "sh"]
    assert len(curl) == 1 and curl[0] == fixture("fail")["checks"][0]["evidence"][0]["curl"]
    assert {"json", "text"} <= {lang for _, lang, _ in blocks}
    # a data URL in the request is shortened
    assert "…(2522 more chars)" in text and "A" * 600 not in text


def test_vendor_text_is_neutralised():
    text = render_markdown(fixture("fail"))
    # Backticks in the text cannot close the fence around it: the fence is longer.
    for ticks, _, body in fences(text):
        assert ticks not in body
    outside = outside_fences(text)
    assert "<script>" not in outside and "<img" not in outside and "<b>" not in outside
    assert not re.search(r"(?<![\w@])@(here|octocat)", outside)        # no live @mentions
    assert "@\u200bhere" in outside
    assert "![t](" not in outside
    # Inside fences the text is kept verbatim (code blocks render neither HTML nor mentions).
    assert "@octocat <img src=x onerror=alert(1)>" in text


def test_error_run_shows_error_classes_and_erroring_checks():
    text = render_markdown(fixture("error"))
    assert banner(text).startswith("## 🛑 kvv: ERROR — ")
    assert "rate_limit 5" in text and "connection 5" in text
    assert "🛑 `stream-done`" in text and "· HTTP 429" in text
    assert "⚠️ inconclusive" in text
    # Inconclusive checks are findings too (their bounds say what more evidence would settle),
    # after the ones that could not run.
    assert text.index("🛑 `stream-done` —") < text.index("⚠️ `temperature-effect` —")


def test_inconclusive_banner():
    results = fixture("pass")
    results["verdict"] = "inconclusive"
    assert banner(render_markdown(results)).startswith("## ⚠️ kvv: INCONCLUSIVE — ")


def test_base_url_credentials_never_reach_the_banner():
    results = fixture("pass")
    results["target"]["base_url"] = "https://user:hunter2@api.example.com/v1"
    text = render_markdown(results)
    assert "hunter2" not in text and "at api.example.com\n" in text


def test_max_bytes_cuts_whole_finding_sections_with_a_note():
    results = fixture("fail")
    full = render_markdown(results)
    first_section_end = full.index("#### ❌ `tool-call-schema`")
    limit = first_section_end + 400
    cut = render_markdown(results, max_bytes=limit)
    assert len(cut.encode("utf-8")) <= limit
    assert "`param-temperature` — temperature contract" in cut     # most severe kept first
    assert "#### ❌ `tool-call-schema`" not in cut
    assert re.search(r"Cut to fit the size limit: the findings of `tool-call-schema`", cut)
    assert len(fences(cut)) == len(fences(full[:first_section_end]))   # no half fences


def test_max_bytes_drops_the_table_last_and_never_exceeds_the_limit():
    results = fixture("fail")
    results["checks"] = [dict(copy.deepcopy(results["checks"][0]), id=f"c-{i}") for i in range(40)]
    text = render_markdown(results, max_bytes=900)
    assert len(text.encode("utf-8")) <= 900
    assert banner(text).startswith("## ❌ kvv: FAIL") and "the table of checks" in text
    assert "and 30 more" in text
    assert len(render_markdown(results, max_bytes=50).encode("utf-8")) <= 50
    assert render_markdown(results, max_bytes=10**7) == render_markdown(results)


def test_a_curl_line_too_long_to_show_is_left_to_results_json():
    results = fixture("fail")
    results["checks"][0]["evidence"][0]["curl"] = "curl " + "x" * 10_000
    text = render_markdown(results)
    assert "the curl line (10005 characters) is in `results.json`" in text
    assert "x" * 100 not in text


def test_fence_and_inline_helpers():
    assert markdown.fence("a ```` b", "text").startswith("`````text\n")
    assert markdown.inline("a\nb | <i> [x](y) @bob mail@example.com") == \
        "a b \\| \\<i\\> \\[x\\](y) @\u200bbob mail@example.com"
    assert markdown.code("a`b|c") == "`a'b\\|c`"


def test_terminal_report():
    text = render_terminal(fixture("fail"), paths={"results": Path("kvv-out/results.json")})
    lines = text.splitlines()
    assert lines[0].startswith("kvv 0.1.0 · preflight · kimi-k3 at 127.0.0.1:8123")
    assert any(re.match(r"param-temperature\s+FAIL\s+6/8\s+pass_rate 0.75 \[0.41, 0.93\]", line) for line in lines)
    assert "✗ param-temperature: reject temperature=1.1 [thinking]: temperature=1.1 was accepted" in text
    assert "(+1 more)" in text
    assert "FAIL (exit 1) · 4 checks · 14 items · 20 requests · 3.2 s" in text
    assert "results: kvv-out/results.json" in text
    assert "\x1b" not in text


def test_terminal_report_colours_and_strips_escape_sequences():
    results = fixture("error")
    results["checks"][2]["items"][0]["message"] = "bad \x1b]0;pwned\x07 title"
    text = render_terminal(results, color=True)
    assert "\x1b[35mERROR\x1b[0m" in text
    assert "\x1b]0;" not in text and "\x07" not in text
    assert "! stream-done: long stream: bad" in text
    assert "? temperature-effect: inconclusive: agreement 0.8" in text


def test_write_reports(tmp_path):
    paths = write_reports(fixture("fail"), tmp_path / "out")
    assert paths == {name: tmp_path / "out" / filename for name, filename in
                     [("summary", "summary.md"), ("sarif", "kvv.sarif"), ("junit", "junit.xml"),
                      ("badge", "badge.json"), ("badge-svg", "badge.svg")]}
    assert paths["summary"].read_text(encoding="utf-8") == render_markdown(fixture("fail"))


def test_deeply_nested_response_excerpt_renders_as_text():
    results = {"verdict": "fail", "checks": [{
        "id": "c", "verdict": "fail", "items": [],
        "evidence": [{"item": "i", "response": "[" * 999 + "]" * 999}],
    }]}
    assert "[[[" in render_markdown(results)
