"""The image-ladder probe end to end: kvv draws codes into PNGs itself, the simulated vendor
decodes and reads them with kvv's font, and image-pipeline faults fail the probe naming the
glyph size (or image width) where reading stops."""

from __future__ import annotations

import asyncio
import json
import random
import struct
import zlib

import pytest

from kvv import render
from kvv.checks import image_ladder
from kvv.checks.base import Context
from kvv.exchange import Choice, Exchange, Message
from kvv.profile import load_profile
from kvv.simulator import ocr

CONFUSABLE = set("AEIOUY" "0O1I5S8B2Z6GDQ")


def config(tmp_path, **options) -> str:
    path = tmp_path / "kvv.yaml"
    path.write_text(f"checks:\n  image-ladder: {json.dumps(options)}\n")
    return str(path)


# -- the renderer and the decoder -------------------------------------------------------------

def test_a_rendered_png_decodes_to_the_same_pixels():
    image = render.render("KX3W9TPL", 12, 512, random.Random(4))
    png = render.encode_png(image)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    decoded = ocr.decode_png(png)
    assert (decoded.width, decoded.height) == (512, image.height) and decoded.rows == image.rows
    assert ocr.read(ocr.ink(decoded)) == "KX3W9TPL"
    url = render.data_url(png)
    assert url.startswith("data:image/png;base64,") and ocr.image_of(url).rows == image.rows


def _filtered(kind: int, row: bytes, previous: bytes, bpp: int) -> bytes:
    """PNG's forward filters, written out from the spec (the encoder only writes type 0)."""
    out = bytearray()
    for i, value in enumerate(row):
        left = row[i - bpp] if i >= bpp else 0
        up = previous[i]
        corner = previous[i - bpp] if i >= bpp else 0
        if kind == 1:
            predicted = left
        elif kind == 2:
            predicted = up
        elif kind == 3:
            predicted = (left + up) // 2
        else:
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            predicted = left if pa <= pb and pa <= pc else up if pb <= pc else corner
        out.append((value - predicted) % 256)
    return bytes(out)


