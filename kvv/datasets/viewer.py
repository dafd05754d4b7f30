"""An async client of the Hugging Face dataset viewer API (datasets-server), over httpx.

    GET {server}/rows?dataset=ID&config=C&split=S&offset=O&length=L     (L <= 100)
    -> {"features": [{"feature_idx", "name", "type"}], "rows": [{"row_idx", "row", "truncated_cells"}],
        "num_rows_total": N, "num_rows_per_page": 100, "partial": false}

Pages are fetched until `num_rows_total`; an image cell `{"src", "height", "width"}` is fetched
from `src` (size-capped) right after its page, so its signed URL is fresh. 429 (Retry-After
honoured, clamped), 5xx, timeouts and connection errors are retried with capped, jittered
backoff. An asset refused as expired (401/403/404/410) is asked for again through `/rows` (its
page, once for all the images on it) and fetched from the fresh `src` once.

`HF_TOKEN` goes as `Authorization: Bearer` to the server's own origin only, never to another
host (an asset CDN, a redirect), and never appears in an error: messages are masked like
kvv/redact.py does.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import httpx

from .. import __version__
from ..client import _describe, is_loopback, retry_after_seconds
from ..errors import ConfigError
from ..redact import Redactor
from .errors import DatasetError
from .images import MAX_IMAGE_BYTES, MiB, Image, decode_data_url, declared_mime, is_data_url
from .specs import DatasetSpec, validate_row

DEFAULT_SERVER = "https://datasets-server.huggingface.co"
PAGE_ROWS = 100                     # the viewer API's maximum `length`
MAX_PAGE_BYTES = 64 * MiB
EXPIRED = (401, 403, 404, 410)      # what a signed asset URL past its expiry answers
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5

# (image bytes, declared mime, width, height) -> Image; ValueError when the bytes are no image.
ImageStore = Callable[[bytes, "str | None", "int | None", "int | None"], Image]
Progress = Callable[[dict[str, Any]], None]


def server_url(server: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """The viewer API's base URL: the argument (config key `datasets-server`), else
    KVV_DATASETS_SERVER, else the public one."""
    return (server or environ.get("KVV_DATASETS_SERVER") or DEFAULT_SERVER).rstrip("/")


def check_server(url: str, allow_insecure_http: bool = False) -> str:
    """`url`, or ConfigError for one kvv must not use (plain http to a non-loopback host)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{url!r} is not a valid URL: {exc}", path="datasets-server") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{url!r}: expected http(s)://host[:port]", path="datasets-server")
    if parsed.scheme == "http" and not allow_insecure_http and not is_loopback(parsed.host):
        raise ConfigError(f"{url!r} is plain http to a non-loopback host (the Hugging Face token and "
                          "the data would travel in clear): use https", path="datasets-server")
    return url.rstrip("/")


def memory_store(data: bytes, declared: str | None, width: int | None, height: int | None) -> Image:
    return Image.from_bytes(data, declared, width=width, height=height)


@dataclass
class Page:
    offset: int
    features: list[dict[str, Any]]
    rows: list[tuple[int, dict[str, Any]]]
    num_rows_total: int
    partial: bool


@dataclass
class Fetched:
    """A whole split: rows (row_idx, row) with image cells replaced by Images."""

    spec: DatasetSpec
    server: str
    features: list[dict[str, Any]]
    rows: list[tuple[int, dict[str, Any]]]
    num_rows_total: int
    partial: bool
    image_fields: list[str] = field(default_factory=list)


@dataclass
class _Reply:
    status: int
    headers: httpx.Headers
    body: bytes
    url: str


def image_features(features: list[dict[str, Any]]) -> list[str]:
    """The columns the viewer types as images."""
    return [f["name"] for f in features if isinstance(f.get("type"), dict) and f["type"].get("_type") == "Image"]


