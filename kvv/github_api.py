"""The GitHub REST calls behind the sticky PR comment (github-action.md §3.3).

Three endpoints, over httpx, against `GITHUB_API_URL` (https://api.github.com, or a GitHub
Enterprise Server's https://HOST/api/v3: the path prefix is kept):

- GET   {api}/repos/{owner}/{repo}/issues/{pr}/comments?per_page=100  (every `Link: rel="next"`)
- PATCH {api}/repos/{owner}/{repo}/issues/comments/{id}
- POST  {api}/repos/{owner}/{repo}/issues/{pr}/comments

`upsert_comment` finds the comment that holds a marker (the most recent, if several) and
edits it, else creates one. Failures raise `GitHubError`, which carries the status and GitHub's
own message and never the token. A 5xx or a connection failure is tried once more.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, NamedTuple
from urllib.parse import urlsplit

import httpx

from . import __version__
from .redact import Redactor

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100
MAX_PAGES = 50                 # 5,000 comments; a PR with more gets a new kvv comment
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
RETRY_DELAY_S = 1.0
MESSAGE_CAP = 500

_REPO = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')

Body = str | Callable[[str | None], str]


class GitHubError(Exception):
    """A GitHub API call failed: `status` (None when no answer came) and GitHub's `message`."""

    def __init__(self, status: int | None, message: str, method: str = "", path: str = ""):
        self.status, self.message, self.method, self.path = status, message, method, path
        where = f"{method} {path}".strip()
        code = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"GitHub API {where}: {code}: {message}" if where else f"GitHub API: {code}: {message}")

    @property
    def on_write(self) -> bool:
        return self.method in ("POST", "PATCH")


class Upserted(NamedTuple):
    url: str                   # the comment's html_url
    action: str                # "created" or "updated"
    previous: str | None       # the body it replaced (None when created)


def validate(repo: str, pr: Any) -> tuple[str, int]:
    """`owner/name` and a positive PR number, or ValueError."""
    if not isinstance(repo, str) or not _REPO.fullmatch(repo) or repo.split("/")[1] in (".", ".."):
        raise ValueError(f"repository must be OWNER/NAME, got {repo!r}")
    if isinstance(pr, bool) or not isinstance(pr, (int, str)) or not str(pr).isdigit() or int(pr) < 1:
        raise ValueError(f"pull request number must be a positive integer, got {pr!r}")
    return repo, int(pr)