def _png(width: int, rows: list[bytes], color: int, kinds: list[int]) -> bytes:
    bpp = {0: 1, 2: 3}[color]
    raw, previous = b"", bytes(width * bpp)
    for kind, row in zip(kinds, rows, strict=True):
        raw += bytes([kind]) + (row if kind == 0 else _filtered(kind, row, previous, bpp))
        previous = row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    header = struct.pack(">IIBBBBB", width, len(rows), 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_the_decoder_undoes_all_five_filter_types_in_gray_and_rgb():
    rng = random.Random(9)
    gray = [bytes(rng.randrange(256) for _ in range(7)) for _ in range(6)]
    decoded = ocr.decode_png(_png(7, gray, 0, [0, 1, 2, 3, 4, 4]))
    assert list(decoded.rows) == gray
    rgb = [bytes(rng.randrange(256) for _ in range(15)) for _ in range(5)]
    decoded = ocr.decode_png(_png(5, rgb, 2, [4, 3, 2, 1, 0]))
    assert list(decoded.rows) == [bytes((r[i] + r[i + 1] + r[i + 2]) // 3 for i in range(0, 15, 3)) for r in rgb]


@pytest.mark.parametrize("url", ["data:image/gif;base64,R0lGODlhAQABAAAAACw=", "https://example.com/a.png",
                                 "data:image/png;base64,iVBORw0KGgo=", "data:image/png;base64,!!!"])
def test_what_is_not_a_png_is_said_to_be_unreadable_not_a_crash(url):
    body = {"messages": [{"role": "system", "content": image_ladder.SYSTEM},
                         {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                      {"type": "text", "text": "the code?"}]}]}
    answer, faults = ocr.Replier(None, {}, 1).reply(body, thinking=False, draw="x")
    assert "".join(answer.content).startswith("I can't open this image (") and faults == set()
    with pytest.raises(ocr.PNGError):
        ocr.image_of(url)


def test_codes_leave_out_confusable_glyphs_and_are_seeded():
    assert not CONFUSABLE & set(render.font().alphabet) and len(render.font().alphabet) >= 16
    codes = [render.random_text(random.Random(f"1:{k}")) for k in range(50)]
    assert codes == [render.random_text(random.Random(f"1:{k}")) for k in range(50)]
    assert len(set(codes)) == 50 and all(len(c) == 8 for c in codes)
    places = {render.render("KX3W9TPL", 16, 1024, random.Random(k)).rows.index(
        next(r for r in render.render("KX3W9TPL", 16, 1024, random.Random(k)).rows if 0 in r)) for k in range(8)}
    assert len(places) > 1               # the text is not always in the same place


def test_items_depend_on_the_seed_and_spread_over_widths():
    def items(seed: int):
        ctx = Context("kimi-k3", load_profile("kimi-k3"), "kimi", options=dict(image_ladder.CHECKS[0].options),
                      seed=seed)
        return image_ladder.build(ctx)
    first, again, other = items(1), items(1), items(2)
    assert [i.expects for i in first] == [i.expects for i in again]
    assert [i.expects["codes"] for i in first] != [i.expects["codes"] for i in other]
    assert first[0].id.startswith("control") and first[0].rung is None
    assert {i.expects["width"] for i in first[1:]} == {256, 512, 1024, 2048}
    assert all(i.mode == "non-thinking" and i.token_ceiling == 64 * len(i.expects["codes"]) for i in first)


# -- the probe against the simulated vendor ---------------------------------------------------

def test_a_healthy_vendor_reads_every_rung(kvv):
    run = kvv("run", "--simulate", "--only", "image-ladder")
    assert run.exit_code == 0, run.output
    check = run.check("image-ladder")
    assert check["verdict"] == "pass", check["message"]
    assert "read down to 8 px glyphs, and 3 images in one request" in check["message"]
    details = check["details"]
    assert [row["verdict"] for row in details["rungs"]] == ["pass"] * 7
    assert all(row["rate"] == 1.0 for row in details["by_width"].values())
    assert details["control"]["run"] and details["control"]["got_code"] is False
    # cheaper than the benchmark it stands in for: early stopping, one small request per item
    assert run.results["totals"]["requests"] < 150 and run.results["totals"]["completion_tokens"] < 2000


def test_dropped_images_fail_every_rung_and_are_named(kvv):
    run = kvv("run", "--simulate", "--only", "image-ladder", "--sim-fault", "image-dropped")
    assert run.exit_code == 1, run.output
    check = run.check("image-ladder")
    assert check["verdict"] == "fail" and check["details"]["breaks_at"] == "48 px glyphs"
    assert "the images are not seen at all" in check["message"]
    assert all(row["rate"] == 0.0 for row in check["details"]["rungs"])
    assert check["details"]["control"]["got_code"] is False


def test_a_downscaled_image_fails_where_the_glyphs_get_too_small(kvv, tmp_path):
    run = kvv("run", "--simulate", "--only", "image-ladder", "--sim-fault", "image-downscale=0.25",
              "--config", config(tmp_path, items=24))
    assert run.exit_code == 1, run.output
    check = run.check("image-ladder")
    rungs = {row["rung"]: row for row in check["details"]["rungs"]}
    assert rungs["48 px glyphs"]["verdict"] == "pass"
    broken = check["details"]["breaks_at"]
    assert broken in ("32 px glyphs", "24 px glyphs", "16 px glyphs")
    size = int(broken.split()[0])
    assert check["message"].startswith(f"FAIL: reading rendered text breaks at {broken}")
    assert "read at ≥ 48 px glyphs" in check["message"] and f"not at {size} px and below" in check["message"]
    assert check["details"]["reading"] == {"stops_at_px": size, "reads_at_px": 48}
    assert all(rungs[f"{h} px glyphs"]["rate"] == 0.0 for h in (12, 8))


def test_a_vendor_capping_image_width_fails_naming_the_width(kvv, tmp_path):
    run = kvv("run", "--simulate", "--only", "image-ladder", "--sim-fault", "image-max-width=256",
              "--config", config(tmp_path, items=24))
    assert run.exit_code == 1, run.output
    check = run.check("image-ladder")
    assert check["verdict"] == "fail"
    width = check["details"]["wide_images_from_px"]
    assert width in (1024, 2048)
    assert f"images ≥ {width} px wide are shown to be read worse" in check["message"]
    by_width = check["details"]["by_width"]
    assert by_width["256"]["rate"] == 1.0 and by_width["2048"]["rate"] < 0.2


def test_a_control_answered_with_the_code_is_a_finding():
    """A vendor that returns the code without the image (answers not coming from the image)
    fails, whatever the rungs say; one that says it sees no image passes the control."""
    check = image_ladder.CHECKS[0]
    ctx = Context("kimi-k3", load_profile("kimi-k3"), "kimi", seed=3,
                  options={**check.options, "items": 20, "glyph-heights": [16, 8], "image-widths": [256, 512]})
    items = image_ladder.build(ctx)
    reader = ocr.Replier(None, {}, 3)

    def leaking(control_answer):
        async def send(body, *, reference=False):
            answer, _ = reader.reply(body, thinking=False, draw="d")
            text = "".join(answer.content)
            if not any(p.get("type") == "image_url" for p in body["messages"][1]["content"]):
                text = control_answer
            return Exchange(body, status=200, choices=[Choice(0, Message(content=text), "stop")],
                            usage={"completion_tokens": 5})
        return send

    def records(send):
        outcomes = [asyncio.run(item.run(send)) for item in items]
        return [{"id": i.id, "verdict": o.verdict, "message": o.message, "data": o.data}
                for i, o in zip(items, outcomes, strict=True)]

    code = items[0].expects["codes"][0]
    leaked = records(leaking(f"The code is {code}."))
    assert leaked[0]["verdict"] == "fail" and code in leaked[0]["message"]
    summary = check.summarize(leaked, ctx)
    assert summary.verdict == "fail" and summary.message.startswith("FAIL: the control")
    assert summary.details["control"]["got_code"] is True
    honest = records(leaking(ocr.NO_IMAGE))
    assert honest[0]["verdict"] == "pass"
    assert check.summarize(honest, ctx).verdict == "pass"


def test_paired_against_a_healthy_reference(kvv, simulator, tmp_path):
    official = simulator("kimi-k3", seed=7)
    small = config(tmp_path, **{"glyph-heights": [24, 8], "image-widths": [256, 1024]})
    healthy = kvv("run", "--base-url", simulator("kimi-k3", seed=3).url, "--model", "kimi-k3", "--only",
                  "image-ladder", "--reference-base-url", official.url, "--config", small, out="healthy")
    assert healthy.exit_code == 0, healthy.output
    check = healthy.check("image-ladder")      # 40 agreeing pairs a rung cannot always show a 0.1 tolerance
    assert check["verdict"] in ("pass", "inconclusive") and "the reference endpoint" in check["details"]["against"]
    assert not any(row["verdict"] == "fail" for row in check["details"]["rungs"])
    assert check["metric"]["design"] == "paired"
    assert healthy.results["totals"]["requests"] == 2 * (check["n"] - 1) + 1     # the control goes to the vendor only
    dropped = kvv("run", "--base-url", simulator("kimi-k3", "image-dropped").url, "--model", "kimi-k3", "--only",
                  "image-ladder", "--reference-base-url", official.url, "--config", small, out="dropped")
    assert dropped.exit_code == 1 and "not seen at all" in dropped.check("image-ladder")["message"]


def test_plan_shows_the_rungs_and_generic_profiles_are_not_applicable(kvv, tmp_path):
    plan = kvv("plan", "--simulate", "--suite", "probes", "--only", "image-ladder")
    assert plan.exit_code == 0, plan.output
    for rung in ("48 px glyphs", "12 px glyphs", "8 px glyphs", "3 images"):
        assert rung in plan.output
    generic = kvv("run", "--simulate", "--profile", "generic", "--only", "image-ladder", out="generic")
    reason = {c["id"]: c["reason"] for c in generic.results["not_run"]}["image-ladder"]
    assert "features.vision: true" in reason and "checks.image-ladder.vision: true" in reason
    enabled = kvv("run", "--simulate", "--profile", "generic", "--only", "image-ladder", "--config",
                  config(tmp_path, vision=True, **{"glyph-heights": [16, 8], "image-widths": [256]}), out="enabled")
    assert enabled.exit_code == 0, enabled.output
    assert [row["rung"] for row in enabled.check("image-ladder")["details"]["rungs"]] == \
        ["16 px glyphs", "8 px glyphs", "3 images"]


@pytest.mark.parametrize("options, field", [({"glyph-heights": [4]}, "glyph-heights"),
                                            ({"image-widths": [32]}, "image-widths"),
                                            ({"glyph-heights": "big"}, "glyph-heights")])
def test_bad_ladder_settings_exit_2_naming_the_field(kvv, tmp_path, options, field):
    run = kvv("run", "--simulate", "--only", "image-ladder", "--config", config(tmp_path, **options))
    assert run.exit_code == 2, run.output
    assert f"checks.image-ladder.{field}" in run.output + (run.stderr or "")
