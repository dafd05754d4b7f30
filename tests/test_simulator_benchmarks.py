"""The simulated vendor on benchmark items (kvv/simulator/benchmarks.py): healthy, it scores the
configured accuracy by kvv's own scorers with per-item difficulty; each benchmark fault lowers
the score. Spoken to over loopback with plain httpx, as any client would."""

from __future__ import annotations

import base64
import json
import math
import random
import struct
import zlib
from typing import Any

import httpx
import pytest

from kvv.benchmarks import BENCHMARKS, Params, aime2025, mmmu_pro, ocrbench
from kvv.profile import load_profile
from kvv.simulator import Simulator, fault_catalogue, parse_faults
from kvv.simulator.benchmarks import DEFAULT_ACCURACY, answer_key, fixture_rows, recognise
from kvv.simulator.tokenizer import TOKENIZERS
from kvv.errors import ConfigError
from kvv.thinking import thinking_fields

HTTP = httpx.Client(timeout=30)
K3 = Params(model="kimi-k3", max_tokens=98304, temperature=1.0, top_p=0.95,
            thinking=thinking_fields("kimi", True, "max"))


@pytest.fixture(scope="module", autouse=True)
def close_http_pool():
    yield
    HTTP.close()


# -- fixture items: real (1x1) PNG and GIF images, a distinct one per image ---------------------