class ViewerClient:
    """One viewer API server; `waits` records each wait before a retry: (reason, seconds)."""

    def __init__(self, server: str | None = None, *, token: str | None = None, timeout: float = 60.0,
                 max_retries: int = 5, backoff_base: float = 0.5, backoff_cap: float = 16.0,
                 retry_after_cap: float = 60.0, request_deadline: float = 300.0,
                 max_image_bytes: int = MAX_IMAGE_BYTES, max_page_bytes: int = MAX_PAGE_BYTES,
                 concurrency: int = 8, allow_insecure_http: bool = False,
                 transport: httpx.AsyncBaseTransport | None = None):
        """`token`: the Hugging Face token (default HF_TOKEN); "" sends none."""
        self.server = check_server(server_url(server), allow_insecure_http)
        self.allow_insecure_http = allow_insecure_http
        self.token = os.environ.get("HF_TOKEN") if token is None else token
        self.max_retries, self.backoff_base, self.backoff_cap = max_retries, backoff_base, backoff_cap
        self.retry_after_cap, self.request_deadline = retry_after_cap, request_deadline
        self.max_image_bytes, self.max_page_bytes = max_image_bytes, max_page_bytes
        self.waits: list[tuple[str, float]] = []
        self.requests = 0
        self._redactor = Redactor(self.token)
        self._origin = _origin(httpx.URL(self.server))
        self._images = asyncio.Semaphore(max(1, concurrency))
        self._http = httpx.AsyncClient(
            headers={"User-Agent": f"kvv/{__version__}", "Accept": "application/json, image/*;q=0.9, */*;q=0.1"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0), pool=None),
            limits=httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2),
            follow_redirects=False,            # followed by hand: Authorization stays on the server's origin
            transport=transport)

    def __repr__(self) -> str:
        return f"ViewerClient({self.server!r})"

    async def __aenter__(self) -> ViewerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- /rows ---------------------------------------------------------------------------------

    async def page(self, spec: DatasetSpec, offset: int, length: int = PAGE_ROWS) -> Page:
        """One page of rows, its shape checked."""
        if not 0 < length <= PAGE_ROWS:
            raise ValueError(f"length must be 1..{PAGE_ROWS}")
        params = {"dataset": spec.id, "config": spec.config, "split": spec.split,
                  "offset": str(offset), "length": str(length)}
        url = str(httpx.URL(self.server + "/rows", params=params))
        what = f"/rows offset {offset}"
        reply = await self._get(url, self.max_page_bytes, spec, what)
        if reply.status != 200:
            raise self._refused(spec, reply, what)
        try:
            body = json.loads(reply.body)
        except (ValueError, RecursionError) as exc:
            raise self._error(spec, f"{what}: the dataset viewer answered with no JSON: {exc}") from None
        return self._parse_page(spec, body, offset)

    def _parse_page(self, spec: DatasetSpec, body: Any, offset: int) -> Page:
        def bad(message: str) -> DatasetError:
            return self._error(spec, f"/rows offset {offset}: unexpected response: {message}")

        if not isinstance(body, dict):
            raise bad("not a JSON object")
        features, rows, total = body.get("features"), body.get("rows"), body.get("num_rows_total")
        if not isinstance(features, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str)
                                                     for f in features):
            raise bad("`features` is not a list of {name, type}")
        if not isinstance(rows, list):
            raise bad("`rows` is not a list")
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise bad("`num_rows_total` is not a count")
        out = []
        for i, item in enumerate(rows):
            expected = offset + i
            if not isinstance(item, dict) or not isinstance(item.get("row"), dict):
                raise bad(f"rows[{i}] is not {{row_idx, row}}")
            if item.get("row_idx", expected) != expected:
                raise bad(f"rows[{i}] has row_idx {item.get('row_idx')!r}; expected {expected}")
            truncated = item.get("truncated_cells") or []
            if truncated:
                raise DatasetError(f"the server truncated this cell ({len(truncated)} truncated)",
                                   dataset=spec.label, row=expected, field=str(truncated[0]))
            out.append((expected, item["row"]))
        return Page(offset=offset, features=features, rows=out, num_rows_total=total,
                    partial=bool(body.get("partial", False)))

    # -- a whole split -------------------------------------------------------------------------

    async def fetch(self, spec: DatasetSpec, store: ImageStore = memory_store,
                    on_progress: Progress | None = None) -> Fetched:
        """Every row of the split, each validated against the spec before its images are fetched
        and again with them; images go through `store` (memory, or the cache's files)."""
        rows: list[tuple[int, dict[str, Any]]] = []
        first = await self.page(spec, 0)
        features, total, partial = first.features, first.num_rows_total, first.partial
        names = {f["name"] for f in features}
        for f in spec.fields:
            if f.required and f.name not in names:
                raise DatasetError("not among the dataset's features "
                                   f"({', '.join(sorted(names)) or 'none'}); is this the right dataset?",
                                   dataset=spec.label, field=f.name)
        images = list(dict.fromkeys([*spec.image_fields, *image_features(features)]))
        page, count = first, 0
        while True:
            if page.num_rows_total != total:
                raise self._error(spec, f"the dataset changed while it was read: {total} rows, then "
                                        f"{page.num_rows_total}; fetch it again")
            for index, row in page.rows:          # a bad row fails before its images are fetched
                validate_row(spec, row, index, image_fields=images)
            fresh = await self._page_images(spec, page, images, store)
            count += sum(1 for _, row in fresh for n in images if row.get(n) is not None)
            rows.extend(fresh)
            if on_progress is not None:
                on_progress({"dataset": spec.label, "rows": len(rows), "total": total, "images": count})
            offset = page.offset + len(page.rows)
            if offset >= total:
                break
            if not page.rows:
                raise self._error(spec, f"/rows offset {page.offset} returned no rows, but the dataset "
                                        f"has {total}")
            page = await self.page(spec, offset, min(PAGE_ROWS, total - offset))
        return Fetched(spec=spec, server=self.server, features=features, rows=rows, num_rows_total=total,
                       partial=partial, image_fields=images)

    async def _page_images(self, spec: DatasetSpec, page: Page, names: list[str],
                           store: ImageStore) -> list[tuple[int, dict[str, Any]]]:
        state = _PageState(page)
        cells = [(index, name) for index, row in page.rows for name in names if row.get(name) is not None]
        tasks = [asyncio.create_task(self._cell(spec, state, index, name, store)) for index, name in cells]
        if tasks:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [exc for t in tasks if t.done() and not t.cancelled() and (exc := t.exception()) is not None]
        if failed:                    # the first bad image (in row order) is the error; the rest are stopped
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise failed[0]
        done = {key: task.result() for key, task in zip(cells, tasks, strict=True)}
        return [(index, {k: done.get((index, k), v) for k, v in row.items()}) for index, row in page.rows]

    async def _cell(self, spec: DatasetSpec, state: _PageState, index: int, name: str,
                    store: ImageStore) -> Image:
        def fail(message: str) -> DatasetError:
            return DatasetError(self._redactor.text(message), dataset=spec.label, row=index, field=name)

        for refreshed in (False, True):
            generation, cell = state.generation, state.cell(index, name)
            src = _src(cell)
            if src is None:
                raise fail(f"expected an image cell {{src, height, width}}, got {_kind(cell)}")
            width, height = _dimension(cell.get("width")), _dimension(cell.get("height"))
            if is_data_url(src):
                try:
                    data, declared = decode_data_url(src, self.max_image_bytes)
                except ValueError as exc:
                    raise fail(str(exc)) from None
            else:
                async with self._images:
                    reply = await self._get(src, self.max_image_bytes, spec, f"row {index} {name}", index, name,
                                            image=True)
                if reply.status in EXPIRED and not refreshed:
                    # Its signed URL expired: ask /rows for this page again (once for all its images).
                    async with state.lock:
                        if state.generation == generation:
                            state.replace(await self.page(spec, state.offset, max(1, len(state.rows))))
                    continue
                if reply.status != 200:
                    again = " after asking /rows for a fresh URL" if refreshed else ""
                    raise fail(f"the image was refused{again}: HTTP {reply.status}{_message(reply.body)}")
                data, declared = reply.body, declared_mime(reply.headers.get("content-type"))
            try:
                return store(data, declared, width, height)
            except ValueError as exc:
                raise fail(str(exc)) from None
        raise AssertionError("unreachable")

    # -- HTTP ----------------------------------------------------------------------------------

    async def _get(self, url: str, cap: int, spec: DatasetSpec, what: str, row: int | None = None,
                   field: str | None = None, image: bool = False) -> _Reply:
        """GET with retries on 429/5xx/timeouts/connection errors, redirects followed by hand.
        Any other status is returned for the caller to judge."""
        last = ""
        for attempt in range(1, self.max_retries + 2):
            wait: float | None = None
            try:
                reply = await self._follow(url, cap, spec, what, row, field, image)
            except (httpx.TimeoutException, TimeoutError) as exc:
                last = f"timed out: {_describe(exc) if isinstance(exc, httpx.HTTPError) else 'deadline passed'}"
            except httpx.HTTPError as exc:
                last = f"no response: {_describe(exc)}"
            else:
                if reply.status != 429 and reply.status < 500:
                    return reply
                last = f"HTTP {reply.status}{_message(reply.body)}"
                if reply.status in (429, 503):
                    seconds = retry_after_seconds(reply.headers.get("retry-after", ""), time.time())
                    if seconds is not None:
                        wait = min(max(seconds, 0.0), self.retry_after_cap)
            if attempt > self.max_retries:
                break
            if wait is None:
                wait = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))
            self.waits.append((last, wait))
            await asyncio.sleep(wait)
        raise DatasetError(self._redactor.text(f"{what}: gave up after {self.max_retries + 1} attempts: {last}"),
                           dataset=spec.label, row=row, field=field)

    async def _follow(self, url: str, cap: int, spec: DatasetSpec, what: str, row: int | None,
                      field: str | None, image: bool) -> _Reply:
        for _ in range(MAX_REDIRECTS + 1):
            target = self._checked(url, spec, what, row, field)
            headers = {}
            if self.token and _origin(target) == self._origin:
                headers["Authorization"] = f"Bearer {self.token}"
            if image:
                headers["Accept"] = "image/*"
            self.requests += 1
            async with asyncio.timeout(self.request_deadline):
                async with self._http.stream("GET", target, headers=headers) as response:
                    if response.status_code in REDIRECTS and response.headers.get("location"):
                        url = str(target.join(response.headers["location"]))
                        continue
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > cap:
                            raise DatasetError(f"{what}: the response is over {cap:,} bytes",
                                               dataset=spec.label, row=row, field=field)
                    return _Reply(response.status_code, response.headers, bytes(body), str(target))
        raise DatasetError(f"{what}: more than {MAX_REDIRECTS} redirects", dataset=spec.label, row=row,
                           field=field)

    def _checked(self, url: str, spec: DatasetSpec, what: str, row: int | None, field: str | None) -> httpx.URL:
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise DatasetError(f"{what}: not a valid URL: {exc}", dataset=spec.label, row=row, field=field) from None
        if target.scheme not in ("http", "https") or not target.host:
            raise DatasetError(f"{what}: refusing a {target.scheme or 'relative'} URL; expected http(s)",
                               dataset=spec.label, row=row, field=field)
        if target.scheme == "http" and not self.allow_insecure_http and not is_loopback(target.host):
            raise DatasetError(f"{what}: refusing plain http to {target.host}", dataset=spec.label, row=row,
                               field=field)
        return target

    def _refused(self, spec: DatasetSpec, reply: _Reply, what: str) -> DatasetError:
        hint = ""
        if reply.status in (401, 403, 404):
            hint = (" (a gated or private dataset needs HF_TOKEN)" if not self.token
                    else " (check the id, config and split, and that the token may read it)")
        return self._error(spec, f"{what}: the dataset viewer answered HTTP {reply.status}"
                                 f"{_message(reply.body)}{hint}")

    def _error(self, spec: DatasetSpec, message: str) -> DatasetError:
        return DatasetError(self._redactor.text(message), dataset=spec.label)


class _PageState:
    """A page's rows as last served: re-requested when an asset's signed URL expires."""

    def __init__(self, page: Page):
        self.offset, self.generation, self.lock = page.offset, 0, asyncio.Lock()
        self.rows = dict(page.rows)

    def cell(self, index: int, name: str) -> Any:
        return (self.rows.get(index) or {}).get(name)

    def replace(self, page: Page) -> None:
        self.rows.update(dict(page.rows))
        self.generation += 1


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, (url.host or "").lower(), url.port or {"http": 80, "https": 443}.get(url.scheme)


def _src(cell: Any) -> str | None:
    if isinstance(cell, dict) and isinstance(cell.get("src"), str) and cell["src"]:
        return cell["src"]
    return None


def _dimension(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _kind(value: Any) -> str:
    text = json.dumps(value)[:60] if not isinstance(value, bytes) else "bytes"
    return text


def _message(body: bytes) -> str:
    """`: <the server's error>` from a {"error": ...} body, briefly."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        text = body[:200].decode("utf-8", "replace").strip()
        return f": {text}" if text and "<" not in text[:1] else ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return f": {str(error)[:300]}" if error else ""
