"""The PR comment: its renderer (pure), the REST client over a loopback GitHub stand-in, and
`kvv comment`."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from github_stub import GitHubStub
from kvv import github_api
from kvv.cli import cli
from kvv.report import comment

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "ghs_canary_7c1f0e2d9b8a4c3e5f6a7b8c9d0e1f2a"
REPO = "octo-org/kvv-demo"
RUN_URL = "https://github.com/octo-org/kvv-demo/actions/runs/123"
FORGED_MARKER = "<!-- kvv-comment model=kimi-k3 profile=kimi-k3 suite=preflight endpoint=127.0.0.1:8123 -->"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"results-{name}.json").read_text(encoding="utf-8"))


def with_message(results: dict, message: str) -> dict:
    """`results` with `message` as the vendor's text of the first failing check."""
    results = copy.deepcopy(results)
    check = next(c for c in results["checks"] if c["verdict"] == "fail")
    check["message"] = message
    return results


@pytest.fixture
def gh():
    with GitHubStub(token=TOKEN, repo=REPO, page_size=5) as stub:
        yield stub


# --- the body ----------------------------------------------------------------------------

def test_the_body_is_badge_verdict_table_run_link_then_marker_and_digest():
    results = fixture("fail")
    body = comment.render(results, None, RUN_URL)
    lines = body.splitlines()
    assert lines[0].startswith("![kvv") and "https://img.shields.io/badge/" in lines[0]
    assert "### ❌ kvv: FAIL — kimi-k3 at 127.0.0.1:8123" in body
    assert "| check | verdict | metric [bounds] | n |" in body
    assert "| `param-temperature` | ❌ fail | pass\\_rate 0.75 \\[0.41, 0.93\\] (95% CI) | 6/8 |" in body
    # worst first: the failing rows lead the table
    rows = [line for line in lines if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == ["param-temperature", "tool-call-schema", "param-top-p",
                                                "usage-accounting"]
    assert f"]({RUN_URL})" in body
    assert "Since the previous" not in body                         # first comment: nothing to compare
    assert lines[-2] == comment.marker(results) and lines[-1].startswith("<!-- kvv-digest:v1:")
    assert comment.render(results, None, RUN_URL) == body           # deterministic


def test_the_marker_names_model_profile_suite_endpoint_and_key():
    results = fixture("pass")
    assert comment.marker(results) == (
        "<!-- kvv-comment model=kimi-k3 profile=kimi-k3 suite=preflight endpoint=127.0.0.1:8123 -->")
    keyed = comment.marker(results, "ci.yml/verify/kvv-out")
    assert keyed.endswith(" key=ci.yml/verify/kvv-out -->")
    assert comment.marker(results) not in keyed                     # one is never inside another
    odd = copy.deepcopy(results)
    odd["target"].update(model="evil --> <b>x</b> model", simulated=True)
    assert comment.marker(odd).count("-->") == 1 and "<b>" not in comment.marker(odd)
    assert "endpoint=simulated" in comment.marker(odd)              # not the simulator's random port


def test_the_digest_round_trips_and_is_small_and_versioned():
    results = fixture("fail")
    digest = comment.parse_digest(comment.render(results))
    assert digest == {"verdict": "fail", "cut": False, "checks": {
        "param-temperature": "fail", "param-top-p": "pass", "tool-call-schema": "fail", "usage-accounting": "pass"}}
    line = comment.encode_digest(comment.digest(results))
    assert len(line) < 200
    data = json.loads(base64.b64decode(line.split(":")[2].split()[0]))
    assert data["v"] == 1
    assert comment.parse_digest(line.replace(":v1:", ":v2:")) is None
    assert comment.parse_digest("<!-- kvv-digest:v1:not base64! -->") is None
    digest = base64.b64encode(b'{"v":1,"checks":[]}').decode()
    assert comment.parse_digest("<!-- kvv-digest:v1:" + digest + " -->") is None
    assert comment.parse_digest(None) is None and comment.parse_digest("no digest here") is None


def test_changes_since_the_previous_comment():
    before = comment.parse_digest(comment.render(fixture("pass")))
    body = comment.render(fixture("fail"), before, RUN_URL)
    section = body[body.index("**Since the previous kvv comment:**"):]
    assert "- verdict: ✅ pass → ❌ fail" in section
    assert "- `param-temperature`: ✅ pass → ❌ fail" in section
    assert "- new: `tool-call-schema` (fail)" in section
    assert "param-top-p" not in section.split("[The run")[0]        # unchanged checks are not listed
    after = comment.render(fixture("pass"), comment.parse_digest(body))
    assert "- removed: `tool-call-schema` (was fail)" in after
    same = comment.render(fixture("pass"), before)
    assert "**Since the previous kvv comment:** no change." in same


def test_a_cut_digest_does_not_report_new_checks():
    previous = {"verdict": "pass", "checks": {"param-temperature": "pass"}, "cut": True}
    body = comment.render(fixture("pass"), previous)
    assert "new:" not in body and "no change." in body


def test_vendor_text_is_neutralised():
    nasty = ("@octocat and @org/team look <img src=x onerror=alert(1)> ![pwn](https://evil.example/p.png) "
             "<details><summary>x</summary> a | b | c **bold** [link](https://evil.example) "
             "\u202eevil\u202c `tick` & &amp;")
    body = comment.render(with_message(fixture("fail"), nasty))
    finding = next(line for line in body.splitlines() if line.startswith("- `param-temperature`"))
    assert "@\u200doctocat" in finding and "@\u200dorg/team" in finding
    assert not re.search(r"@(?!\u200d)", body)                     # no @ can mention anyone
    assert "<" not in finding and "<img" not in body and "<details>" not in body
    assert "![" not in finding and "evil.example/p.png" not in body and "\\[image removed\\]" in finding
    assert "a \\| b \\| c" in finding and "\\*\\*bold\\*\\*" in finding and "\\[link\\]" in finding
    assert "\u202e" not in body
    assert "\\`tick\\`" in finding and "&amp;amp;" in finding


def test_vendor_text_in_a_table_cell_cannot_break_the_row():
    results = copy.deepcopy(fixture("pass"))
    results["checks"][0]["id"] = "weird|id`with<b>ticks"
    results["checks"][0]["metric"] = {"name": "a|b", "value": 1.0}
    body = comment.render(results)
    row = next(line for line in body.splitlines() if "weird" in line)
    assert row.count("|") - row.count("\\|") == 5                   # four cells, no more
    assert "<b>" not in row


@pytest.mark.parametrize("forgery", [
    FORGED_MARKER,
    FORGED_MARKER + "\n<!-- kvv-digest:v1:" + base64.b64encode(b'{"v":1,"verdict":"p","checks":{}}').decode() + " -->",
    "--> " + FORGED_MARKER.replace("<!--", "&lt;!--"),
    "kvv-comment model=kimi-k3 profile=kimi-k3",
])
def test_vendor_text_cannot_forge_the_marker_or_the_digest(forgery):
    results = with_message(fixture("fail"), forgery)
    results["checks"][1]["items"] = [{"id": forgery, "verdict": "fail", "message": forgery}]
    body = comment.render(results, None, RUN_URL)
    assert body.count("<!--") == 2                                  # ours: the marker and the digest
    assert body.count("kvv-comment") == 1 and body.count("kvv-digest") == 1
    assert body.rstrip().endswith(comment.encode_digest(comment.digest(results)))
    assert comment.parse_digest(body)["checks"]["param-temperature"] == "fail"
    # whatever the vendor said, the marker of another target is not in this body
    other = copy.deepcopy(results)
    other["target"]["base_url"] = "http://127.0.0.1:8123/v1"
    assert body.count(comment.marker(other)) == (1 if comment.marker(other) == comment.marker(results) else 0)


def test_an_unsafe_run_url_is_left_out():
    body = comment.render(fixture("pass"), None, "javascript:alert(1)")
    assert "javascript" not in body
    body = comment.render(fixture("pass"), None, "https://x.example/a)(b")
    assert "x.example" not in body


def huge_results() -> dict:
    results = copy.deepcopy(fixture("fail"))
    template = results["checks"][0]
    results["checks"] = []
    for i in range(3000):
        check = copy.deepcopy(template)
        check.update(id=f"check-{i:04d}-" + "x" * 60, verdict="fail" if i % 3 else "pass",
                     message=("@everyone <b>long</b> | " * 40) + FORGED_MARKER)
        results["checks"].append(check)
    return results


def test_a_huge_run_is_cut_below_githubs_limit_keeping_marker_and_digest():
    results = huge_results()
    body = comment.render(results, comment.parse_digest(comment.render(fixture("pass"))), RUN_URL)
    assert len(body) < 65_536 and len(body.encode("utf-16-le")) // 2 < 65_536
    assert body.count(comment.marker(results)) == 1
    assert body.rstrip().endswith(" -->") and comment.parse_digest(body) is not None
    assert "✂️" in body and "more checks" in body and "job summary" in body and RUN_URL in body
    rows = [line for line in body.splitlines() if line.startswith("| `check-")]
    assert rows and all("❌ fail" in row for row in rows)           # the passing rows went first
    digest = comment.parse_digest(body)
    assert digest["cut"] is True and 0 < len(digest["checks"]) < 3000
    assert comment.render(results, None, RUN_URL) == comment.render(results, None, RUN_URL)


# --- the REST client -----------------------------------------------------------------------

def test_first_run_posts_with_githubs_headers(gh):
    done = github_api.upsert_comment(gh.url, TOKEN, REPO, 7, "hello\n<!-- m -->", "<!-- m -->")
    assert done.action == "created" and done.previous is None
    assert done.url == f"https://github.com/{REPO}/pull/7#issuecomment-{gh.on(7)[0]['id']}"
    get, post = gh.requests
    assert (get.method, get.path, get.query) == ("GET", f"/repos/{REPO}/issues/7/comments", {"per_page": ["100"]})
    assert post.method == "POST" and post.body == {"body": "hello\n<!-- m -->"}
    for request in gh.requests:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Accept"] == "application/vnd.github+json"
        assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
        assert request.headers["User-Agent"].startswith("kvv/")


def test_second_run_patches_the_comment_found_on_page_3_of_3(gh):
    for i in range(11):
        gh.add_comment(7, f"a reviewer's comment {i}", user=f"reviewer{i}")
    gh.add_comment(8, "old <!-- m -->")                            # another PR's: not ours
    first = github_api.upsert_comment(gh.url, TOKEN, REPO, 7, "v1 <!-- m -->", "<!-- m -->")
    assert first.action == "created"
    gh.add_comment(7, "a later comment", user="reviewer")
    gh.requests.clear()
    second = github_api.upsert_comment(gh.url, TOKEN, REPO, 7, lambda old: f"v2 after {old!r}", "<!-- m -->")
    assert second.action == "updated" and second.url == first.url and second.previous == "v1 <!-- m -->"
    pages = [r.query.get("page", ["1"])[0] for r in gh.calls("GET")]
    assert pages == ["1", "2", "3"]                                 # 13 comments, 5 a page
    [patch] = gh.calls("PATCH")
    assert patch.path == f"/repos/{REPO}/issues/comments/{gh.on(7)[11]['id']}"
    assert len(gh.on(7)) == 13 and gh.on(7)[11]["body"] == "v2 after 'v1 <!-- m -->'"
    assert not gh.calls("POST")


def test_the_most_recent_of_several_marked_comments_is_updated(gh):
    gh.add_comment(7, "one <!-- m -->", user="github-actions[bot]")
    gh.add_comment(7, "two <!-- m -->", user="github-actions[bot]")
    done = github_api.upsert_comment(gh.url, TOKEN, REPO, 7, "three <!-- m -->", "<!-- m -->")
    assert done.previous == "two <!-- m -->"
    assert [c["body"] for c in gh.on(7)] == ["one <!-- m -->", "three <!-- m -->"]


def test_a_github_enterprise_prefix_is_kept():
    with GitHubStub(token=TOKEN, repo=REPO, page_size=2, prefix="/api/v3") as ghe:
        for i in range(4):
            ghe.add_comment(3, f"c{i}")
        ghe.add_comment(3, "x <!-- m -->")
        done = github_api.upsert_comment(ghe.url + "/", TOKEN, REPO, 3, "y <!-- m -->", "<!-- m -->")
        assert done.action == "updated"
        assert all(r.path.startswith("/api/v3/repos/") for r in ghe.requests)
        assert [r.query.get("page", ["1"])[0] for r in ghe.calls("GET")] == ["1", "2", "3"]


def test_the_token_goes_only_to_the_api_host(gh, monkeypatch):
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "api.example.com"
        return httpx.Response(200, json=[], headers={"Link": '<https://elsewhere.example/p?page=2>; rel="next"'})
    with pytest.raises(github_api.GitHubError, match="another host"):
        github_api.upsert_comment("https://api.example.com", TOKEN, REPO, 1, "b <!-- m -->", "<!-- m -->",
                                  transport=httpx.MockTransport(handler))


def test_pages_are_capped():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json=[{"id": 1, "body": "x"}],
                              headers={"Link": '<https://api.example.com/next?page=2>; rel="next"'})
    with github_api.GitHub(TOKEN, "https://api.example.com", transport=httpx.MockTransport(handler)) as api:
        assert len(api.comments(REPO, 1, max_pages=4)) == 4
    assert len(calls) == 4


