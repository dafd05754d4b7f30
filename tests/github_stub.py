"""A loopback stand-in for the three GitHub REST endpoints kvv's PR comment uses.

    with GitHubStub(token="ghs_x", page_size=5, prefix="/api/v3") as gh:
        gh.add_comment(7, "someone else's comment")
        ... GITHUB_API_URL=gh.url ...
        gh.requests, gh.comments

- GET   {prefix}/repos/{owner}/{repo}/issues/{n}/comments   (pages of `page_size`, `Link` headers
  with absolute URLs, as GitHub sends them)
- POST  {prefix}/repos/{owner}/{repo}/issues/{n}/comments   (201)
- PATCH {prefix}/repos/{owner}/{repo}/issues/comments/{id}  (200)

Every request must carry `Authorization: Bearer <token>` (else 401 "Bad credentials"),
`Accept: application/vnd.github+json` (else 415) and `X-GitHub-Api-Version: 2022-11-28` (else
400). A body over 65,536 characters is a 422, with GitHub's wording. `fail(method, status)`
makes a method answer an error (for `times` requests, or for ever).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BODY_LIMIT = 65_536
MESSAGES = {401: "Bad credentials", 403: "Resource not accessible by integration", 404: "Not Found",
            422: "Validation Failed", 500: "Server Error"}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    status: int
    message: str
    times: int | None                    # None: for ever


@dataclass
class GitHubStub:
    token: str = "ghs_stub_token_0000000000"
    repo: str = "octo-org/kvv-demo"
    page_size: int = 30
    prefix: str = ""
    bot: str = "github-actions[bot]"
    comments: list[dict] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._failures: dict[str, Failure] = {}
        self._lock = threading.Lock()
        self._next_id = 1000
        self._clock = 0
        self._server: ThreadingHTTPServer | None = None

    # --- control ---------------------------------------------------------------------------

    def __enter__(self) -> GitHubStub:
        stub = self

        class Handler(_Handler):
            pass
        Handler.stub = stub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The API base URL, as GITHUB_API_URL would hold it."""
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def fail(self, method: str, status: int, message: str | None = None, times: int | None = None) -> None:
        self._failures[method.upper()] = Failure(status, message or MESSAGES.get(status, "Error"), times)

    def add_comment(self, pr: int, body: str, user: str = "someone") -> dict:
        with self._lock:
            return self._add(pr, body, user)

    def on(self, pr: int) -> list[dict]:
        """The PR's comments, oldest first."""
        return [c for c in self.comments if c["issue"] == pr]

    def calls(self, method: str | None = None) -> list[Request]:
        return [r for r in self.requests if method is None or r.method == method]

    # --- state -----------------------------------------------------------------------------

    def _add(self, pr: int, body: str, user: str) -> dict:
        self._next_id += 1
        self._clock += 1
        comment = {"id": self._next_id, "issue": pr, "body": body, "user": {"login": user},
                   "created_at": f"2026-01-01T00:{self._clock // 60:02d}:{self._clock % 60:02d}Z",
                   "html_url": f"https://github.com/{self.repo}/pull/{pr}#issuecomment-{self._next_id}"}
        self.comments.append(comment)
        return comment

    def _answer(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not path.startswith(self.prefix + "/"):
            return 404, {"message": "Not Found"}, {}
        path = path[len(self.prefix):]
        repo = re.escape(self.repo)
        listing = re.fullmatch(rf"/repos/{repo}/issues/(\d+)/comments", path)
        single = re.fullmatch(rf"/repos/{repo}/issues/comments/(\d+)", path)
        if listing and method == "GET":
            pr = int(listing.group(1))
            per_page = min(int(query.get("per_page", ["30"])[0]), 100, self.page_size)
            page = max(1, int(query.get("page", ["1"])[0]))
            found = self.on(pr)
            last = max(1, -(-len(found) // per_page))
            rows = [self._public(c) for c in found[(page - 1) * per_page: page * per_page]]
            return 200, rows, {"Link": self._links(path, per_page, page, last)} if last > 1 else {}
        if listing and method == "POST":
            error = self._invalid(body)
            if error:
                return 422, error, {}
            return 201, self._public(self._add(int(listing.group(1)), body["body"], self.bot)), {}
        if single and method == "PATCH":
            comment = next((c for c in self.comments if c["id"] == int(single.group(1))), None)
            if comment is None:
                return 404, {"message": "Not Found"}, {}
            error = self._invalid(body)
            if error:
                return 422, error, {}
            comment["body"] = body["body"]
            return 200, self._public(comment), {}
        return 404, {"message": "Not Found"}, {}

    def _links(self, path: str, per_page: int, page: int, last: int) -> str:
        def link(n: int, rel: str) -> str:
            return f'<http://127.0.0.1:{self.port}{self.prefix}{path}?per_page={per_page}&page={n}>; rel="{rel}"'
        rels = []
        if page > 1:
            rels += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            rels += [link(page + 1, "next"), link(last, "last")]
        return ", ".join(rels)

    @staticmethod
    def _invalid(body: Any) -> dict | None:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return {"message": "Invalid request.\n\n\"body\" wasn't supplied."}
        if len(body["body"]) > BODY_LIMIT:
            return {"message": "Validation Failed", "errors": [
                {"resource": "IssueComment", "code": "custom", "field": "body",
                 "message": f"body is too long (maximum is {BODY_LIMIT} characters)"}]}
        return None

    @staticmethod
    def _public(comment: dict) -> dict:
        return {k: v for k, v in comment.items() if k != "issue"}


class _Handler(BaseHTTPRequestHandler):
    stub: GitHubStub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        stub = self.stub
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        parts = urlsplit(self.path)
        with stub._lock:
            stub.requests.append(Request(self.command, parts.path, parse_qs(parts.query),
                                         dict(self.headers.items()), body))
            status, answer, headers = self._check(stub)
            if status is None:
                failure = stub._failures.get(self.command)
                if failure is not None and failure.times != 0:
                    if failure.times is not None:
                        failure.times -= 1
                    status, answer, headers = failure.status, {"message": failure.message}, {}
                else:
                    status, answer, headers = stub._answer(self.command, parts.path,
                                                           parse_qs(parts.query), body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _check(self, stub: GitHubStub) -> tuple[int | None, Any, dict]:
        if self.headers.get("Authorization") != f"Bearer {stub.token}":
            return 401, {"message": "Bad credentials"}, {}
        if self.headers.get("Accept") != "application/vnd.github+json":
            return 415, {"message": "Unsupported 'Accept' header"}, {}
        if self.headers.get("X-GitHub-Api-Version") != "2022-11-28":
            return 400, {"message": "Invalid API version"}, {}
        return None, None, {}
