"""`kvv compare`: a table of several vendors' runs of one model and profile."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from kvv.errors import ConfigError
from kvv.report import compare

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"results-{name}.json").read_text(encoding="utf-8"))


def table(text: str) -> list[list[str]]:
    """The rows of the markdown table (header first), cells stripped."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows if not row.startswith("|--")]


@pytest.fixture
def runs(kvv, simulator):
    """Real runs: kvv's healthy simulated vendor, one with a fault, and a vendor at a URL."""
    healthy = kvv("run", "--simulate", out="healthy")
    faulty = kvv("run", "--simulate", "--sim-fault", "ignore-temperature", out="faulty")
    hosted = kvv("run", "--base-url", simulator("kimi-k3", "usage-off=+7").url, "--model", "kimi-k3", out="hosted")
    assert (healthy.exit_code, faulty.exit_code, hosted.exit_code) == (0, 1, 1), hosted.output
    return healthy, faulty, hosted


def test_compares_real_runs(kvv, runs, tmp_path):
    healthy, faulty, hosted = runs
    result = kvv("compare", str(healthy.out), str(faulty.out / "results.json"), str(hosted.out),
                 "--output", str(tmp_path / "comparison.md"))
    assert result.exit_code == 0, result.output
    text = (tmp_path / "comparison.md").read_text()
    assert text.startswith("## kvv vendor comparison: `kimi-k3`, profile `kimi-k3`\n")
    assert "3 runs · kvv 0.1.0 · started " in text and "suites preflight" in text
    rows = table(text)
    header = rows[0]
    checks = [c["id"] for c in healthy.results["checks"]]
    assert header == ["vendor", *(f"`{c}`" for c in checks), "verdict"]
    host = re.match(r"http://([^/]+)/", hosted.results["target"]["base_url"]).group(1)
    assert [r[0] for r in rows[1:]] == ["kvv simulator (faults: none)", "kvv simulator (faults: ignore-temperature)",
                                        host]
    cells = {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in rows[1:]}
    assert cells["kvv simulator (faults: none)"]["verdict"] == "✅ pass"
    assert cells["kvv simulator (faults: ignore-temperature)"]["verdict"] == "❌ fail"
    assert cells["kvv simulator (faults: ignore-temperature)"]["`param-temperature`"] == "❌ fail 0.4 [0.168, 0.687]"
    assert cells["kvv simulator (faults: ignore-temperature)"]["`param-top-p`"].startswith("✅ pass 1 [")
    assert cells[host]["`usage-arithmetic`"].startswith("❌ fail")
    assert all(cell.startswith("✅ pass") for cell in list(cells["kvv simulator (faults: none)"].values()))
    assert "**Why**" in text and "`param-temperature` fail: reject temperature=" in text
    assert "pass_rate (95% CI): `baseline`" in text
    # the same inputs give the same bytes, and stdout is the same text
    again = kvv("compare", str(healthy.out), str(faulty.out), str(hosted.out))
    assert again.output == text


