"""A local stand-in of the Hugging Face dataset viewer API, for tests and demos (issue 7 item 10).

A real HTTP server on loopback (stdlib ThreadingHTTPServer) that answers

    GET /rows?dataset=ID&config=C&split=S&offset=O&length=L     (L <= 100; 422 beyond)
    GET /splits?dataset=ID
    GET /assets/...                                              the image `src` URLs it hands out
    GET /healthcheck

with the JSON shape of datasets-server.huggingface.co (`features`, `rows[].row_idx/row/
truncated_cells`, `num_rows_total`, `num_rows_per_page`, `partial`; errors `{"error": ...}`).
Image cells are `{"src", "height", "width"}` with signed-looking `src` URLs it serves itself.

It serves small fixture datasets generated deterministically in code (no files): OCRBench-like
(40 rows, PNGs of rendered text), MMMU-Pro-like (30 rows, 10 options, 1-2 images) and
AIME-like (30 problems, integer answers), under their own ids (`kvv-fixtures/...`) and, unless
told not to, under upstream's ids too, so kvv pointed at it (KVV_DATASETS_SERVER) runs unchanged.
Every gold answer is in the row (`answer`), as in the real datasets; `gold()` reads it typed.

Options imitate what the real service does to a client:
  expire_assets   "once": the srcs a page's first /rows answer hands out are refused (403, as an
                  expired signed URL) until the page is asked for again; "always": every src is
                  refused.
  rate_limit=N    the first N requests get 429 with `Retry-After: retry_after`.
  server_errors=N the next N requests get 503 without Retry-After.
  drop_fields     [(dataset id, row index, field)]: that row is served without that field.
  token           /rows wants `Authorization: Bearer <token>` (401 without it, as for a gated dataset).
  separate_assets images are served from a second port (another origin, like a CDN).
  mislabel_images every image goes out with this Content-Type.
`log` lists every request (path, Authorization header, status) for tests.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct
import threading
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable
from urllib.parse import parse_qs, quote, urlsplit

from .loopback import LoopbackServer, TrackedHandler

PAGE_ROWS = 100
OCRBENCH_ID = "kvv-fixtures/OCRBench-mini"
MMMU_ID = "kvv-fixtures/MMMU_Pro-mini"
AIME_ID = "kvv-fixtures/aime25-mini"
# The upstream dataset each fixture stands in for, and the key of its spec in kvv/data/datasets.yaml.
UPSTREAM = {OCRBENCH_ID: ("echo840/OCRBench", "ocrbench"), MMMU_ID: ("MMMU/MMMU_Pro", "mmmu-pro"),
            AIME_ID: ("math-ai/aime25", "aime2025")}
MMMU_CONFIG = "standard (10 options)"


# -- PNG from a bitmap font, in pure Python ------------------------------------------------------

_FONT_ROWS = {
    "0": (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    "1": ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "2": (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    "3": ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    "4": ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    "5": ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    "6": ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    "7": ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    "8": (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    "9": (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
    "A": (" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"),
    "B": ("#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "),
    "C": (" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "),
    "D": ("#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "),
    "E": ("#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"),
    "F": ("#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    "),
    "G": (" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"),
    "H": ("#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"),
    "I": (" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "J": ("  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  "),
    "K": ("#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #"),
    "L": ("#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"),
    "M": ("#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"),
    "N": ("#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #"),
    "O": (" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "),
    "P": ("#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "),
    "Q": (" ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #"),
    "R": ("#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"),
    "S": (" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "),
    "T": ("#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "),
    "U": ("#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "),
    "V": ("#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "),
    "W": ("#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # "),
    "X": ("#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #"),
    "Y": ("#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  "),
    "Z": ("#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####"),
    "+": ("     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "),
    "-": ("     ", "     ", "     ", "#####", "     ", "     ", "     "),
    "=": ("     ", "     ", "#####", "     ", "#####", "     ", "     "),
    ":": ("     ", "  #  ", "  #  ", "     ", "  #  ", "  #  ", "     "),
    ".": ("     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "),
    " ": ("     ",) * 7,
}
GLYPHS = "".join(_FONT_ROWS)


def render_text(text: str, scale: int = 4, margin: int = 8) -> list[bytearray]:
    """Grayscale rows (0 ink, 255 paper) of `text` in a 5x7 bitmap font (GLYPHS; lower case is drawn
    as upper case), each glyph scaled by `scale`, one column apart."""
    glyphs = [_FONT_ROWS[c] for c in text.upper()]
    if not glyphs:
        raise ValueError("nothing to render")
    width = 2 * margin + scale * (6 * len(glyphs) - 1)
    height = 2 * margin + 7 * scale
    rows = [bytearray(b"\xff" * width) for _ in range(height)]
    for n, glyph in enumerate(glyphs):
        for y, line in enumerate(glyph):
            for x, cell in enumerate(line):
                if cell == "#":
                    left = margin + scale * (6 * n + x)
                    for dy in range(scale):
                        rows[margin + scale * y + dy][left:left + scale] = b"\x00" * scale
    return rows


def png(rows: list[bytearray]) -> bytes:
    """An 8-bit grayscale PNG of `rows` (zlib + struct, no filter)."""
    height, width = len(rows), len(rows[0])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def text_png(text: str, scale: int = 4) -> bytes:
    return png(render_text(text, scale))


# -- fixture datasets ----------------------------------------------------------------------------

@dataclass(frozen=True)
class FixtureImage:
    data: bytes = field(repr=False)
    mime: str = "image/png"
    width: int | None = None
    height: int | None = None
    text: str | None = None              # what it shows, for a simulated model that "reads" it

    @classmethod
    def of_text(cls, text: str) -> FixtureImage:
        rows = render_text(text)
        return cls(png(rows), "image/png", len(rows[0]), len(rows), text)


@dataclass
class FixtureDataset:
    """A split the stand-in serves: viewer-shaped `features`, rows with FixtureImage cells."""

    id: str
    config: str
    split: str
    features: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    upstream: str | None = None          # the upstream id it stands in for
    spec_key: str | None = None          # its spec in kvv/data/datasets.yaml


def _features(columns: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"feature_idx": i, "name": name, "type": kind} for i, (name, kind) in enumerate(columns)]


STRING = {"dtype": "string", "_type": "Value"}
INT = {"dtype": "int64", "_type": "Value"}
IMAGE = {"_type": "Image"}


def _rng(name: str, index: int) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"{name}:{index}".encode()).digest()[:8], "big"))


_WORDS = ("KIMI", "VENDOR", "TOKEN", "CACHE", "MODEL", "IMAGE", "STREAM", "ORBIT", "PIXEL", "LAMBDA", "QUARTZ",
          "NEBULA", "SIGNAL", "VECTOR", "MATRIX", "HARBOR", "CANVAS", "FOREST", "GLIDER", "JASMINE", "KERNEL",
          "BEACON", "COBALT", "DELTA", "EMBER", "FALCON", "GRANITE", "HELIX", "IVORY", "JUNIPER")
_OCR_TYPES = ("Regular Text Recognition", "Irregular Text Recognition", "Digit String Recognition",
              "Non-Semantic Text Recognition", "Key Information Extraction",
              "Handwritten Mathematical Expression Recognition")


def ocrbench_fixture(n: int = 40, dataset_id: str = OCRBENCH_ID) -> FixtureDataset:
    """OCRBench-like: `question`, `question_type`, `answer` (a list), `image` (a PNG of the text)."""
    rows = []
    for i in range(n):
        rng, kind = _rng(dataset_id, i), _OCR_TYPES[i % len(_OCR_TYPES)]
        question = "what is written in the image?"
        if kind in ("Regular Text Recognition", "Irregular Text Recognition"):
            shown = answer = rng.choice(_WORDS)
        elif kind == "Digit String Recognition":
            shown = answer = "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 8)))
            question = "what is the number in the image?"
        elif kind == "Non-Semantic Text Recognition":
            shown = answer = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(rng.randint(5, 7)))
        elif kind == "Key Information Extraction":
            answer = str(rng.randint(10, 999))
            shown = f"TOTAL: {answer}"
            question = "what is the total amount in the image?"
        else:
            a, b = rng.randint(1, 49), rng.randint(1, 49)
            shown = answer = f"{a}+{b}={a + b}"
            question = "Please write out the expression of the formula in the image using LaTeX format."
        rows.append({"dataset": "kvv-fixture", "question": question, "question_type": kind,
                     "answer": [answer], "image": FixtureImage.of_text(shown), "id": i})
    features = _features([("dataset", STRING), ("question", STRING), ("question_type", STRING),
                          ("answer", {"feature": STRING, "_type": "Sequence"}), ("image", IMAGE), ("id", INT)])
    return FixtureDataset(dataset_id, "default", "test", features, rows, *UPSTREAM.get(dataset_id, (None, None)))


def mmmu_fixture(n: int = 30, dataset_id: str = MMMU_ID) -> FixtureDataset:
    """MMMU-Pro-like (standard, 10 options): `question` with `<image k>` placeholders, `options` as the
    Python-list string MMMU ships, `answer` a letter, `image_1`..`image_7` (1-2 set)."""
    rows = []
    for i in range(n):
        rng = _rng(dataset_id, i)
        a = rng.randint(2, 60)
        images = [FixtureImage.of_text(str(a))]
        if i % 3 == 0:
            b = rng.randint(2, 60)
            images.append(FixtureImage.of_text(str(b)))
            value = a + b
            question = "What is the sum of the number shown in <image 1> and the number shown in <image 2>?"
        else:
            k = rng.randint(2, 9)
            value = a * k
            question = f"<image 1> shows a number. What is that number multiplied by {k}?"
        choices = {value}
        while len(choices) < 10:
            choices.add(max(1, value + rng.randint(-15, 15)))
        options = sorted(choices)
        rng.shuffle(options)
        letter = "ABCDEFGHIJ"[options.index(value)]
        row: dict[str, Any] = {"id": f"test_Math_{i + 1}", "question": question,
                               "options": repr([str(o) for o in options]), "explanation": ""}
        for k in range(1, 8):
            row[f"image_{k}"] = images[k - 1] if k <= len(images) else None
        row.update({"img_type": "['Diagrams']", "answer": letter, "topic_difficulty": "Easy", "subject": "Math"})
        rows.append(row)
    features = _features([("id", STRING), ("question", STRING), ("options", STRING), ("explanation", STRING),
                          *((f"image_{k}", IMAGE) for k in range(1, 8)), ("img_type", STRING),
                          ("answer", STRING), ("topic_difficulty", STRING), ("subject", STRING)])
    return FixtureDataset(dataset_id, MMMU_CONFIG, "test", features, rows, *UPSTREAM.get(dataset_id, (None, None)))


def aime_fixture(n: int = 30, dataset_id: str = AIME_ID) -> FixtureDataset:
    """AIME-like: `problem` and `answer` (an integer 0-999, as a string like the real set's)."""
    rows = []
    for i in range(n):
        rng, template = _rng(dataset_id, i), i % 5
        if template == 0:
            a, b = rng.randint(2, 19), rng.randint(10, 99)
            problem, answer = f"Find the remainder when ${a}^{{{b}}}$ is divided by $1000$.", pow(a, b, 1000)
        elif template == 1:
            m = rng.randint(12, 240)
            problem = f"Find the sum of all positive divisors of ${m}$."
            answer = sum(d for d in range(1, m + 1) if m % d == 0)      # at most 744 for m <= 240
        elif template == 2:
            m, a, b = rng.randint(200, 999), rng.randint(2, 9), rng.randint(10, 19)
            lcm = a * b // math.gcd(a, b)
            problem = f"How many positive integers not exceeding ${m}$ are divisible by ${a}$ or by ${b}$?"
            answer = m // a + m // b - m // lcm
        elif template == 3:
            m = rng.randint(40, 400)
            problem = (f"Let $S$ be the sum of the squares of the first ${m}$ positive integers. "
                       "Find the remainder when $S$ is divided by $1000$.")
            answer = (m * (m + 1) * (2 * m + 1) // 6) % 1000
        else:
            x, y = rng.randint(20, 300), rng.randint(20, 300)
            problem = (f"Let $g$ be the greatest common divisor and $l$ the least common multiple of ${x}$ and "
                       f"${y}$. Find the remainder when $g + l$ is divided by $1000$.")
            answer = (math.gcd(x, y) + x * y // math.gcd(x, y)) % 1000
        rows.append({"problem": problem, "answer": str(answer), "id": i})
    features = _features([("problem", STRING), ("answer", STRING), ("id", INT)])
    return FixtureDataset(dataset_id, "default", "test", features, rows, *UPSTREAM.get(dataset_id, (None, None)))


@lru_cache(maxsize=None)
def fixtures() -> tuple[FixtureDataset, ...]:
    """The stand-in's built-in datasets (built once; deterministic)."""
    return ocrbench_fixture(), mmmu_fixture(), aime_fixture()


def fixture(dataset_id: str) -> FixtureDataset:
    """A built-in fixture by its id or the upstream id it stands in for; KeyError otherwise."""
    for item in fixtures():
        if dataset_id in (item.id, item.upstream):
            return item
    raise KeyError(dataset_id)


def gold(dataset_id: str, row: int) -> Any:
    """The gold answer of a fixture row, typed as kvv's record has it: OCRBench a list of strings,
    MMMU-Pro a letter, AIME an int."""
    from ..datasets import builtin_specs, validate_row

    item = fixture(dataset_id)
    cells = {k: v for k, v in item.rows[row].items() if not isinstance(v, FixtureImage)}
    spec = builtin_specs()[item.spec_key] if item.spec_key else None
    if spec is None:
        return cells.get("answer")
    return validate_row(spec, {**cells, **{k: True for k, v in item.rows[row].items() if isinstance(v, FixtureImage)}},
                        row).answer


@dataclass(frozen=True)
class ImageInfo:
    dataset: str
    row: int
    field: str
    text: str | None


@lru_cache(maxsize=None)
def image_index() -> dict[str, tuple[ImageInfo, ...]]:
    """sha256 of each built-in fixture image -> every cell that holds it and what it shows (the same
    text gives the same PNG): how a simulated model can tell an image it was sent intact from one
    dropped or altered on the way."""
    out: dict[str, list[ImageInfo]] = {}
    for item in fixtures():
        for index, row in enumerate(item.rows):
            for name, value in row.items():
                if isinstance(value, FixtureImage):
                    out.setdefault(hashlib.sha256(value.data).hexdigest(), []).append(
                        ImageInfo(item.id, index, name, value.text))
    return {k: tuple(v) for k, v in out.items()}


# -- the server ----------------------------------------------------------------------------------

@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(body, ensure_ascii=False).encode(), "application/json", headers or {})


class DatasetsServer:
    """The stand-in: `DatasetsServer().start()`, then `url` (http://127.0.0.1:PORT) is the viewer
    API's base URL (KVV_DATASETS_SERVER, config key datasets-server, --datasets-server)."""

    def __init__(self, datasets: Iterable[FixtureDataset] | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 upstream_ids: bool = True, token: str | None = None, expire_assets: str | None = None,
                 rate_limit: int = 0, retry_after: float | str = 1, server_errors: int = 0,
                 drop_fields: Iterable[tuple[str, int, str]] = (), mislabel_images: str | None = None,
                 separate_assets: bool = False):
        if expire_assets not in (None, "once", "always"):
            raise ValueError("expire_assets: None, 'once' or 'always'")
        self.datasets: dict[tuple[str, str, str], FixtureDataset] = {}
        for item in fixtures() if datasets is None else datasets:
            self.datasets[(item.id, item.config, item.split)] = item
            if upstream_ids and item.upstream:
                self.datasets.setdefault((item.upstream, item.config, item.split), item)
        self.token, self.expire_assets = token, expire_assets
        self.rate_limit, self.retry_after, self.server_errors = rate_limit, retry_after, server_errors
        self.drop_fields = {(d, int(r), f) for d, r, f in drop_fields}
        self.mislabel_images = mislabel_images
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._served: dict[tuple[str, str, str, int], int] = {}
        self._signatures: dict[str, bool] = {}
        self._http = _HTTPServer((host, port), self)
        self._assets = _HTTPServer((host, 0), self) if separate_assets else None
        self._threads: list[threading.Thread] = []

    @staticmethod
    def _base(http: _HTTPServer) -> str:
        host, port = http.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self._base(self._http)

    @property
    def assets_url(self) -> str:
        return self._base(self._assets or self._http)

    def start(self) -> DatasetsServer:
        if not self._threads:
            for http in filter(None, (self._http, self._assets)):
                thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.01},
                                          name="kvv-datasets-server", daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self) -> None:
        for http in filter(None, (self._http, self._assets)):
            if self._threads:
                http.shutdown()
            http.close()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def serve_forever(self) -> None:
        """Serve in this thread (the assets port, if separate, in a daemon thread) until interrupted."""
        if self._assets is not None:
            thread = threading.Thread(target=self._assets.serve_forever, name="kvv-datasets-assets", daemon=True)
            thread.start()
        try:
            self._http.serve_forever()
        finally:
            self._http.close()
            if self._assets is not None:
                self._assets.shutdown()
                self._assets.close()

    def __enter__(self) -> DatasetsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- requests ----------------------------------------------------------------------------

    def handle(self, method: str, target: str, authorization: str | None) -> _Reply:
        reply = self._route(method, target, authorization)
        with self._lock:
            self.log.append({"method": method, "path": target, "authorization": authorization,
                             "status": reply.status})
        return reply

    def _route(self, method: str, target: str, authorization: str | None) -> _Reply:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if method != "GET":
            return _json(405, {"error": "Method not allowed"})
        if parts.path == "/healthcheck":
            return _Reply(200, b"ok", "text/plain")
        with self._lock:
            if self.rate_limit > 0:
                self.rate_limit -= 1
                return _json(429, {"error": "Too many requests"}, {"Retry-After": str(self.retry_after)})
            if self.server_errors > 0:
                self.server_errors -= 1
                return _json(503, {"error": "The server is busy."})
        if parts.path.startswith("/assets/"):
            return self._asset(parts.path, query)
        if self.token is not None and authorization != f"Bearer {self.token}":
            return _json(401, {"error": "The dataset does not exist, or is not accessible without authentication "
                                        "(private or gated). Please check the spelling of the dataset name or "
                                        "retry with authentication."})
        if parts.path == "/rows":
            return self._rows(query)
        if parts.path == "/splits":
            found = [{"dataset": d, "config": c, "split": s} for (d, c, s) in self.datasets
                     if d == query.get("dataset")]
            return _json(200, {"splits": found, "pending": [], "failed": []}) if found else self._not_found()
        return _json(404, {"error": "Not found."})

    def _not_found(self) -> _Reply:
        return _json(404, {"error": "The dataset does not exist, or is not accessible without authentication "
                                    "(private or gated). Please check the spelling of the dataset name or retry "
                                    "with authentication."})

    def _rows(self, query: dict[str, str]) -> _Reply:
        missing = [p for p in ("dataset", "config", "split") if not query.get(p)]
        if missing:
            return _json(422, {"error": f"Parameter '{missing[0]}' is required"})
        try:
            offset, length = int(query.get("offset", "0")), int(query.get("length", str(PAGE_ROWS)))
        except ValueError:
            return _json(422, {"error": "Parameters 'offset' and 'length' must be integers"})
        if offset < 0:
            return _json(422, {"error": "Parameter 'offset' must be positive"})
        if length < 0 or length > PAGE_ROWS:
            return _json(422, {"error": f"Parameter 'length' must not be greater than {PAGE_ROWS}"})
        key = (query["dataset"], query["config"], query["split"])
        item = self.datasets.get(key)
        if item is None:
            if any(d == key[0] for d, _, _ in self.datasets):
                return _json(404, {"error": "The config or the split does not exist in the dataset"})
            return self._not_found()
        with self._lock:
            served = self._served[(*key, offset)] = self._served.get((*key, offset), 0) + 1
        valid = not (self.expire_assets == "always" or (self.expire_assets == "once" and served == 1))
        rows = []
        for index in range(offset, min(offset + length, len(item.rows))):
            row = {}
            for name, value in item.rows[index].items():
                if (key[0], index, name) in self.drop_fields:
                    continue
                row[name] = self._cell(key, index, name, value, valid, served) if isinstance(value, FixtureImage) \
                    else value
            rows.append({"row_idx": index, "row": row, "truncated_cells": []})
        return _json(200, {"features": item.features, "rows": rows, "num_rows_total": len(item.rows),
                           "num_rows_per_page": PAGE_ROWS, "partial": False})

    def _cell(self, key: tuple[str, str, str], index: int, name: str, image: FixtureImage, valid: bool,
              served: int) -> dict[str, Any]:
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}.get(image.mime, "bin")
        signature = hashlib.sha256(f"{key}:{index}:{name}:{served}".encode()).hexdigest()[:32]
        with self._lock:
            self._signatures[signature] = valid
        path = "/".join(quote(p, safe="") for p in (*key, str(index), name))
        src = f"{self.assets_url}/assets/{path}/image.{ext}?Expires=4102444800&Signature={signature}&Key-Pair-Id=KVV"
        return {"src": src, "height": image.height, "width": image.width}

    def _asset(self, path: str, query: dict[str, str]) -> _Reply:
        from urllib.parse import unquote

        parts = path.removeprefix("/assets/").split("/")
        expired = _Reply(403, b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
                              b"<Message>Request has expired</Message></Error>", "application/xml")
        with self._lock:
            valid = self._signatures.get(query.get("Signature", ""))
        if not valid:
            return expired
        try:
            dataset, config, split, index, name = (unquote(p) for p in parts[:5])
            image = self.datasets[(dataset, config, split)].rows[int(index)][name]
        except (ValueError, KeyError, IndexError):
            return _Reply(404, b"Not Found", "text/plain")
        if not isinstance(image, FixtureImage):
            return _Reply(404, b"Not Found", "text/plain")
        return _Reply(200, image.data, self.mislabel_images or image.mime)


class _HTTPServer(LoopbackServer):
    def __init__(self, address: tuple[str, int], stand_in: DatasetsServer):
        self.stand_in = stand_in
        super().__init__(address, _Handler)


class _Handler(TrackedHandler):
    server: _HTTPServer

    def do_GET(self) -> None:
        reply = self.server.stand_in.handle("GET", self.path, self.headers.get("Authorization"))
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