@pytest.mark.parametrize("status, message", [(401, "Bad credentials"), (403, "Resource not accessible by integration"),
                                             (404, "Not Found")])
def test_errors_carry_the_status_and_githubs_message_never_the_token(gh, status, message):
    gh.fail("POST", status)
    with pytest.raises(github_api.GitHubError) as caught:
        github_api.upsert_comment(gh.url, TOKEN, REPO, 7, "b <!-- m -->", "<!-- m -->")
    error = caught.value
    assert (error.status, error.message, error.method, error.on_write) == (status, message, "POST", True)
    assert str(error) == f"GitHub API POST /repos/{REPO}/issues/7/comments: HTTP {status}: {message}"
    assert TOKEN not in str(error) + repr(error) + repr(error.args)


def test_a_wrong_token_is_a_401(gh):
    with pytest.raises(github_api.GitHubError) as caught:
        github_api.upsert_comment(gh.url, "ghs_wrong_token_value", REPO, 7, "b <!-- m -->", "<!-- m -->")
    assert caught.value.status == 401 and caught.value.message == "Bad credentials"
    assert caught.value.method == "GET" and not caught.value.on_write
    assert "ghs_wrong_token_value" not in str(caught.value)


def test_a_body_over_the_limit_is_githubs_422_message(gh):
    with pytest.raises(github_api.GitHubError) as caught:
        github_api.upsert_comment(gh.url, TOKEN, REPO, 7, "x" * 70_000 + "<!-- m -->", "<!-- m -->")
    assert caught.value.status == 422
    assert caught.value.message == "Validation Failed: body is too long (maximum is 65536 characters)"