class GitHub:
    """A small REST client: one connection pool, the headers GitHub asks for, one retry."""

    def __init__(self, token: str, api_url: str | None = None, *,
                 transport: httpx.BaseTransport | None = None, retry_delay: float = RETRY_DELAY_S,
                 timeout: httpx.Timeout | float = TIMEOUT):
        if not token:
            raise ValueError("a GitHub token is needed")
        self.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        parts = urlsplit(self.api_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"GitHub API URL must be http(s)://HOST[/PREFIX], got {api_url!r}")
        self._origin = (parts.scheme, parts.netloc.lower())
        self.retry_delay = retry_delay
        self._redact = Redactor(token)
        self._http = httpx.Client(
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                     "Authorization": f"Bearer {token}", "User-Agent": f"kvv/{__version__}"},
            timeout=timeout, follow_redirects=False, transport=transport)

    def __enter__(self) -> GitHub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"GitHub({self.api_url!r})"          # never the token

    # --- endpoints -----------------------------------------------------------------------

    def comments(self, repo: str, pr: int, max_pages: int = MAX_PAGES) -> list[dict]:
        """The PR's issue comments, oldest first, following `Link: rel="next"` pages."""
        repo, pr = validate(repo, pr)
        url = f"{self.api_url}/repos/{repo}/issues/{pr}/comments?per_page={PER_PAGE}"
        found: list[dict] = []
        for _ in range(max_pages):
            response = self._call("GET", url)
            page = response.json()
            if not isinstance(page, list):
                raise GitHubError(response.status_code, "expected a list of comments", "GET", self._path(url))
            found += [c for c in page if isinstance(c, dict)]
            next_url = _next_link(response.headers.get("link", ""))
            if next_url is None:
                break
            if (urlsplit(next_url).scheme, urlsplit(next_url).netloc.lower()) != self._origin:
                # The token goes only where the API is.
                raise GitHubError(response.status_code, "the next page is on another host", "GET",
                                  self._path(next_url))
            url = next_url
        return found

    def create_comment(self, repo: str, pr: int, body: str) -> dict:
        repo, pr = validate(repo, pr)
        return self._call("POST", f"{self.api_url}/repos/{repo}/issues/{pr}/comments", {"body": body}).json()

    def update_comment(self, repo: str, comment_id: int, body: str) -> dict:
        repo, _ = validate(repo, 1)
        return self._call("PATCH", f"{self.api_url}/repos/{repo}/issues/comments/{int(comment_id)}",
                          {"body": body}).json()

    def find_comment(self, repo: str, pr: int, marker: str) -> dict | None:
        """The most recent comment whose body holds `marker`."""
        matches = [c for c in self.comments(repo, pr) if marker in (c.get("body") or "")]
        return max(matches, key=lambda c: (str(c.get("created_at") or ""), c.get("id") or 0), default=None)

    def upsert_comment(self, repo: str, pr: int, body: Body, marker: str) -> Upserted:
        """Edit the comment holding `marker`, else create one. `body` may be a function of the
        previous comment's body (None when there is none), for a comment that says what changed."""
        previous = self.find_comment(repo, pr, marker)
        old = (previous.get("body") or "") if previous else None
        text = body(old) if callable(body) else body
        if marker not in text:
            raise ValueError("the comment body must hold its marker, or the next run cannot find it")
        if previous and previous.get("id") is not None:
            made = self.update_comment(repo, previous["id"], text)
            return Upserted(str(made.get("html_url") or previous.get("html_url") or ""), "updated", old)
        made = self.create_comment(repo, pr, text)
        return Upserted(str(made.get("html_url") or ""), "created", None)

    # --- transport -------------------------------------------------------------------------

    def _call(self, method: str, url: str, payload: dict | None = None) -> httpx.Response:
        path = self._path(url)
        for attempt in (1, 2):
            try:
                response = self._http.request(method, url, json=payload)
            except httpx.HTTPError as exc:
                if attempt == 1 and _retryable(method, exc):
                    time.sleep(self.retry_delay)
                    continue
                raise GitHubError(None, self._redact.text(f"{type(exc).__name__}: {exc}")[:MESSAGE_CAP],
                                  method, path) from None
            if response.status_code >= 500 and attempt == 1:
                time.sleep(self.retry_delay)
                continue
            if response.status_code >= 300:
                raise GitHubError(response.status_code, self._message(response), method, path)
            try:
                response.json()
            except ValueError:
                raise GitHubError(response.status_code, "the answer is not JSON", method, path) from None
            return response
        raise AssertionError("unreachable")

    def _message(self, response: httpx.Response) -> str:
        """GitHub's `message`, with the `errors` of a 422 ("body is too long …")."""
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            text = response.reason_phrase or "no message"
        else:
            text = str(data.get("message") or response.reason_phrase or "no message")
            details = [str(e.get("message") or e.get("code")) if isinstance(e, dict) else str(e)
                       for e in data.get("errors") or [] if e]
            if details:
                text += ": " + "; ".join(details)
        return self._redact.text(" ".join(text.split()))[:MESSAGE_CAP]

    def _path(self, url: str) -> str:
        """The URL's path, for messages (no query, never a credential)."""
        return urlsplit(url).path


def upsert_comment(api_url: str | None, token: str, repo: str, pr: int, body: Body, marker: str,
                   **options: Any) -> Upserted:
    """One call: `(url, action, previous body)`; see `GitHub.upsert_comment`."""
    repo, pr = validate(repo, pr)
    with GitHub(token, api_url, **options) as github:
        return github.upsert_comment(repo, pr, body, marker)


def post_results(results: dict, *, token: str, repo: str, pr: int, api_url: str | None = None,
                 run_url: str | None = None, key: str | None = None, **options: Any) -> Upserted:
    """Upsert the kvv comment for `results`, saying what changed since the previous one."""
    from .report import comment

    def body(previous: str | None) -> str:
        return comment.render(results, comment.parse_digest(previous), run_url, key=key)

    return upsert_comment(api_url, token, repo, pr, body, comment.marker(results, key), **options)


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        match = _NEXT.search(part)
        if match:
            return match.group(1).strip()
    return None


def _retryable(method: str, exc: httpx.HTTPError) -> bool:
    """Connection failures are tried again; a POST only when nothing was sent (no double comment)."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return True
    return method != "POST" and isinstance(exc, httpx.TransportError)