def test_json_format(kvv, runs):
    healthy, faulty, _ = runs
    result = kvv("compare", str(healthy.out), str(faulty.out), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["profile"] == "kimi-k3" and data["models"] == ["kimi-k3"] and data["warnings"] == []
    assert [v["vendor"] for v in data["vendors"]] == ["kvv simulator (faults: none)",
                                                      "kvv simulator (faults: ignore-temperature)"]
    cell = data["vendors"][1]["checks"]["param-temperature"]
    assert cell["verdict"] == "fail" and cell["metric"]["name"] == "pass_rate" and cell["metric"]["value"] == 0.4


def test_checks_one_vendor_did_not_run_are_dashes_with_the_reason(kvv, runs):
    healthy = runs[0]
    tools = kvv("run", "--simulate", "--only", "tool-choice", "--suite", "tools", out="tools")
    assert tools.exit_code == 0, tools.output
    result = kvv("compare", str(healthy.out), str(tools.out))
    rows = table(result.output)
    assert rows[0][-2:] == ["`tool-choice`", "verdict"]
    assert rows[1][-2] == "— [^1]" and rows[2][1] == "— [^2]"
    assert "[^1]: not run: not part of this run (suite preflight)" in result.output
    assert "[^2]: not run: not part of this run (suite tools)" in result.output
    # both vendors are the healthy simulator: numbered, in the order given
    assert [r[0] for r in rows[1:]] == ["kvv simulator (faults: none) #1", "kvv simulator (faults: none) #2"]


def test_an_incomplete_run_is_compared_with_a_warning(kvv, runs):
    healthy = runs[0]
    short = kvv("run", "--simulate", "--max-requests", "5", out="short")
    assert short.exit_code == 3 and short.results["complete"] is False
    result = kvv("compare", str(healthy.out), str(short.out))
    assert result.exit_code == 0, result.output
    assert "> ⚠️ Incomplete run: kvv simulator (faults: none) #2 stopped early (the run's budget" in result.output
    assert table(result.output)[2][-1] == "🛑 error (incomplete)"


def test_different_profiles_are_refused(kvv, runs, tmp_path):
    healthy = runs[0]
    other = kvv("run", "--simulate", "--profile", "kimi-k2.5", out="k25")
    result = kvv("compare", str(healthy.out), str(other.out))
    assert result.exit_code == 2
    assert "different profiles" in result.stderr and "kimi-k2.5" in result.stderr
    assert str(other.out / "results.json") in result.stderr


def test_a_directory_without_results_is_refused_by_name(kvv, runs, tmp_path):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    result = kvv("compare", str(runs[0].out), str(empty))
    assert result.exit_code == 2 and str(empty) in result.stderr and "no results.json" in result.stderr
    (tmp_path / "bad.json").write_text("[1]")
    result = kvv("compare", str(runs[0].out), str(tmp_path / "bad.json"))
    assert result.exit_code == 2 and "bad.json" in result.stderr


def test_different_models_warn_and_urls_show_only_their_host():
    first, second = fixture("pass"), fixture("fail")
    first["target"]["base_url"] = "https://user:hunter2@api.one.example/v1?api_key=sk-secret#frag"
    second["target"].update(base_url="https://api.two.example:8443/openai/v1", model="kimi-k3-turbo")
    text = compare.render([first, second])
    assert "hunter2" not in text and "sk-secret" not in text and "user" not in text and "frag" not in text
    assert [r[0] for r in table(text)[1:]] == ["api.one.example", "api.two.example:8443"]
    assert text.startswith("## kvv vendor comparison: `kimi-k3`, `kimi-k3-turbo`, profile `kimi-k3`")
    assert "> ⚠️ The runs are of different models: api.one.example serves kimi-k3, " \
           "api.two.example:8443 serves kimi-k3-turbo." in text
    third = copy.deepcopy(first)
    third["target"]["base_url"] = "user:sk-secret@"       # no host to show: never echoed
    assert "sk-secret" not in compare.render([third])
    assert compare.vendor_names([third]) == ["?"]


def test_rendering_is_pure_and_cells_carry_bounds():
    documents = [fixture("pass"), fixture("fail"), fixture("error")]
    text = compare.render(documents)
    assert text == compare.render(copy.deepcopy(documents))
    rows = table(text)
    assert rows[0] == ["vendor", "`param-temperature`", "`param-top-p`", "`usage-accounting`",
                       "`tool-call-schema`", "`stream-done`", "`temperature-effect`", "verdict"]
    assert rows[2][1].startswith("❌ fail 0.75 [0.41") and rows[3][-1] == "🛑 error"
    assert rows[3][3] == "— [^1]" and "[^1]: not run: not part of this run (suite preflight)" in text
    assert json.loads(compare.render_json(documents))["checks"] == [c.strip("`") for c in rows[0][1:-1]]


def test_profiles_must_match_in_the_library_too():
    other = fixture("pass")
    other["target"]["profile"] = "generic"
    with pytest.raises(ConfigError, match="different profiles"):
        compare.render([fixture("pass"), other])
    with pytest.raises(ConfigError, match="nothing to compare"):
        compare.render([])
