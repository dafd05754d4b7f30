"""Badges: the shields.io endpoint JSON, the self-contained SVG and the markdown line."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from urllib.parse import unquote
from xml.etree import ElementTree as ET

import pytest

from kvv.report import badge, render_markdown

FIXTURES = Path(__file__).parent / "fixtures"
SVG = "{http://www.w3.org/2000/svg}"
# github-action.md §3.1: the endpoint rejects a document with any other key.
SHIELDS_KEYS = {"schemaVersion", "label", "message", "color", "labelColor", "isError", "namedLogo",
                "logoSvg", "logoColor", "logoWidth", "style", "cacheSeconds"}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"results-{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name, message, color", [
    ("pass", "3/3 pass", "brightgreen"),
    ("fail", "2/4 fail", "red"),
    ("error", "2/4 error", "orange"),
])
def test_label_message_and_colour_follow_the_verdict(name, message, color):
    assert badge.badge(fixture(name)) == {"label": "kvv · kimi-k3", "message": message, "color": color}


def test_inconclusive_is_grey_and_counts_the_undecided():
    results = fixture("error")
    for check in results["checks"]:
        check["verdict"] = "pass" if check["id"] != "temperature-effect" else "inconclusive"
    results["verdict"] = "inconclusive"
    assert badge.badge(results) == {"label": "kvv · kimi-k3", "message": "1/4 inconclusive", "color": "lightgrey"}


def test_a_stopped_run_says_so():
    results = fixture("fail")
    results.update(complete=False, stopped="endpoint unusable (connection): refused", verdict="error")
    results["checks"] = [c for c in results["checks"] if c["verdict"] == "pass"]
    results["checks"][0]["planned"], results["checks"][0]["n"] = 8, 2      # cut short
    results["not_run"] = [{"id": "x", "title": "x", "reason": "the run stopped first"},
                          {"id": "y", "title": "y", "reason": "not applicable"}]
    assert badge.badge(results)["message"] == "stopped · 1/3"
    assert badge.badge(results)["color"] == "orange"
    results["checks"].append(fixture("fail")["checks"][0])
    results["verdict"] = "fail"
    assert badge.badge(results) == {"label": "kvv · kimi-k3", "message": "stopped · 2/4 · 1 fail", "color": "red"}


def test_a_run_with_no_checks():
    results = fixture("pass")
    results.update(checks=[], verdict="inconclusive")
    assert badge.badge(results)["message"] == "no checks ran"


def test_a_profile_file_is_named_by_its_stem():
    results = fixture("pass")
    results["target"]["profile"] = "profiles/acme-7b.yaml"
    assert badge.badge(results)["label"] == "kvv · acme-7b"


@pytest.mark.parametrize("name", ["pass", "fail", "error"])
def test_endpoint_json_has_only_documented_keys(name):
    text = badge.render_json(fixture(name))
    document = json.loads(text)
    assert set(document) <= SHIELDS_KEYS
    assert document["schemaVersion"] == 1 and document["message"] and isinstance(document["label"], str)
    assert isinstance(document["cacheSeconds"], int) and document["cacheSeconds"] >= 300
    assert isinstance(document["isError"], bool) and document["isError"] == (name == "error")
    assert text.endswith("}\n") and text == badge.render_json(copy.deepcopy(fixture(name)))


def test_svg_is_self_contained_and_accessible():
    text = badge.render_svg(fixture("fail"))
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.get("aria-label") == "kvv · kimi-k3: 2/4 fail"
    assert root.find(f"{SVG}title").text == "kvv · kimi-k3: 2/4 fail"
    rects = root.findall(f".//{SVG}g/{SVG}rect")
    assert [r.get("fill") for r in rects[:2]] == ["#555", "#e05d44"]
    lowered = text.lower()
    for forbidden in ("<script", "href", "@import", "@font-face", "<image", "<foreignobject", "data:"):
        assert forbidden not in lowered
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    assert set(re.findall(r"url\(#([^)]*)\)", text)) <= ids and "url(" not in re.sub(r"url\(#[^)]*\)", "", text)
    assert text == badge.render_svg(fixture("fail")) and text.endswith("</svg>\n")


def test_svg_widths_fit_the_text():
    results = fixture("pass")
    short = ET.fromstring(badge.render_svg(results))
    results["target"]["profile"] = "a-much-longer-profile-name-WWWWWW"
    long = ET.fromstring(badge.render_svg(results))
    assert int(long.get("width")) > int(short.get("width")) + 100
    for root in (short, long):
        label_rect, message_rect = root.findall(f".//{SVG}g/{SVG}rect")[:2]
        texts = root.findall(f".//{SVG}text")
        label_len, message_len = float(texts[0].get("textLength")), float(texts[2].get("textLength"))
        assert float(label_rect.get("width")) >= label_len + 10
        assert float(message_rect.get("width")) >= message_len + 10
        assert int(root.get("width")) == int(label_rect.get("width")) + int(message_rect.get("width"))
    # Verdana at 11 px: "kvv · kimi-k3" is about 74 px wide (shields' own measure)
    assert 70 <= float(short.findall(f".//{SVG}text")[0].get("textLength")) <= 78


def test_svg_escapes_hostile_text():
    results = fixture("pass")
    results["target"]["profile"] = 'evil<&">\x1b[31m\x00<script>alert(1)</script>'
    text = badge.render_svg(results)
    root = ET.fromstring(text)                     # valid XML despite the control characters
    assert "<script" not in text and "\x00" not in text and "\x1b" not in text
    assert root.find(f"{SVG}title").text.startswith('kvv · evil<&">')
    json.loads(badge.render_json(results))


def test_markdown_line_is_a_static_shields_image():
    line = badge.markdown(fixture("fail"))
    assert line == ("![kvv · kimi-k3 | 2/4 fail]"
                    "(https://img.shields.io/badge/kvv%20%C2%B7%20kimi--k3-2%2F4%20fail-red)")
    assert "\n" not in line


def test_markdown_line_encodes_dashes_underscores_and_neutralises_alt_text():
    results = fixture("pass")
    results["target"]["profile"] = "my_model-v2 ](x) @octocat"
    line = badge.markdown(results)
    alt, url = re.fullmatch(r"!\[(.*)\]\((\S+)\)", line).groups()
    # single dashes separate label, message and colour; doubled ones are literal
    parts = re.split(r"(?<!-)-(?!-)", url.removeprefix("https://img.shields.io/badge/"))
    assert len(parts) == 3 and parts[2] == "brightgreen"
    assert unquote(parts[0]).replace("--", "-").replace("__", "_") == "kvv · my_model-v2 ](x) @octocat"
    assert "my__model--v2" in unquote(parts[0])
    assert re.fullmatch(r"[A-Za-z0-9%._~-]+", parts[0])
    assert "\\](x)" in alt and " ](x)" not in alt and "@\u200boctocat" in alt


def test_the_job_summary_starts_with_the_badge():
    results = fixture("fail")
    first, rest = render_markdown(results).split("\n", 1)
    assert first == badge.markdown(results)
    assert rest.startswith("\n## ❌ kvv: FAIL")
    assert render_markdown(results, max_bytes=900).startswith(first)


def test_kvv_run_writes_the_badges_and_kvv_report_re_renders_them(kvv, tmp_path):
    run = kvv("run", "--simulate", "--sim-fault", "ignore-temperature")
    assert run.exit_code == 1, run.output
    document = json.loads((run.out / "badge.json").read_text())
    assert document["message"] == f"1/{len(run.results['checks'])} fail" and document["color"] == "red"
    ET.fromstring((run.out / "badge.svg").read_text())
    assert (run.out / "summary.md").read_text().startswith("![kvv · kimi-k3 | 1/")
    for form, name in (("badge", "badge.json"), ("badge-svg", "badge.svg")):
        again = kvv("report", str(run.out), "--format", form, "--output", str(tmp_path / name))
        assert again.exit_code == 0, again.output
        assert (tmp_path / name).read_bytes() == (run.out / name).read_bytes()
