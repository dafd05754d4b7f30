"""The simulated model reading the image-ladder probe's images (kvv.checks.image_ladder).

It really reads them: each data URL is decoded as a PNG (inflate, then the five PNG row
filters undone), the vendor's image pipeline is applied (the faults below), and the text is
read back by segmenting lines and glyphs and template-matching each glyph, normalised to the
font's grid, against kvv's own font (kvv/data/font.txt). A glyph too small or too blurred to
match one template clearly is misread as the next best one, so under a downscale reading
stops at small glyphs by itself, not by a rule about sizes.

Recognising the probe: its system message (image_ladder.SYSTEM), then one user message of
text and image parts. The answer is one line per image, in order; without an image the model
says it sees none.

Faults (faults.yaml):
  image-dropped        the images never reach the model: it answers as if there were none;
  image-downscale=F    every image box-filtered to F times its size before the model sees it;
  image-max-width=W    images wider than W pixels shrunk (box filter) to W wide, as a vendor
                       capping resolution does: wide images lose their small print.
"""

from __future__ import annotations

import base64
import binascii
import math
import random
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from ..checks.image_ladder import SYSTEM
from ..render import PNG_SIGNATURE, Font, font
from .text import Answer, prose
from .tokenizer import pieces

NO_IMAGE = "I don't see an image in your message. Could you attach it?"
NO_TEXT = "I can't make out any text in this image."
INK_LEVEL = 0.5            # share of ink that makes a pixel count as ink when segmenting
# Mean absolute difference between a glyph and its best template (0 same, 1 opposite) beyond
# which the glyph is not made out: it is misread as the runner-up.
MAX_DISTANCE = 0.22


class PNGError(ValueError):
    """Bytes that are not a PNG this reader decodes."""


@dataclass(frozen=True)
class Gray:
    """A decoded image as 8-bit gray rows (0 black, 255 white)."""

    width: int
    height: int
    rows: tuple[bytes, ...]


# -- decoding ------------------------------------------------------------------------------------

CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}      # color type -> samples per pixel (8-bit only)


def decode_png(data: bytes) -> Gray:
    """A PNG's pixels as gray rows: 8-bit gray, gray+alpha, RGB or RGBA, not interlaced."""
    if not data.startswith(PNG_SIGNATURE):
        raise PNGError("not a PNG (bad signature)")
    position, header, idat = len(PNG_SIGNATURE), None, []
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if len(body) != length:
            raise PNGError(f"truncated {kind!r} chunk")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        position += 12 + length
    if header is None or not idat:
        raise PNGError("no IHDR or no IDAT chunk")
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in CHANNELS or interlace:
        raise PNGError(f"unsupported PNG (bit depth {depth}, color type {color}, interlace {interlace})")
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise PNGError(f"image data does not inflate: {exc}") from None
    bpp = CHANNELS[color]
    stride = width * bpp
    if len(raw) < height * (stride + 1):
        raise PNGError("image data shorter than its header says")
    rows, previous = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = unfilter(raw[start], raw[start + 1:start + 1 + stride], previous, bpp)
        rows.append(row)
        previous = row
    return Gray(width, height, tuple(_gray(row, color) for row in rows))


def unfilter(kind: int, line: bytes, previous: bytes, bpp: int) -> bytes:
    """One scanline with its PNG filter (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) undone."""
    if kind == 0:
        return bytes(line)
    out = bytearray(line)
    for i in range(len(out)):
        left = out[i - bpp] if i >= bpp else 0
        up = previous[i]
        if kind == 1:
            predicted = left
        elif kind == 2:
            predicted = up
        elif kind == 3:
            predicted = (left + up) // 2
        elif kind == 4:
            corner = previous[i - bpp] if i >= bpp else 0
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            predicted = left if pa <= pb and pa <= pc else up if pb <= pc else corner
        else:
            raise PNGError(f"unknown filter type {kind}")
        out[i] = (out[i] + predicted) & 0xFF
    return bytes(out)


