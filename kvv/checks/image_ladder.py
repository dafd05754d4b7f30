"""The image-ladder probe: can the deployment read text kvv drew itself, at shrinking sizes?

kvv renders random codes (8 characters of consonants and digits: no words, nothing memorised)
into PNG images (kvv.render, stdlib only) and asks for them back, exact match. The rungs are
glyph heights, largest first (e.g. 48, 32, 24, 16, 12, 8 px), each rung's items spread over
image widths (256 to 2048 px), then a rung of requests carrying several images at once, each
with its own code, answered in order. A vendor that drops images fails every rung; one that
shrinks them fails from the glyph size where the print becomes too small, and the report names
it; one that caps the resolution of wide images shows in the per-width rates.

A control sends the same question without the image: it must not get the code back. If it
does, the answers cannot be coming from the image (a finding, whatever the rates say).

Requests go in non-thinking mode where the profile can switch (reading needs no reasoning and
costs less), with a small max_tokens per code. Only for profiles whose model reads images
(`features.vision: true`), or with the check's `vision: true` option.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

from .. import render
from ..errors import ConfigError
from ..exchange import Exchange
from ..verdict import ERROR, FAIL, PASS
from . import ladder
from .base import Context, Item, NotApplicable, Outcome, Send, answer_problem, transport_problem

PROBE = "image-ladder"
SYSTEM = "You transcribe text from images exactly. Reply with the text only."
ONE = ("The image shows a code of {n} capital letters and digits, perhaps wrapped over several lines. "
       "Reply with the code exactly as written, without spaces, and nothing else.")
MANY = ("Each of the {k} images shows a code of {n} capital letters and digits. Reply with the {k} codes "
        "in the order the images are given, one per line, without spaces, and nothing else.")
DEFAULT_HEIGHTS = [48, 32, 24, 16, 12, 8]
DEFAULT_WIDTHS = [256, 512, 1024, 2048]
CODE_LENGTH = 8
IMAGES_PER_REQUEST = 3           # the multi-image rung
TOKENS_PER_CODE = 64             # non-thinking: a code is ~3-8 tokens; room for a polite sentence
THINKING_TOKENS_PER_CODE = 2048  # a thinking-only model reasons before it answers
PATCH_PX = 28                    # prompt-token estimate for the plan: one token per 28×28 patch (Kimi-VL-like)
TEXT_TOKENS = 80                 # the system message and the question
OPTIONS = {"glyph-heights": [], "image-widths": [], "vision": False, "seed": 0}


def rungs_of(ctx: Context) -> list[ladder.Rung]:
    heights = sorted(set(ladder.sizes(ctx, PROBE, "glyph-heights", DEFAULT_HEIGHTS)), reverse=True)
    return [ladder.Rung(f"{h} px glyphs", h) for h in heights] + [ladder.Rung(_multi_label(), IMAGES_PER_REQUEST)]


def _multi_label() -> str:
    return f"{IMAGES_PER_REQUEST} images"


def _widths(ctx: Context) -> list[int]:
    return ladder.sizes(ctx, PROBE, "image-widths", DEFAULT_WIDTHS)


def _mode(ctx: Context) -> str:
    return "non-thinking" if "non-thinking" in ctx.modes() else ctx.profile.default_mode


def _max_tokens(ctx: Context, mode: str, codes: int) -> int:
    per_code = TOKENS_PER_CODE if mode == "non-thinking" else THINKING_TOKENS_PER_CODE
    limit = (ctx.profile.limits or {}).get("output-tokens")
    return min(per_code * codes, limit) if isinstance(limit, int) and limit > 0 else per_code * codes


def build(ctx: Context) -> list[Item]:
    if not (ctx.profile.feature("vision") or ctx.options.get("vision")):
        raise NotApplicable(f"profile {ctx.profile.id} does not say its model reads images: a profile with "
                            f"`features.vision: true`, or the option `checks.{PROBE}.vision: true`, enables it")
    rungs, widths = rungs_of(ctx), _widths(ctx)
    heights = [r.size for r in rungs[:-1]]
    _fits(ctx, heights, widths)
    mode, seed = _mode(ctx), ctx.options.get("seed") or ctx.seed
    sends = 2 if ctx.reference else 1
    per_rung = []
    for rung in rungs:
        multi = rung.label == _multi_label()
        height, count = (max(heights), IMAGES_PER_REQUEST) if multi else (rung.size, 1)
        max_tokens = _max_tokens(ctx, mode, count)
        items = []
        for k in range(ladder.items_per_rung(ctx, PROBE)):
            width = widths[k % len(widths)]
            item_id = f"{rung.label}, {width} px wide, item {k + 1}"
            rng = random.Random(f"{seed}:{PROBE}:{item_id}")
            codes = [render.random_text(rng, CODE_LENGTH) for _ in range(count)]
            spec = {"codes": codes, "glyph_px": height, "width": width, "max_tokens": max_tokens, "mode": mode,
                    "layout_seed": f"{seed}:{PROBE}:{item_id}:layout", "font": render.font().digest}
            items.append(Item(item_id, [], mode=mode, token_ceiling=max_tokens * sends, run=_reading(ctx, rung, spec),
                              request_count=sends, expects=spec, rung=rung.label,
                              prompt_tokens=_prompt_tokens(height, width, count) * sends))
        per_rung.append(items)
    # The control goes first: it runs even when the rungs settle early.
    first = per_rung[0][0].expects
    control_spec = {**first, "control": True}
    control = Item("control: the question without the image", [], mode=mode, token_ceiling=first["max_tokens"],
                   run=_control(ctx, control_spec), request_count=1, expects=control_spec, prompt_tokens=TEXT_TOKENS)
    return [control, *ladder.interleaved(per_rung)]


def _fits(ctx: Context, heights: list[int], widths: list[int]) -> None:
    """Every glyph height fits every width (and the font): bad settings exit 2 before anything is sent."""
    for height in heights:
        for width in widths:
            try:
                render.Layout.of(height, width)
            except ValueError as exc:
                field = "glyph-heights" if height < render.font().height else "image-widths"
                named = ctx.options.get(field)
                raise ConfigError(f"{exc}", source="config" if named else ctx.profile.path,
                                  path=f"checks.{PROBE}.{field}" if named else f"probes.{PROBE}.{field}") from None


def _prompt_tokens(height: int, width: int, count: int) -> int:
    layout = render.Layout.of(height, width)
    _, block_h = layout.size("X" * CODE_LENGTH)
    canvas_h = max(width // 4, block_h + 2 * layout.margin)
    return TEXT_TOKENS + count * math.ceil(width / PATCH_PX) * math.ceil(canvas_h / PATCH_PX)


def request(ctx: Context, spec: dict[str, Any], *, with_images: bool = True) -> dict[str, Any]:
    """The chat request for `spec`: the system message, the image(s), then the question."""
    codes = spec["codes"]
    question = ONE.format(n=CODE_LENGTH) if len(codes) == 1 else MANY.format(k=len(codes), n=CODE_LENGTH)
    parts: list[dict[str, Any]] = []
    if with_images:
        rng = random.Random(spec["layout_seed"])
        for code in codes:
            image = render.render(code, spec["glyph_px"], spec["width"], rng)
            parts.append({"type": "image_url", "image_url": {"url": render.data_url(render.encode_png(image))}})
    parts.append({"type": "text", "text": question})
    body = ctx.body(spec["mode"], max_tokens=spec["max_tokens"])
    body["messages"] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": parts}]
    return body


def normalised(text: str) -> str:
    """What an answer is compared as: no whitespace, no quotes or final full stop, upper case."""
    return re.sub(r"\s+", "", text).strip("`'\".").upper()


def _read_back(text: str, count: int) -> list[str]:
    if count == 1:
        return [normalised(text)]
    return [normalised(line) for line in text.splitlines() if normalised(line)]


def _scored(ex: Exchange, codes: list[str]) -> tuple[float | None, dict[str, Any]]:
    """(1.0 every code right / 0.0 not / None unknown, the answer's facts)."""
    problem = transport_problem(ex)
    if problem is not None and problem.verdict == ERROR:
        return None, {"score": None}
    unanswered = answer_problem(ex) if problem is None else problem.message
    text = (ex.message.content or "") if unanswered is None and ex.message else ""
    read = _read_back(text, len(codes))
    usage = ex.usage or {}
    data: dict[str, Any] = {"score": 1.0 if read == codes and unanswered is None else 0.0, "answered": text[:200],
                            "completion_tokens": usage.get("completion_tokens"), "finish_reason": ex.finish_reason}
    if unanswered is not None:
        data["no_answer"] = unanswered
    return data["score"], data


def _reading(ctx: Context, rung: ladder.Rung, spec: dict[str, Any]):
    async def run(send: Send) -> Outcome:
        vendor, reference = await ladder.sent(send, request(ctx, spec), ctx)
        facts = {"rung": rung.label, "glyph_px": spec["glyph_px"], "width": spec["width"],
                 "images": len(spec["codes"]), "expected": " ".join(spec["codes"])}
        theirs = None
        if reference is not None:
            theirs, _ = _scored(reference, spec["codes"])
            if theirs is None:
                return Outcome(ERROR, f"reference endpoint: {_trouble(reference)}", reference,
                               {**facts, "score": None, "reference_score": None})
        ours, data = _scored(vendor, spec["codes"])
        data = {**facts, **data, "reference_score": theirs}
        where = f"{rung.label}, {spec['width']} px wide"
        if ours is None:
            return Outcome(ERROR, f"{where}: {_trouble(vendor)}", vendor, data)
        if data.get("no_answer"):
            return Outcome(FAIL, f"{where}: no answer: {data['no_answer']}", vendor, data)
        if ours:
            message = f"{where}: read {data['expected']!r} right"
        else:
            message = (f"{where}: answered {data['answered'][:80]!r} for {data['expected']!r} "
                       f"(finish_reason {vendor.finish_reason})")
        if theirs is not None:
            message += f"; the reference was {'right' if theirs else 'wrong'}"
        return Outcome(PASS if ours else FAIL, message, vendor, data)
    return run


def _control(ctx: Context, spec: dict[str, Any]):
    async def run(send: Send) -> Outcome:
        ex = await send(request(ctx, spec, with_images=False))
        code = spec["codes"][0]
        data: dict[str, Any] = {"rung": "control", "score": None, "control": True, "expected": code}
        problem = transport_problem(ex)
        if problem is not None and problem.verdict == ERROR:
            return Outcome(ERROR, f"control: {problem.message}", ex, data)
        unanswered = answer_problem(ex) if problem is None else problem.message
        text = (ex.message.content or "") if unanswered is None and ex.message else ""
        data.update(answered=text[:200], got_code=code in normalised(text), no_answer=unanswered)
        if data["got_code"]:
            return Outcome(FAIL, f"control: the question without the image was answered with the code {code!r}",
                           ex, data)
        if unanswered is not None:      # a refusal to answer without an image is fine: it is not the code
            return Outcome(PASS, f"control: no answer without the image ({unanswered})", ex, data)
        return Outcome(PASS, f"control: without the image the answer is {text[:60]!r}, not the code", ex, data)
    return run


def _trouble(ex: Exchange) -> str:
    problem = transport_problem(ex)
    return problem.message if problem is not None else "no answer"


# -- the probe's reading of its records ------------------------------------------------------------

def describe(records: list[dict[str, Any]], ctx: Context, broken: ladder.Rung | None) -> tuple[dict[str, Any], str]:
    """Per-width rates, the glyph size where reading stops, and the control."""
    data = [r.get("data") or {} for r in records]
    scored = [d for d in data if not d.get("control") and d.get("score") is not None]
    single = [d for d in scored if d.get("images") == 1]
    details: dict[str, Any] = {"by_width": _rates(single, "width"), "control": _control_facts(data)}
    rungs = rungs_of(ctx)
    tests = ladder._Tests(ctx, PROBE, rungs)
    tests.feed(records)
    verdicts = {r.label: tests.tests[r.label].verdict for r in rungs}
    rates = {r.label: _rate([d for d in scored if d.get("rung") == r.label]) for r in rungs}
    glyphs = [r for r in rungs if r.label != _multi_label()]
    clauses = []
    if details["control"].get("got_code"):
        details["finding"] = ("the control (the same question without the image) was answered with the code: "
                              "the answers cannot be coming from the image")
    known = [rate for rate in rates.values() if rate is not None]
    if broken is not None and known and max(known) <= 0.05:
        clauses.append(f"no rung is read, not even {rungs[0].label}: the images are not seen at all")
        details["reading"] = "images not seen"
    elif broken is not None and broken.label == _multi_label():
        clauses.append(f"single images are read, but not {IMAGES_PER_REQUEST} images in one request")
        details["reading"] = "multi-image requests broken"
    elif broken is not None:
        above = [r for r in glyphs if r.size > broken.size]
        read = [r.size for r in above if verdicts[r.label] == PASS]
        partly = [f"{rates[r.label]:.2f} at {r.size} px" for r in above
                  if verdicts[r.label] != PASS and rates[r.label] is not None]
        below = [r for r in glyphs if r.size < broken.size]
        stops = f"not at {broken.size} px" + (" and below" if below and all(verdicts[r.label] == FAIL
                                                                           for r in below) else "")
        clause = (f"read at ≥ {min(read)} px glyphs, " if read else "") + \
            (f"partly ({', '.join(partly)}), " if partly else "") + stops
        clauses.append(clause)
        details["reading"] = {"stops_at_px": broken.size, "reads_at_px": min(read, default=None)}
    elif all(v == PASS for v in verdicts.values()):
        clauses.append(f"read down to {min(r.size for r in glyphs)} px glyphs, and {IMAGES_PER_REQUEST} images "
                       f"in one request")
    wide = _wide_images_fail(single, ctx, len(rungs))
    if wide is not None:
        width, clause = wide
        details["wide_images_from_px"] = width
        clauses.append(clause)
        details.setdefault("finding", f"images ≥ {width} px wide are shown to be read worse than narrower ones: "
                                      f"the vendor shrinks wide images")
    if details["control"].get("got_code"):
        clauses.append("the control got the code without the image")
    return details, "; ".join(clauses)


def _wide_images_fail(single: list[dict[str, Any]], ctx: Context, rungs: int) -> tuple[int, str] | None:
    """(the width, "images ≥ 1024 px wide …") when the widest images are shown below the minimum (or the
    reference) while a narrower width is not: resolution capped by width, not by glyph size.
    Each width has its own anytime-valid test; together they spend one rung's share of α."""
    widths = sorted({d["width"] for d in single})
    if len(widths) < 2:
        return None
    verdicts = {}
    for width in widths:
        test = ladder._test(ctx, PROBE, rungs * len(widths))
        for d in single:
            if d["width"] == width:
                ladder._feed(test, d)
        verdicts[width] = (test.verdict, test.metric())
    failing = [w for w in widths if verdicts[w][0] == FAIL]
    if not failing or failing != widths[len(widths) - len(failing):] or len(failing) == len(widths):
        return None
    rates = {w: _rate([d for d in single if d["width"] == w]) for w in widths}
    upper = verdicts[failing[0]][1]['betting_upper']
    return failing[0], (f"images ≥ {failing[0]} px wide read worse (rate ≤ {upper:.2f} at "
            f"{failing[0]} px; by width: {', '.join(f'{w} px {rates[w]:.2f}' for w in widths)}): wide images lose "
            f"resolution")


def _rate(data: list[dict[str, Any]]) -> float | None:
    return round(sum(d["score"] for d in data) / len(data), 4) if data else None


def _rates(data: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for d in data:
        groups.setdefault(str(d.get(key)), []).append(d)
    return {k: {"items": len(v), "rate": _rate(v)} for k, v in sorted(groups.items(), key=lambda kv: int(kv[0]))}


def _control_facts(data: list[dict[str, Any]]) -> dict[str, Any]:
    control = next((d for d in data if d.get("control")), None)
    if control is None:
        return {"run": False}
    return {"run": True, "answered": control.get("answered"), "got_code": bool(control.get("got_code")),
            "no_answer": control.get("no_answer")}


CHECKS = [
    ladder.ladder_check(
        PROBE, "Text kvv renders into images is read back at every glyph size and image width",
        "an image pipeline that drops images, shrinks them until small print is unreadable, caps the "
        "resolution of wide images or mishandles several images in one request",
        build, dict(OPTIONS), rungs_of, "reading rendered text", describe),
]
