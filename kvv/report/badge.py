"""Badges of a run, rendered from results.json (github-action.md §3).

Three renderings of one (label, message, colour):
- `render_json`: a shields.io endpoint document (badge.json), for users who publish it and
  point `https://img.shields.io/endpoint?url=…` at it (README badges);
- `render_svg`: a self-contained flat SVG (badge.svg), for hosting without shields.io;
- `markdown`: a static shields.io image URL, for the job summary and PR comments: GitHub strips
  `data:` images, so an SVG kvv made cannot be inlined there, while camo proxies shields' own.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import PurePath
from urllib.parse import quote
from xml.etree import ElementTree as ET

from ..verdict import ERROR, FAIL, INCONCLUSIVE, PASS

COLORS = {PASS: "brightgreen", FAIL: "red", INCONCLUSIVE: "lightgrey", ERROR: "orange"}
# shields' own hex values for those names (badge-maker's colour scheme), so the SVG matches.
HEX = {"brightgreen": "#4c1", "red": "#e05d44", "lightgrey": "#9f9f9f", "orange": "#fe7d37", "grey": "#555"}
LABEL_COLOR = "grey"
CACHE_SECONDS = 300            # shields.io's minimum: a nightly run's badge shows within minutes
STATIC_URL = "https://img.shields.io/badge/"
# The keys shields.io's endpoint accepts (it rejects a document with any other key).
ENDPOINT_KEYS = ("schemaVersion", "label", "message", "color", "labelColor", "isError", "namedLogo",
                 "logoSvg", "logoColor", "logoWidth", "style", "cacheSeconds")

# Verdana's advance widths in font units (2048 per em), the font shields' flat badges are set in.
# A badge must be sized without the font at hand; 11 px text is units * 11 / 2048 pixels.
_UNITS_PER_EM = 2048
_FONT_PX = 11
_VERDANA = {
    550: "'", 562: "il", 705: "j", 720: " f", 745: ",.·", 806: "!", 807: "t", 862: "I", 874: "r",
    930: "()-/:;[\\]|", 931: "J", 940: '"', 1067: "cs", 1076: "z", 1117: "?", 1140: "L", 1177: "F",
    1212: "kvxy", 1220: "e", 1230: "a", 1235: "P", 1243: "o", 1260: "Y", 1262: "T", 1276: "bdgpq",
    1295: "E", 1296: "hnu", 1300: "{}", 1302: "$*0123456789_`", 1400: "ASV", 1403: "XZ", 1404: "B",
    1419: "K", 1424: "R", 1430: "C", 1488: "&", 1499: "U", 1532: "N", 1539: "H", 1578: "D", 1588: "G",
    1612: "OQ", 1676: "#+<=>^w~±", 1726: "M", 1992: "m", 2025: "W", 2048: "@—", 2204: "%",
}
_WIDTHS = {char: units for units, chars in _VERDANA.items() for char in chars}
_WIDE = 2048                    # anything else (CJK, emoji, …): a full em, so the text still fits
_PADDING = 5                    # px each side of a text, as shields draws it
# XML 1.0 forbids other code points even as references (the same rule as junit.py's).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def badge(results: dict) -> dict[str, str]:
    """{"label", "message", "color"} for the run: `kvv · kimi-k3`, `22/22 pass`, brightgreen."""
    checks = results.get("checks", [])
    verdict = results.get("verdict", ERROR)
    count = {v: sum(c.get("verdict") == v for c in checks) for v in (PASS, FAIL, INCONCLUSIVE, ERROR)}
    ran = len(checks)
    if results.get("complete") is False or results.get("stopped"):
        # planned = what ran (perhaps partly) + what the stop kept from starting
        stopped_first = sum(1 for e in results.get("not_run", []) if e.get("reason") == "the run stopped first")
        # finished: every planned item judged (an item the stop kept from starting is an error)
        finished = sum(1 for c in checks if c.get("stopped_early")
                       or (c.get("n", 0) >= c.get("planned", c.get("n", 0)) and not c.get("errored")))
        message = f"stopped · {finished}/{ran + stopped_first}"
        if count[FAIL]:
            message += f" · {count[FAIL]} fail"
    elif not checks:
        message = "no checks ran"
    elif verdict == PASS:
        message = f"{count[PASS]}/{ran} pass"
    else:
        message = f"{count.get(verdict, 0)}/{ran} {verdict}"
    return {"label": f"kvv · {_profile(results)}", "message": message,
            "color": COLORS.get(verdict, COLORS[ERROR])}


def render_json(results: dict) -> str:
    """The shields.io endpoint document: only its documented keys, the same bytes for the same results."""
    b = badge(results)
    document = {"schemaVersion": 1, "label": _one_line(b["label"]), "message": _one_line(b["message"]),
                "color": b["color"], "labelColor": LABEL_COLOR,
                "isError": results.get("verdict") == ERROR, "cacheSeconds": CACHE_SECONDS}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def markdown(results: dict) -> str:
    """One markdown line: the static shields.io badge, alt text `label | message`."""
    b = badge(results)
    label, message = _one_line(b["label"]), _one_line(b["message"])
    url = STATIC_URL + "-".join(_static_part(p) for p in (label, message, b["color"]))
    return f"![{_alt(label)} | {_alt(message)}]({url})"


def render_svg(results: dict) -> str:
    """A flat badge as a self-contained SVG: no fonts, links or scripts; only in-document url(#…)."""
    b = badge(results)
    label, message = _one_line(b["label"]), _one_line(b["message"])
    title = f"{label}: {message}"
    label_w, message_w = _text_width(label), _text_width(message)
    left, right = label_w + 2 * _PADDING, message_w + 2 * _PADDING
    width = left + right

    svg = ET.Element("svg", {"xmlns": "http://www.w3.org/2000/svg", "width": str(width), "height": "20",
                             "role": "img", "aria-label": title})
    ET.SubElement(svg, "title").text = title
    gradient = ET.SubElement(svg, "linearGradient", {"id": "s", "x2": "0", "y2": "100%"})
    ET.SubElement(gradient, "stop", {"offset": "0", "stop-color": "#bbb", "stop-opacity": ".1"})
    ET.SubElement(gradient, "stop", {"offset": "1", "stop-opacity": ".1"})
    clip = ET.SubElement(svg, "clipPath", {"id": "r"})
    ET.SubElement(clip, "rect", {"width": str(width), "height": "20", "rx": "3", "fill": "#fff"})
    shapes = ET.SubElement(svg, "g", {"clip-path": "url(#r)"})
    ET.SubElement(shapes, "rect", {"width": str(left), "height": "20", "fill": HEX[LABEL_COLOR]})
    ET.SubElement(shapes, "rect", {"x": str(left), "width": str(right), "height": "20",
                                   "fill": HEX.get(b["color"], HEX["lightgrey"])})
    ET.SubElement(shapes, "rect", {"width": str(width), "height": "20", "fill": "url(#s)"})
    texts = ET.SubElement(svg, "g", {"fill": "#fff", "text-anchor": "middle",
                                     "font-family": "Verdana,Geneva,DejaVu Sans,sans-serif",
                                     "text-rendering": "geometricPrecision", "font-size": str(_FONT_PX)})
    for text, centre, text_w in ((label, left / 2, label_w), (message, left + right / 2, message_w)):
        # a dark copy one pixel lower is the flat style's shadow; textLength squeezes the text
        # into the box should the viewer's font run wider than Verdana
        common = {"x": _num(centre), "textLength": str(text_w)}
        ET.SubElement(texts, "text", {"aria-hidden": "true", **common, "y": "15", "fill": "#010101",
                                      "fill-opacity": ".3"}).text = text
        ET.SubElement(texts, "text", {**common, "y": "14"}).text = text
    return ET.tostring(svg, encoding="unicode") + "\n"


def _profile(results: dict) -> str:
    """The profile's id; a profile file given by path is named by its stem (`my-model.yaml` -> my-model)."""
    profile = str((results.get("target") or {}).get("profile") or "?")
    if profile.endswith((".yaml", ".yml")):
        return PurePath(profile.replace("\\", "/")).stem
    return profile


def _one_line(text: str) -> str:
    """Single-line text XML can hold: forbidden characters become U+FFFD, whitespace runs one space."""
    return " ".join(_NOT_XML.sub("\ufffd", str(text)).split())


def _text_width(text: str) -> int:
    units = sum(_WIDTHS.get(char, _WIDE) for char in text)
    return math.ceil(units * _FONT_PX / _UNITS_PER_EM)


def _num(value: float) -> str:
    return f"{value:g}"


def _static_part(text: str) -> str:
    """A path segment of a static shields badge: `-` and `_` doubled (single ones are separators
    and spaces), then everything but letters and digits percent-encoded (a space is %20)."""
    return quote(text.replace("-", "--").replace("_", "__"), safe="")


def _alt(text: str) -> str:
    """Alt text that cannot end the image, open a link or HTML, or @mention anyone."""
    text = re.sub(r"([\\`*\[\]<>|!])", r"\\\1", text)
    return re.sub(r"(?<![\w@])@(?=[\w-])", "@\u200b", text)