def _gray(row: bytes, color: int) -> bytes:
    if color == 0:
        return row
    if color == 4:
        return row[0::2]          # gray + alpha: the gray (kvv's probe never sends transparency)
    step = CHANNELS[color]
    return bytes((r + g + b) // 3 for r, g, b in zip(row[0::step], row[1::step], row[2::step], strict=False))


def image_of(url: str) -> Gray:
    """The image of a base64 data URL."""
    head, comma, payload = url.partition(",")
    if not url.startswith("data:") or not comma or not head.endswith(";base64"):
        raise PNGError("not a base64 data URL (the simulator fetches nothing)")
    try:
        return decode_png(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise PNGError(str(exc)) from None


# -- what the vendor does to the image -----------------------------------------------------------

def ink(image: Gray, scale: float = 1.0) -> list[list[float]]:
    """The image's inked region as ink shares in [0, 1], box-filtered to `scale` times its size
    first (only the region around the ink is computed: paper stays paper)."""
    top = next((y for y, row in enumerate(image.rows) if row.count(255) != image.width), None)
    if top is None:
        return []
    bottom = max(y for y, row in enumerate(image.rows) if row.count(255) != image.width) + 1
    rows = image.rows[top:bottom]
    left = min(len(row) - len(row.lstrip(b"\xff")) for row in rows)
    right = max(len(row.rstrip(b"\xff")) for row in rows)
    if scale >= 1.0:
        return [[(255 - v) / 255 for v in row[left:right]] for row in rows]
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    xs = _boxes(image.width, width, left, right)
    ys = _boxes(image.height, height, top, bottom)
    # Separable box filter: across each source row, then down each output column.
    across = {y: [sum(255 - v for v in image.rows[y][a:b]) / (b - a) for a, b in xs]
              for y in range(ys[0][0], ys[-1][1])}
    return [[sum(across[y][k] for y in range(a, b)) / (b - a) / 255 for k in range(len(xs))] for a, b in ys]


def _boxes(size: int, scaled: int, start: int, end: int) -> list[tuple[int, int]]:
    """The source ranges of the output pixels that cover source pixels [start, end)."""
    boxes = []
    for out in range(start * scaled // size, min(scaled, (end - 1) * scaled // size + 1)):
        a = out * size // scaled
        boxes.append((a, max(a + 1, (out + 1) * size // scaled)))
    return boxes


# -- reading -------------------------------------------------------------------------------------

def read(grid: list[list[float]], f: Font | None = None) -> str:
    """The text in an ink grid: lines top to bottom, glyphs left to right."""
    f = f or font()
    inked = [[v >= INK_LEVEL for v in row] for row in grid]
    text = []
    for y0, y1 in _runs([any(row) for row in inked]):
        height = y1 - y0
        columns = [any(inked[y][x] for y in range(y0, y1)) for x in range(len(grid[0]))]
        pitch = height * (f.width + 1) / f.height        # a glyph and the gap after it, as drawn
        for x0, x1 in _runs(columns):
            # Glyphs blurred into one another: split the run by the width a glyph should have.
            count = max(1, round((x1 - x0 + height / f.height) / pitch))
            for k in range(count):
                a, b = x0 + (x1 - x0) * k // count, x0 + (x1 - x0) * (k + 1) // count
                text.append(_match(_cells(grid, a, max(b, a + 1), y0, y1, f), f))
    return "".join(text)


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, flag in enumerate(flags + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _cells(grid: list[list[float]], x0: int, x1: int, y0: int, y1: int, f: Font) -> list[float]:
    """The glyph's region sampled onto the font's grid (rows, then columns): each cell the mean
    ink of the middle half of its area (at least the pixel under its centre), so the edges a
    scaling blurs into the neighbouring cell do not count twice."""
    def span(start: int, end: int, k: int, cells: int) -> range:
        size = (end - start) / cells
        centre = start + (k + 0.5) * size
        # pixels whose centres (y + 0.5) fall within a quarter cell of the cell's centre
        low, high = math.ceil(centre - size / 4 - 0.5), math.floor(centre + size / 4 - 0.5) + 1
        if high <= low:
            low, high = math.floor(centre), math.floor(centre) + 1
        return range(max(start, low), min(end, high))
    cells = []
    for r in range(f.height):
        ys = span(y0, y1, r, f.height)
        for c in range(f.width):
            values = [grid[y][x] for y in ys for x in span(x0, x1, c, f.width)]
            cells.append(sum(values) / len(values) if values else 0.0)
    return cells


def _match(cells: list[float], f: Font) -> str:
    ranked = sorted((sum(abs(v - (ch == "#")) for v, ch in zip(cells, "".join(rows), strict=False)) / len(cells), char)
                    for char, rows in f.glyphs.items())
    (best, char), (_, runner_up) = ranked[0], ranked[1]
    return char if best <= MAX_DISTANCE else runner_up


# -- the replier ---------------------------------------------------------------------------------

def probe_images(body: dict[str, Any]) -> list[str] | None:
    """The image URLs of an image-ladder request, in order; None if `body` is not one."""
    if body.get("tools") is not None:
        return None
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) != 2 or not all(isinstance(m, dict) for m in messages):
        return None
    system, user = messages
    if system.get("role") != "system" or system.get("content") != SYSTEM or user.get("role") != "user":
        return None
    content = user.get("content")
    if isinstance(content, str):
        return []
    if not isinstance(content, list):
        return None
    urls = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url" and isinstance(part.get("image_url"), dict):
            urls.append(str(part["image_url"].get("url", "")))
    return urls


class Replier:
    def __init__(self, profile: Any, faults: dict[str, Any], seed: int):
        self.faults = faults
        self.seed = seed

    def reply(self, body: dict[str, Any], *, thinking: bool, draw: str) -> tuple[Answer, set[str]] | None:
        urls = probe_images(body)
        if urls is None:
            return None
        applied: set[str] = set()
        if urls and "image-dropped" in self.faults:
            applied.add("image-dropped")
            urls = []
        text = "\n".join(self._read(url, applied) for url in urls) if urls else NO_IMAGE
        rng = random.Random(f"{self.seed}:ocr:{draw}")
        reasoning = prose(rng, rng.randint(20, 60)) if thinking else ()
        return Answer(reasoning, pieces(text)), applied

    def _read(self, url: str, applied: set[str]) -> str:
        try:
            image = image_of(url)
        except PNGError as exc:
            return f"I can't open this image ({exc})."
        scale = 1.0
        if "image-downscale" in self.faults and float(self.faults["image-downscale"]) < 1.0:
            scale *= max(float(self.faults["image-downscale"]), 1e-3)
            applied.add("image-downscale")
        cap = self.faults.get("image-max-width")
        if cap is not None and image.width > cap:
            scale *= cap / image.width
            applied.add("image-max-width")
        return read(ink(image, scale)) or NO_TEXT