def test_a_5xx_is_tried_once_more(gh):
    gh.fail("GET", 500, times=1)
    done = github_api.upsert_comment(gh.url, TOKEN, REPO, 7, "b <!-- m -->", "<!-- m -->", retry_delay=0)
    assert done.action == "created" and len(gh.calls("GET")) == 2
    gh.fail("PATCH", 502)
    with pytest.raises(github_api.GitHubError) as caught:
        github_api.upsert_comment(gh.url, TOKEN, REPO, 7, "c <!-- m -->", "<!-- m -->", retry_delay=0)
    assert caught.value.status == 502 and len(gh.calls("PATCH")) == 2


def test_no_answer_is_an_error_with_no_status():
    with GitHubStub() as gone:
        url = gone.url
    with pytest.raises(github_api.GitHubError) as caught:
        github_api.upsert_comment(url, TOKEN, REPO, 7, "b <!-- m -->", "<!-- m -->", retry_delay=0)
    assert caught.value.status is None and "ConnectError" in caught.value.message


@pytest.mark.parametrize("repo, pr", [("octo", 1), ("a/b/c", 1), ("o r/x", 1), ("o/..", 1), ("", 1),
                                      (REPO, 0), (REPO, -3), (REPO, True), (REPO, "7x"), (REPO, 1.5)])