def png(seed: int) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    pixel = b"\x00" + bytes([seed % 256, seed // 256 % 256, seed // 65536 % 256])
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(pixel)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(data).decode()


def gif(seed: int) -> str:
    data = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + bytes([seed % 256, seed // 256 % 256, 0, 0, 0, 0]) \
        + b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    return "data:image/gif;base64," + base64.b64encode(data).decode()


def make_rows(count: int = 300, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    words = ["CENTRE", "Exit 12", "x^{2}+1", "Total: 45.10", "STOP", "Route 66", "open 9-5", "Caf\u00e9 Nord"]
    types = ["Regular Text Recognition", "Irregular Text Recognition", "Scene Text-centric VQA",
             ocrbench.HME]
    ocr = [{"question": rng.choice(["what is written in the image?", "what is the number in the image?"]),
            "question_type": rng.choice(types), "answer": [f"{rng.choice(words)} {i}"], "image": png(i)}
           for i in range(count)]
    mmmu = []
    for i in range(count):
        images = rng.randint(1, 3)
        options = [f"value {i}-{k}" for k in range(rng.randint(4, 10))]
        mmmu.append({"question": f"Question {i}: " + " ".join(f"<image {k + 1}>" for k in range(images)),
                     "options": options, "answer": "ABCDEFGHIJ"[rng.randrange(len(options))],
                     **{f"image_{k + 1}": (gif if k % 2 else png)(100_000 + 10 * i + k) for k in range(images)}})
    aime = [{"problem": f"Problem {i}: find the remainder of {rng.randint(10**6, 10**9)} modulo 1000.",
             "answer": str(rng.randrange(1000))} for i in range(count // 3)]
    return {"ocrbench": ocr, "mmmu-pro": mmmu, "aime2025": aime}


ROWS = make_rows()
KEY = answer_key(ROWS)


def ask(simulator, benchmark_id: str, row: dict[str, Any], params: Params = K3) -> dict[str, Any]:
    response = HTTP.post(f"{simulator.url}/chat/completions", json=BENCHMARKS[benchmark_id].prompt(row, params))
    assert response.status_code == 200, response.text
    return response.json()


def run(simulator, benchmark_id: str, params: Params = K3, rows: list[dict[str, Any]] | None = None):
    """Each row's score and reply."""
    module = BENCHMARKS[benchmark_id]
    results = []
    for row in rows if rows is not None else ROWS[benchmark_id]:
        reply = ask(simulator, benchmark_id, row, params)
        results.append((module.score(row, reply["choices"][0]["message"]["content"]), reply))
    return results


def accuracy(results) -> float:
    return sum(score.correct for score, _ in results) / len(results)


@pytest.fixture(scope="module")
def healthy():
    """The healthy kimi-k3 simulator's results on every fixture item, run once: healthy["ocrbench"]."""
    with Simulator(load_profile("kimi-k3"), benchmark_answers=KEY).start() as sim:
        yield {benchmark_id: run(sim, benchmark_id) for benchmark_id in ROWS}


@pytest.fixture
def bench(simulate):
    """A kimi-k3 simulator that knows the fixture items: bench("image-dropped", seed=3)."""
    def start(*faults: str, **options: Any):
        options.setdefault("benchmark_answers", KEY)
        return simulate("kimi-k3", parse_faults(list(faults)), **options)
    return start


# -- recognising items --------------------------------------------------------------------------

def test_every_fixture_row_is_recognised_as_its_benchmark_and_keys_are_distinct():
    for benchmark_id, rows in ROWS.items():
        items = [recognise(BENCHMARKS[benchmark_id].prompt(row, K3)) for row in rows]
        assert {item.benchmark for item in items} == {benchmark_id}
        assert len({item.key for item in items}) == len(rows)
    assert len(KEY) == sum(map(len, ROWS.values()))
    item = recognise(mmmu_pro.prompt(ROWS["mmmu-pro"][0], K3))
    assert item.choices == tuple("ABCDEFGHIJ"[:len(ROWS["mmmu-pro"][0]["options"])])


def test_the_key_is_the_images_bytes_not_their_spelling():
    row = ROWS["ocrbench"][0]
    respelled = {**row, "image": row["image"].replace("data:image/png;", "data:image/x-png;")}
    assert recognise(ocrbench.prompt(respelled, K3)).key == recognise(ocrbench.prompt(row, K3)).key
    other = {**row, "image": png(999_999)}
    assert recognise(ocrbench.prompt(other, K3)).key != recognise(ocrbench.prompt(row, K3)).key


def test_other_requests_are_not_items(bench):
    sim = bench()
    assert recognise({"messages": [{"role": "user", "content": "Say 'OK' and nothing else."}]}) is None
    ocr_body = ocrbench.prompt(ROWS["ocrbench"][0], K3)
    assert recognise({**ocr_body, "tools": []}) is None
    assert recognise({**ocr_body, "messages": [{"role": "system", "content": "x"}, *ocr_body["messages"]]}) is None
    reply = HTTP.post(f"{sim.url}/chat/completions", json={
        "model": "m", "messages": [{"role": "user", "content": "Say 'OK' and nothing else."}],
        "thinking": {"type": "disabled"}}).json()
    assert reply["choices"][0]["message"]["content"] == "OK"


# -- the healthy simulator ------------------------------------------------------------------------

@pytest.mark.parametrize("benchmark_id", ["ocrbench", "mmmu-pro", "aime2025"])
def test_healthy_accuracy_is_the_configured_one_within_a_few_points(healthy, benchmark_id):
    results = healthy[benchmark_id]
    assert abs(accuracy(results) - DEFAULT_ACCURACY[benchmark_id]) <= 0.05
    assert not any(score.unparsed for score, _ in results)
    assert {reply["choices"][0]["finish_reason"] for _, reply in results} == {"stop"}


def test_configured_accuracy_per_benchmark(bench):
    results = run(bench(benchmark_accuracy={"ocrbench": 0.5}), "ocrbench")
    assert abs(accuracy(results) - 0.5) <= 0.06


def test_two_healthy_instances_agree_on_most_items_and_differ_on_a_few(bench, healthy):
    first = [score.correct for score, _ in healthy["ocrbench"]]
    second = [score.correct for score, _ in run(bench(seed=2), "ocrbench")]
    discordant = sum(a != b for a, b in zip(first, second, strict=True)) / len(first)
    assert 0.01 <= discordant <= 0.15


def test_answers_are_in_the_format_each_scorer_reads(bench):
    sim = bench()
    ocr = ask(sim, "ocrbench", ROWS["ocrbench"][0])["choices"][0]["message"]
    assert ocr["reasoning_content"] and len(ocr["content"].split()) <= 4
    mmmu = ask(sim, "mmmu-pro", ROWS["mmmu-pro"][0])["choices"][0]["message"]
    assert mmmu["content"].rsplit("\n", 1)[-1].startswith("Answer: ")
    math = ask(sim, "aime2025", ROWS["aime2025"][0])["choices"][0]["message"]
    assert aime2025.last_boxed(math["content"]) is not None and "\\boxed" not in math["reasoning_content"]


def test_reasoning_is_long_for_aime_short_for_ocr_and_follows_effort_and_mode(bench):
    sim = bench()
    def tokens(benchmark_id, params):
        return sum(reply["usage"]["completion_tokens"] for _, reply in run(sim, benchmark_id, params,
                                                                           ROWS[benchmark_id][:10])) / 10
    low = Params(**{**K3.__dict__, "thinking": thinking_fields("kimi", True, "low")})
    off = Params(**{**K3.__dict__, "temperature": 0.6, "thinking": thinking_fields("kimi", False)})
    assert tokens("aime2025", K3) > 3000 > tokens("mmmu-pro", K3) > tokens("ocrbench", K3) > 20
    assert tokens("aime2025", low) < tokens("aime2025", K3) / 2
    without = ask(sim, "mmmu-pro", ROWS["mmmu-pro"][0], off)["choices"][0]["message"]
    assert "reasoning_content" not in without and len(without["content"].split()) > 50    # worked in the answer
    assert "reasoning_content" not in ask(sim, "ocrbench", ROWS["ocrbench"][0], off)["choices"][0]["message"]


def test_streamed_answers_score_the_same(bench):
    sim = bench()
    row = ROWS["aime2025"][1]
    events = HTTP.post(f"{sim.url}/chat/completions",
                       json=aime2025.prompt(row, Params(**{**K3.__dict__, "stream": True}))).text
    chunks = [json.loads(line[6:]) for line in events.splitlines() if line.startswith("data: {")]
    content = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    plain = ask(bench(), "aime2025", row)["choices"][0]["message"]["content"]
    assert aime2025.score(row, content).parsed is not None
    assert aime2025.score(row, content).unparsed is False and aime2025.score(row, plain).unparsed is False


def test_items_missing_from_the_key_get_a_guess_in_the_right_format(bench):
    sim = bench(benchmark_answers={})
    assert accuracy(run(sim, "ocrbench", rows=ROWS["ocrbench"][:40])) <= 0.1
    mmmu = run(sim, "mmmu-pro", rows=ROWS["mmmu-pro"][:60])
    assert not any(score.unparsed for score, _ in mmmu) and accuracy(mmmu) < 0.35
    assert not any(score.unparsed for score, _ in run(sim, "aime2025", rows=ROWS["aime2025"][:10]))


def test_without_a_key_the_simulator_knows_the_dataset_stand_ins_fixtures(simulate):
    rows = fixture_rows()
    assert set(rows) == {"ocrbench", "mmmu-pro", "aime2025"} and all(rows.values())
    sim = simulate("kimi-k3")                   # no benchmark_answers: the stand-in's key
    for benchmark_id, benchmark_rows in rows.items():
        results = run(sim, benchmark_id, rows=benchmark_rows)
        assert abs(accuracy(results) - DEFAULT_ACCURACY[benchmark_id]) <= 0.15, benchmark_id
        assert not any(score.unparsed for score, _ in results)
    image_dropped = run(simulate("kimi-k3", {"image-dropped": None}), "ocrbench", rows=rows["ocrbench"])
    assert accuracy(image_dropped) == 0


@pytest.mark.parametrize("tokenizer", sorted(TOKENIZERS))
def test_usage_is_honest_for_benchmark_answers(bench, tokenizer):
    sim = bench("long-output-corrupt=500", tokenizer=tokenizer)
    count = TOKENIZERS[tokenizer].count
    for benchmark_id in ("mmmu-pro", "aime2025"):
        for _, reply in run(sim, benchmark_id, rows=ROWS[benchmark_id][:5]):
            message = reply["choices"][0]["message"]
            assert reply["usage"]["completion_tokens"] == \
                count(message.get("reasoning_content") or "") + count(message["content"])


# -- faults ---------------------------------------------------------------------------------------

def test_benchmark_faults_are_catalogued_with_their_values():
    catalogue = {entry["name"]: entry for entry in fault_catalogue()}
    assert {name: (catalogue[name]["value"], catalogue[name]["default"]) for name in (
        "accuracy-drop", "image-dropped", "image-downscale", "long-output-corrupt", "truncate-output")} == {
        "accuracy-drop": ("rate", 0.1), "image-dropped": ("none", None), "image-downscale": ("rate", 0.25),
        "long-output-corrupt": ("delta", 8192), "truncate-output": ("delta", 4096)}
    assert parse_faults(["truncate-output=100", "long-output-corrupt=+50"]) == {
        "truncate-output": 100, "long-output-corrupt": 50}
    for spec in ("truncate-output=0", "long-output-corrupt=-5", "accuracy-drop=1.5"):
        with pytest.raises(ConfigError, match="expected"):
            parse_faults([spec])


def test_accuracy_drop_lowers_accuracy_by_the_drop_on_the_items_it_knew(bench, healthy):
    dropped = run(bench("accuracy-drop=0.45"), "ocrbench")
    assert abs(accuracy(dropped) - (DEFAULT_ACCURACY["ocrbench"] - 0.45)) <= 0.06
    # Lost items are among those the healthy model got right: it does not gain new ones (but for noise).
    gained = sum(not h.correct and d.correct for (h, _), (d, _) in zip(healthy["ocrbench"], dropped, strict=True))
    assert gained <= 0.05 * len(dropped)
    assert abs(accuracy(run(bench("accuracy-drop=0.3"), "mmmu-pro")) - (DEFAULT_ACCURACY["mmmu-pro"] - 0.3)) <= 0.06


def test_image_dropped_fails_image_items_and_spares_aime(bench, healthy):
    sim = bench("image-dropped")
    assert accuracy(run(sim, "ocrbench")) == 0
    assert accuracy(run(sim, "mmmu-pro")) <= 0.25            # a guess among 4-10 options
    assert abs(accuracy(run(sim, "aime2025")) - accuracy(healthy["aime2025"])) <= 0.05
    assert sim.stats["faults"]["image-dropped"] == 2 * len(ROWS["ocrbench"])


def test_image_downscale_loses_items_with_small_text_more_the_smaller_the_scale(bench, healthy):
    healthy = accuracy(healthy["ocrbench"])
    half = accuracy(run(bench("image-downscale=0.5"), "ocrbench"))
    quarter = accuracy(run(bench("image-downscale=0.25"), "ocrbench"))
    # Text heights are log-uniform in [8, 96] px and read down to 8 px: a scale F loses ln(1/F)/ln(12).
    for scale, measured in ((0.5, half), (0.25, quarter)):
        assert abs(measured - healthy * (1 - math.log(1 / scale) / math.log(12))) <= 0.06
    assert quarter < half - 0.15
    assert accuracy(run(bench("image-downscale=1"), "ocrbench")) == healthy
    # The same items become unreadable in every instance: it is the item's text size that decides.
    first = [s.correct for s, _ in run(bench("image-downscale=0.25", seed=1, benchmark_accuracy={"ocrbench": 1}),
                                       "ocrbench")]
    second = [s.correct for s, _ in run(bench("image-downscale=0.25", seed=2, benchmark_accuracy={"ocrbench": 1}),
                                        "ocrbench")]
    assert first == second


def test_long_output_corrupt_destroys_long_answers_only(bench, healthy):
    healthy_aime = accuracy(healthy["aime2025"])
    sim = bench("long-output-corrupt=2000")
    corrupt = run(sim, "aime2025")
    assert accuracy(corrupt) < healthy_aime / 3
    assert sum(score.unparsed for score, _ in corrupt) >= 0.7 * len(corrupt)
    assert accuracy(run(sim, "ocrbench")) == accuracy(healthy["ocrbench"])      # short answers are intact
    length = [len(reply["choices"][0]["message"]["content"]) for _, reply in corrupt]
    assert all(n > 0 for n in length)                                             # garbled, not cut
    assert {reply["choices"][0]["finish_reason"] for _, reply in corrupt} == {"stop"}


def test_truncate_output_stops_at_n_tokens_with_finish_reason_length(bench, healthy):
    sim = bench("truncate-output=1000")
    results = run(sim, "aime2025")
    assert accuracy(results) == 0 and all(score.unparsed for score, _ in results)
    assert {reply["choices"][0]["finish_reason"] for _, reply in results} == {"length"}
    assert {reply["usage"]["completion_tokens"] for _, reply in results} == {1000}
    assert accuracy(run(sim, "mmmu-pro")) < DEFAULT_ACCURACY["mmmu-pro"] - 0.3
    assert accuracy(run(sim, "ocrbench")) == accuracy(healthy["ocrbench"])     # short answers fit
    # A request asking for fewer tokens than the cap is cut where it asked, as on a healthy server.
    short = ask(sim, "aime2025", ROWS["aime2025"][0], Params(**{**K3.__dict__, "max_tokens": 50}))
    assert short["usage"]["completion_tokens"] == 50 and short["choices"][0]["finish_reason"] == "length"