def test_repo_and_pr_are_validated(repo, pr):
    with pytest.raises(ValueError):
        github_api.upsert_comment("https://api.example.com", TOKEN, repo, pr, "b <!-- m -->", "<!-- m -->",
                                  transport=httpx.MockTransport(lambda r: pytest.fail("sent a request")))


def test_a_body_without_its_marker_is_refused(gh):
    with pytest.raises(ValueError, match="marker"):
        github_api.upsert_comment(gh.url, TOKEN, REPO, 7, "no marker", "<!-- m -->")
    assert not gh.calls("POST")


# --- kvv comment ---------------------------------------------------------------------------

def kvv_comment(*args: str, token: str | None = TOKEN):
    env = {"GITHUB_TOKEN": token, "GITHUB_API_URL": None}
    return CliRunner().invoke(cli, ["comment", *args], env=env, catch_exceptions=False)


@pytest.fixture
def results_dir(tmp_path) -> Path:
    (tmp_path / "results.json").write_text(json.dumps(fixture("fail")), encoding="utf-8")
    return tmp_path


def test_kvv_comment_posts_then_updates_and_exits_0_whatever_the_verdict(gh, results_dir):
    first = kvv_comment(str(results_dir), "--repo", REPO, "--pr", "7", "--api-url", gh.url,
                        "--run-url", RUN_URL, "--key", "nightly")
    assert first.exit_code == 0, first.output + first.stderr
    assert first.stdout.strip() == gh.on(7)[0]["html_url"]
    assert "comment created" in first.stderr
    body = gh.on(7)[0]["body"]
    assert "kvv: FAIL" in body and RUN_URL in body and "key=nightly -->" in body
    (results_dir / "results.json").write_text(json.dumps(fixture("pass")), encoding="utf-8")
    second = kvv_comment(str(results_dir / "results.json"), "--repo", REPO, "--pr", "7", "--api-url", gh.url)
    assert second.exit_code == 0 and "comment updated" not in second.stderr   # another key: another comment
    assert len(gh.on(7)) == 2
    third = kvv_comment(str(results_dir), "--repo", REPO, "--pr", "7", "--api-url", gh.url, "--key", "nightly")
    assert third.exit_code == 0 and "comment updated" in third.stderr and len(gh.on(7)) == 2
    assert "- verdict: ❌ fail → ✅ pass" in gh.on(7)[0]["body"]
    assert TOKEN not in first.output + second.output + third.output + json.dumps(gh.comments)


def test_kvv_comment_reads_the_api_url_from_the_environment(gh, results_dir):
    result = CliRunner().invoke(cli, ["comment", str(results_dir), "--repo", REPO, "--pr", "7"],
                                env={"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": gh.url})
    assert result.exit_code == 0 and len(gh.on(7)) == 1


def test_kvv_comment_without_a_token_exits_2(results_dir, gh):
    result = kvv_comment(str(results_dir), "--repo", REPO, "--pr", "7", "--api-url", gh.url, token=None)
    assert result.exit_code == 2 and "GITHUB_TOKEN is not set" in result.stderr
    assert not gh.requests


def test_kvv_comment_dry_run_prints_the_body_and_sends_nothing(results_dir, gh):
    result = kvv_comment(str(results_dir), "--repo", REPO, "--pr", "7", "--api-url", gh.url, "--dry-run", token=None)
    assert result.exit_code == 0
    assert result.stdout == comment.render(fixture("fail"))
    assert not gh.requests


@pytest.mark.parametrize("status", [403, 404])
def test_kvv_comment_cannot_write_is_a_notice_and_exit_0(gh, results_dir, status):
    gh.fail("POST", status)
    result = kvv_comment(str(results_dir), "--repo", REPO, "--pr", "7", "--api-url", gh.url)
    assert result.exit_code == 0, result.stderr
    assert "kvv: notice: the token cannot write comments" in result.stderr and "fork" in result.stderr
    assert f"HTTP {status}" in result.stderr and result.stdout == ""


def test_kvv_comment_with_a_rejected_token_exits_2(gh, results_dir):
    result = kvv_comment(str(results_dir), "--repo", REPO, "--pr", "7", "--api-url", gh.url, token="ghs_bad")
    assert result.exit_code == 2
    assert "GitHub rejected the token" in result.stderr and "Bad credentials" in result.stderr
    assert "ghs_bad" not in result.output


def test_kvv_comment_on_a_missing_pull_request_exits_2(gh, results_dir):
    gh.fail("GET", 404)
    result = kvv_comment(str(results_dir), "--repo", REPO, "--pr", "7", "--api-url", gh.url)
    assert result.exit_code == 2 and "not found" in result.stderr


def test_kvv_comment_422_names_githubs_message_and_exits_3(gh, results_dir):
    gh.fail("POST", 422, "Validation Failed")
    result = kvv_comment(str(results_dir), "--repo", REPO, "--pr", "7", "--api-url", gh.url)
    assert result.exit_code == 3 and "HTTP 422: Validation Failed" in result.stderr


def test_kvv_comment_of_a_huge_run_fits(gh, tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(huge_results()), encoding="utf-8")
    result = kvv_comment(str(tmp_path), "--repo", REPO, "--pr", "7", "--api-url", gh.url)
    assert result.exit_code == 0, result.stderr                   # the stub would 422 a body too long
    [posted] = gh.on(7)
    assert len(posted["body"]) < 65_536 and comment.marker(huge_results()) in posted["body"]


@pytest.mark.parametrize("args, message", [
    (["--repo", "not-a-repo", "--pr", "7"], "OWNER/NAME"),
    (["--repo", REPO, "--pr", "0"], "x>=1"),
])
def test_kvv_comment_usage_errors_exit_2(results_dir, args, message):
    result = kvv_comment(str(results_dir), *args)
    assert result.exit_code == 2 and message in result.output + result.stderr


def test_kvv_comment_refuses_what_is_not_a_results_json(tmp_path):
    (tmp_path / "results.json").write_text("[]")
    result = kvv_comment(str(tmp_path), "--repo", REPO, "--pr", "7")
    assert result.exit_code == 2 and "not a results.json" in result.stderr
