"""The dataset layer over real loopback sockets, against kvv's stand-in of the dataset viewer API
(kvv/simulator/datasets_server.py): paging, retries, expired assets, validation, local files, the
mime check, the cache, the token, and `kvv datasets pull/list`."""

from __future__ import annotations

import base64
import json
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from kvv import datasets
from kvv.datasets import DatasetError, find_spec, validate_row
from kvv.datasets.cache import entry_dir
from kvv.datasets.images import sniff
from kvv.datasets.viewer import ViewerClient
from kvv.errors import ConfigError
from kvv.simulator.datasets_server import (AIME_ID, MMMU_ID, OCRBENCH_ID, DatasetsServer, FixtureDataset,
                                           FixtureImage, fixture, fixtures, gold, image_index, ocrbench_fixture,
                                           text_png)

TOKEN = "hf_canaryTOKEN0a1b2c3d4e5f60718293a4b5c6d7e8f9"
PNG = text_png("KVV")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32
GIF = b"GIF89a" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache per test; no server, token or offline switch from the environment."""
    for name in ("HF_TOKEN", "KVV_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    # A test that forgets its server reaches a closed loopback port, never the public one.
    monkeypatch.setenv("KVV_DATASETS_SERVER", "http://127.0.0.1:9")
    cache = tmp_path / "cache"
    monkeypatch.setenv("KVV_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def stand_in() -> Iterator[Callable[..., DatasetsServer]]:
    started: list[DatasetsServer] = []

    def start(*fixture_sets: FixtureDataset, **options: Any) -> DatasetsServer:
        server = DatasetsServer(fixture_sets or None, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def fast(**options: Any) -> dict[str, Any]:
    """Client options for tests: quick backoff."""
    return {"backoff_base": 0.01, "backoff_cap": 0.05, **options}


def rows_requests(server: DatasetsServer) -> list[dict[str, Any]]:
    return [r for r in server.log if r["path"].startswith("/rows")]


def asset_requests(server: DatasetsServer) -> list[dict[str, Any]]:
    return [r for r in server.log if r["path"].startswith("/assets/")]


# -- the viewer API client ------------------------------------------------------------------------

def test_pages_through_250_rows_in_3_pages(stand_in):
    server = stand_in(ocrbench_fixture(250, dataset_id="kvv-tests/big"))
    spec = find_spec("ocrbench").override(dataset="kvv-tests/big")
    data = datasets.load(spec, server=server.url)
    assert len(data) == 250 and data.num_rows_total == 250 and data.source == "server"
    assert [r.index for r in data] == list(range(250))
    assert [r.answer for r in data] == [row["answer"] for row in ocrbench_fixture(250, "kvv-tests/big").rows]
    pages = [r["path"] for r in rows_requests(server)]
    assert len(pages) == 3
    assert ["offset=0&length=100" in pages[0], "offset=100&length=100" in pages[1],
            "offset=200&length=50" in pages[2]] == [True, True, True]
    assert len(asset_requests(server)) == 250
    image = data[17].images["image"]
    assert image.mime == "image/png" and image.width and image.height
    assert image.data_url() == "data:image/png;base64," + base64.b64encode(
        ocrbench_fixture(250, "kvv-tests/big").rows[17]["image"].data).decode()


def test_429_waits_for_retry_after_then_succeeds(stand_in):
    server = stand_in(rate_limit=2, retry_after=1)

    async def fetch() -> tuple[Any, list[tuple[str, float]]]:
        async with ViewerClient(server.url, token="", **fast()) as client:
            return await client.fetch(find_spec("aime2025")), client.waits

    import asyncio

    started = time.monotonic()
    fetched, waits = asyncio.run(fetch())
    assert len(fetched.rows) == 30
    assert waits == [("HTTP 429: Too many requests", 1.0)] * 2       # Retry-After, not the 0.01 s backoff
    assert time.monotonic() - started >= 2.0
    assert [r["status"] for r in server.log[:3]] == [429, 429, 200]


def test_retry_after_is_clamped_and_5xx_retried(stand_in):
    server = stand_in(rate_limit=1, retry_after=3600, server_errors=2)

    async def fetch() -> list[tuple[str, float]]:
        async with ViewerClient(server.url, token="", retry_after_cap=0.2, **fast()) as client:
            await client.fetch(find_spec("aime2025"))
            return client.waits

    import asyncio

    waits = asyncio.run(fetch())
    assert waits[0] == ("HTTP 429: Too many requests", 0.2)
    assert [w[0] for w in waits[1:]] == ["HTTP 503: The server is busy."] * 2
    assert all(0 <= w[1] <= 0.05 for w in waits[1:])


def test_gives_up_after_the_retries_with_a_clear_error(stand_in):
    server = stand_in(server_errors=100)
    with pytest.raises(DatasetError) as raised:
        datasets.load(find_spec("aime2025"), server=server.url, **fast(max_retries=2))
    assert str(raised.value) == ("math-ai/aime25 (default/test): /rows offset 0: gave up after 3 attempts: "
                                 "HTTP 503: The server is busy.")


def test_an_expired_asset_is_asked_for_again_through_rows_once(stand_in):
    server = stand_in(expire_assets="once")
    data = datasets.load(find_spec("mmmu-pro"), server=server.url)
    assert len(data) == 30 and data.images == 40
    assert len(rows_requests(server)) == 2                     # the page, then once more for all its images
    statuses = [r["status"] for r in asset_requests(server)]
    assert statuses.count(403) == 40 and statuses.count(200) == 40
    assert data[0].image_list()[0].read() == fixture(MMMU_ID).rows[0]["image_1"].data


def test_an_asset_still_refused_after_the_refresh_names_row_and_field(stand_in):
    server = stand_in(expire_assets="always")
    with pytest.raises(DatasetError) as raised:
        datasets.load(find_spec("ocrbench"), server=server.url)
    error = raised.value
    assert error.field == "image" and error.row is not None and error.dataset == "echo840/OCRBench (default/test)"
    assert "refused after asking /rows for a fresh URL: HTTP 403" in str(error)
    assert len(rows_requests(server)) == 2                     # re-requested once, not once per image


def test_a_row_missing_a_field_names_dataset_row_and_field(stand_in):
    server = stand_in(drop_fields=[("echo840/OCRBench", 7, "answer")])
    with pytest.raises(DatasetError) as raised:
        datasets.load(find_spec("ocrbench"), server=server.url)
    assert str(raised.value) == "echo840/OCRBench (default/test), row 7, field 'answer': missing"
    assert (raised.value.row, raised.value.field) == (7, "answer")
    assert not asset_requests(server)                          # found before any image was fetched
    assert not list(Path(datasets.cache_root()).rglob("manifest.json"))   # nothing bad is cached


def test_a_required_field_absent_from_the_features_is_named(stand_in):
    server = stand_in()
    with pytest.raises(DatasetError) as raised:                # AIME's rows have no `question`
        datasets.load(find_spec("ocrbench").override(dataset=AIME_ID), server=server.url)
    assert "field 'question': not among the dataset's features (answer, id, problem)" in str(raised.value)


def test_an_unknown_dataset_says_so_and_hints_at_the_token(stand_in):
    server = stand_in()
    with pytest.raises(DatasetError) as raised:
        datasets.load(find_spec("nobody/nothing"), server=server.url)
    assert "HTTP 404: The dataset does not exist" in str(raised.value)
    assert "needs HF_TOKEN" in str(raised.value)


def test_an_image_over_the_cap_names_row_and_field(stand_in):
    server = stand_in()
    with pytest.raises(DatasetError) as raised:
        datasets.load(find_spec("ocrbench"), server=server.url, max_image_bytes=100)
    assert raised.value.field == "image" and "over 100 bytes" in str(raised.value)


def test_plain_http_to_a_remote_host_is_refused_before_any_request():
    with pytest.raises(ConfigError) as raised:
        datasets.load(find_spec("ocrbench"), server="http://datasets.example.com")
    assert "plain http to a non-loopback host" in str(raised.value)
    assert raised.value.path == "datasets-server"


def test_the_server_comes_from_the_argument_then_the_environment(monkeypatch):
    monkeypatch.delenv("KVV_DATASETS_SERVER")
    assert datasets.server_url() == "https://datasets-server.huggingface.co"
    monkeypatch.setenv("KVV_DATASETS_SERVER", "http://127.0.0.1:9/")
    assert datasets.server_url() == "http://127.0.0.1:9"
    assert datasets.server_url("https://mirror.example/viewer") == "https://mirror.example/viewer"


# -- the mime check -------------------------------------------------------------------------------

def test_magic_bytes_decide_the_mime_type():
    assert [sniff(b) for b in (PNG, JPEG, GIF, WEBP, b"<html>", b"")] == [
        "image/png", "image/jpeg", "image/gif", "image/webp", None, None]


def test_a_mislabelled_image_goes_out_as_what_it_is(stand_in):
    server = stand_in(mislabel_images="image/jpeg")
    data = datasets.load(find_spec("ocrbench"), server=server.url)
    image = data[0].images["image"]
    assert (image.mime, image.declared_mime) == ("image/png", "image/jpeg")
    assert image.data_url().startswith("data:image/png;base64,iVBORw0KGgo")


def test_bytes_that_are_no_image_are_refused_with_row_and_field(stand_in):
    broken = ocrbench_fixture(3, dataset_id="kvv-tests/broken")
    broken.rows[2]["image"] = FixtureImage(b"<html>oops</html>", "image/png", 10, 10)
    server = stand_in(broken)
    with pytest.raises(DatasetError) as raised:
        datasets.load(find_spec("ocrbench").override(dataset="kvv-tests/broken"), server=server.url)
    assert str(raised.value).startswith("kvv-tests/broken (default/test), row 2, field 'image': not a PNG, JPEG, "
                                        "GIF or WebP image (declared 'image/png'): 17 bytes starting 3c 68")


# -- validation -----------------------------------------------------------------------------------

MMMU_ROW = {"id": "x", "question": "Which is <image 1>?", "options": "['a', 'b', \"c'd\"]", "answer": "C",
            "image_1": {"src": "s"}, "image_2": None}


def test_mmmu_options_are_parsed_as_a_list_of_strings_and_nothing_else():
    spec = find_spec("mmmu-pro")
    record = validate_row(spec, MMMU_ROW, 3)
    assert record.fields["options"] == ["a", "b", "c'd"] and record.answer == "C" and record.index == 3
    for bad, why in [("__import__('os').system('true')", "expected a Python list of strings"),
                     ("[1, 2]", "expected a list of strings"), ("{'a', 'b'}", "expected a list of strings"),
                     ("['only']", "has 1 items; expected at least 2"), (["a"] * 11, "expected at most 10"),
                     ("[" * 5000 + "]" * 5000, "expected a Python list of strings")]:
        with pytest.raises(DatasetError) as raised:
            validate_row(spec, {**MMMU_ROW, "options": bad}, 3)
        assert raised.value.field == "options" and why in str(raised.value), bad


def test_mmmu_answer_letter_and_image_placeholders_are_checked():
    spec = find_spec("mmmu-pro")
    with pytest.raises(DatasetError, match=r"row 4, field 'answer': answer 'D' is not one of the 3 options \(A–C\)"):
        validate_row(spec, {**MMMU_ROW, "answer": "D"}, 4)
    with pytest.raises(DatasetError, match="field 'answer': expected one capital letter"):
        validate_row(spec, {**MMMU_ROW, "answer": "c"}, 4)
    with pytest.raises(DatasetError, match=r"field 'question': refers to <image 2> but image_2 is null"):
        validate_row(spec, {**MMMU_ROW, "question": "<image 1> or <image 2>?"}, 4)
    with pytest.raises(DatasetError, match="has 0 images; expected at least 1"):
        validate_row(spec, {**MMMU_ROW, "question": "no image", "image_1": None}, 4)


def test_other_fields_are_typed():
    aime, ocr = find_spec("aime2025"), find_spec("ocrbench")
    assert validate_row(aime, {"problem": "p", "answer": "070"}, 0).answer == 70
    assert validate_row(aime, {"problem": "p", "answer": 5}, 0).answer == 5
    with pytest.raises(DatasetError, match="field 'answer': expected an integer, got '1/2'"):
        validate_row(aime, {"problem": "p", "answer": "1/2"}, 0)
    with pytest.raises(DatasetError, match="field 'problem': is empty"):
        validate_row(aime, {"problem": " ", "answer": 1}, 0)
    row = {"question": "q", "question_type": "t", "answer": "lone", "image": {"src": "s"}}
    assert validate_row(ocr, row, 0).answer == ["lone"]
    with pytest.raises(DatasetError, match="field 'answer': expected a list of strings, got a list"):
        validate_row(ocr, {**row, "answer": ["a", 1]}, 0)
    with pytest.raises(DatasetError, match="field 'image': is null"):
        validate_row(ocr, {**row, "image": None}, 0)


def test_the_catalogue_holds_upstream_datasets_and_the_bench_suite():
    specs = datasets.builtin_specs()
    assert {k: (s.id, s.config, s.split, s.rows) for k, s in specs.items()} == {
        "ocrbench": ("echo840/OCRBench", "default", "test", 1000),
        "mmmu-pro": ("MMMU/MMMU_Pro", "standard (10 options)", "test", 1730),
        "aime2025": ("math-ai/aime25", "default", "test", 30)}
    assert [s.key for s in datasets.suite_specs("bench")] == ["ocrbench", "mmmu-pro", "aime2025"]
    assert specs["ocrbench"].required == ("question", "question_type", "answer", "image")
    assert specs["mmmu-pro"].image_fields == tuple(f"image_{k}" for k in range(1, 8))
    assert find_spec("MMMU/MMMU_Pro").key == "mmmu-pro"
    assert find_spec("ocrbench").override(dataset="rows.jsonl").local == Path("rows.jsonl")
    assert datasets.known_rows(find_spec("mmmu-pro"))[0] == 1730


# -- local files ----------------------------------------------------------------------------------

def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_a_local_file_with_relative_image_paths_and_data_urls(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(PNG)
    (tmp_path / "imgs" / "b.jpg").write_bytes(text_png("B"))       # a PNG named .jpg: its bytes decide
    base = {"question": "what is written in the image?", "question_type": "Regular Text Recognition"}
    path = write_jsonl(tmp_path / "rows.jsonl", [
        {**base, "answer": ["KVV"], "image": "imgs/a.png"},
        "",
        {**base, "answer": ["B"], "image": {"src": "imgs/b.jpg", "width": 10, "height": 7}},
        {**base, "answer": ["C"], "image": data_url(text_png("C"), "image/jpeg")},
        {"row_idx": 9, "row": {**base, "answer": ["D"], "image": {"path": "./imgs/a.png"}}},
    ])
    data = datasets.load(find_spec("ocrbench").override(dataset=str(path)))
    assert data.source == "file" and len(data) == 4
    assert [r.answer for r in data] == [["KVV"], ["B"], ["C"], ["D"]]
    assert [r.line for r in data] == [1, 3, 4, 5] and [r.index for r in data] == [0, 1, 2, 3]
    assert data[0].images["image"].data_url() == data_url(PNG)
    second = data[1].images["image"]
    assert (second.mime, second.declared_mime, second.width) == ("image/png", "image/jpeg", 10)
    assert data[2].images["image"].mime == "image/png"
    assert data[3].images["image"].sha256 == data[0].images["image"].sha256


def test_a_local_mmmu_file_takes_a_json_list_of_options(tmp_path):
    (tmp_path / "q.png").write_bytes(PNG)
    path = write_jsonl(tmp_path / "mmmu.jsonl", [
        {"question": "<image 1>?", "options": ["x", "y"], "answer": "B", "image_1": "q.png"}])
    record = datasets.load(find_spec("mmmu-pro").override(dataset=path))[0]
    assert record.fields["options"] == ["x", "y"] and list(record.images) == ["image_1"]


@pytest.mark.parametrize("lines, where, message", [
    (['{"question": "q", "question_type": "t", "answer": ["a"], "image": "ok.png"}',
      '{"question": "q", "question_type": "t", "answer": ["a"], "image": "ok.png"}',
      '{"question": "q", "question_type": "t", "image": "ok.png"}'], "line 3, field 'answer'", "missing"),
    (['{"question": "q", "question_type": "t", "answer": ["a"], "image": "ok.png"', ], "line 1", "not JSON"),
    (['[1, 2]'], "line 1", "expected a JSON object (one row), got list"),
    (['{"question": "q", "question_type": "t", "answer": ["a"], "image": "../outside.png"}'],
     "line 1, field 'image'", "leads outside the file's directory"),
    (['{"question": "q", "question_type": "t", "answer": ["a"], "image": "/etc/passwd"}'],
     "line 1, field 'image'", "is absolute"),
    (['{"question": "q", "question_type": "t", "answer": ["a"], "image": "missing.png"}'],
     "line 1, field 'image'", "cannot be read"),
    (['{"question": "q", "question_type": "t", "answer": ["a"], "image": "text.png"}'],
     "line 1, field 'image'", "not a PNG, JPEG, GIF or WebP image (declared 'image/png')"),
    (['{"question": "q", "question_type": "t", "answer": ["a"], "image": "data:image/png;base64,!!"}'],
     "line 1, field 'image'", "base64 is broken"),
    (['{"question": "q", "question_type": "t", "answer": [NaN], "image": "ok.png"}'], "line 1",
     "NaN is not a JSON number"),
    (['', '  '], None, "no rows: the file is empty"),
])
def test_a_bad_local_file_is_a_config_error_naming_file_line_and_field(tmp_path, lines, where, message):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ok.png").write_bytes(PNG)
    (tmp_path / "data" / "text.png").write_text("not an image")
    (tmp_path / "outside.png").write_bytes(PNG)
    path = write_jsonl(tmp_path / "data" / "rows.jsonl", lines)
    with pytest.raises(ConfigError) as raised:
        datasets.load(find_spec("ocrbench").override(dataset=path))
    assert raised.value.source == str(path) and raised.value.path == where
    assert message in str(raised.value)


def test_a_bad_local_file_exits_2_through_the_cli(tmp_path, kvv):
    path = write_jsonl(tmp_path / "rows.jsonl", [{"question": "q", "question_type": "t", "image": data_url(PNG)}])
    run = kvv("datasets", "pull", "--dataset", f"ocrbench={path}")
    assert run.exit_code == 2 and "Traceback" not in run.output
    assert f"kvv: error: {path}: line 1, field 'answer': missing" in run.stderr
    fixed = write_jsonl(tmp_path / "fixed.jsonl", [{"question": "q", "question_type": "t", "answer": ["a"],
                                                     "image": data_url(PNG)}])
    checked = kvv("datasets", "pull", "--dataset", f"ocrbench={fixed}")
    assert checked.exit_code == 0 and f"ocrbench: {fixed}: 1 row, 1 image" in checked.output


# -- the cache ------------------------------------------------------------------------------------

def test_a_second_load_needs_no_network(stand_in, environment):
    server = stand_in()
    first = [datasets.load(datasets.find_spec(k), server=server.url) for k in ("ocrbench", "mmmu-pro", "aime2025")]
    url = server.url
    server.stop()
    again = [datasets.load(datasets.find_spec(k), server=url) for k in ("ocrbench", "mmmu-pro", "aime2025")]
    assert [d.source for d in again] == ["cache"] * 3
    assert [[r.digest for r in d] for d in again] == [[r.digest for r in d] for d in first]
    assert again[1][0].image_list()[1].data_url() == first[1][0].image_list()[1].data_url()
    assert datasets.known_rows(datasets.find_spec("ocrbench"), server=url)[0] == 40
    entry = entry_dir(environment, url, find_spec("ocrbench"))
    manifest = json.loads((entry / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("dataset", "config", "split", "num_rows", "images")} == {
        "dataset": "echo840/OCRBench", "config": "default", "split": "test", "num_rows": 40, "images": 40}
    assert all(len(info["sha256"]) == 64 for info in manifest["files"].values())
    assert sorted(p.name for p in entry.iterdir()) == ["images", "manifest.json", "rows.jsonl"]


def test_a_cache_that_cannot_be_written_is_a_dataset_error(stand_in, tmp_path, monkeypatch):
    server = stand_in()
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("KVV_CACHE_DIR", str(tmp_path / "a-file"))
    with pytest.raises(DatasetError, match="cannot write the dataset cache in .*a-file"):
        datasets.load(find_spec("aime2025"), server=server.url)
    assert len(datasets.load(find_spec("aime2025"), server=server.url, use_cache=False)) == 30


def test_offline_with_nothing_cached_says_how_to_fill_the_cache(monkeypatch):
    monkeypatch.setenv("KVV_OFFLINE", "1")
    with pytest.raises(DatasetError) as raised:
        datasets.load(find_spec("mmmu-pro"))
    assert "kvv is offline; fill the cache where there is network: kvv datasets pull --dataset mmmu-pro" in str(
        raised.value)


def corrupt_one_image(entry: Path) -> Path:
    image = next((entry / "images").iterdir())
    data = bytearray(image.read_bytes())
    data[-1] ^= 0xFF
    image.write_bytes(bytes(data))
    return image


def test_a_corrupted_cache_file_is_detected_offline(stand_in, environment):
    server = stand_in()
    url = server.url
    datasets.load(find_spec("ocrbench"), server=url)
    server.stop()
    image = corrupt_one_image(entry_dir(environment, url, find_spec("ocrbench")))
    with pytest.raises(DatasetError) as raised:
        datasets.load(find_spec("ocrbench"), server=url, offline=True)
    assert "the cache is corrupt" in str(raised.value) and str(image) in str(raised.value)
    assert "does not match the manifest" in str(raised.value)


def test_a_corrupted_cache_file_is_fetched_again_online(stand_in, environment):
    server = stand_in()
    datasets.load(find_spec("ocrbench"), server=server.url)
    entry = entry_dir(environment, server.url, find_spec("ocrbench"))
    (entry / "rows.jsonl").write_text((entry / "rows.jsonl").read_text().replace("CANVAS", "CANVAZ"))
    notes: list[dict[str, Any]] = []
    data = datasets.load(find_spec("ocrbench"), server=server.url, on_progress=notes.append)
    assert data.source == "server" and data[0].answer == ["CANVAS"]
    assert any("cache corrupt" in n.get("note", "") for n in notes)
    assert datasets.load(find_spec("ocrbench"), server=server.url).source == "cache"


def test_an_image_changed_after_loading_is_not_sent(stand_in, environment):
    server = stand_in()
    data = datasets.load(find_spec("ocrbench"), server=server.url)
    corrupt_one_image(entry_dir(environment, server.url, find_spec("ocrbench")))
    with pytest.raises(DatasetError, match="changed since it was loaded"):
        for record in data:
            record.images["image"].data_url()


# -- the token ------------------------------------------------------------------------------------

def test_the_token_goes_as_bearer_to_the_server_only_and_is_written_nowhere(stand_in, environment, kvv, tmp_path):
    server = stand_in(token=TOKEN, separate_assets=True)
    assert server.assets_url != server.url
    refused = kvv("datasets", "pull", "--suite", "bench", "--datasets-server", server.url)
    assert refused.exit_code == 3 and "needs HF_TOKEN" in refused.stderr
    pulled = kvv("datasets", "pull", "--suite", "bench", "--datasets-server", server.url, env={"HF_TOKEN": TOKEN})
    assert pulled.exit_code == 0, pulled.output
    listed = kvv("datasets", "list", "--verify", env={"HF_TOKEN": TOKEN})
    assert {r["authorization"] for r in rows_requests(server) if r["status"] == 200} == {f"Bearer {TOKEN}"}
    assert asset_requests(server) and {r["authorization"] for r in asset_requests(server)} == {None}
    for run in (refused, pulled, listed):
        assert TOKEN not in run.output
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 70 and all(TOKEN.encode() not in p.read_bytes() for p in written)


# -- the CLI --------------------------------------------------------------------------------------

def test_pull_and_list_through_the_cli(stand_in, kvv, environment):
    server = stand_in()
    empty = kvv("datasets", "list")
    assert empty.exit_code == 0 and "nothing cached" in empty.output
    pulled = kvv("datasets", "pull", "--suite", "bench", "--datasets-server", server.url)
    assert pulled.exit_code == 0, pulled.output
    assert "ocrbench: echo840/OCRBench (default/test): 40 rows (upstream documents 1,000), 40 images" in pulled.output
    assert "aime2025: math-ai/aime25 (default/test): 30 rows, 0 images" in pulled.output
    again = kvv("datasets", "pull", "--datasets-server", server.url)        # --suite bench is the default
    assert again.exit_code == 0 and again.output.count("already cached") == 3
    listed = kvv("datasets", "list", "--verify")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    for dataset, config, rows, images in [("echo840/OCRBench", "default", 40, 40),
                                          ("MMMU/MMMU_Pro", "standard (10 options)", 30, 40),
                                          ("math-ai/aime25", "default", 30, 0)]:
        line = next(text for text in lines if text.startswith(dataset))
        assert config in line and f" {rows} " in line and f" {images} " in line and line.endswith("ok")
    as_json = json.loads(kvv("datasets", "list", "--json").output)
    assert as_json["cache"] == str(environment) and len(as_json["datasets"]) == 3
    one = kvv("datasets", "pull", "--dataset", OCRBENCH_ID, "--datasets-server", server.url, "--refresh")
    assert one.exit_code == 0 and f"{OCRBENCH_ID}: {OCRBENCH_ID} (default/test): 40 rows" in one.output


def test_pull_reports_a_bad_row_and_exits_3(stand_in, kvv):
    server = stand_in(drop_fields=[("math-ai/aime25", 12, "problem")])
    run = kvv("datasets", "pull", "--datasets-server", server.url)
    assert run.exit_code == 3 and "Traceback" not in run.output
    assert "kvv: error: math-ai/aime25 (default/test), row 12, field 'problem': missing" in run.stderr
    assert "1 of 3 datasets not cached: math-ai/aime25 (default/test)" in run.stderr


def test_pull_usage_errors_exit_2(kvv):
    assert kvv("datasets", "pull", "--suite", "nope").exit_code == 2
    assert kvv("datasets", "pull", "--suite", "bench", "--dataset", "ocrbench").exit_code == 2
    insecure = kvv("datasets", "pull", "--datasets-server", "http://viewer.example.com")
    assert insecure.exit_code == 2 and "plain http" in insecure.stderr


# -- the stand-in's fixtures ----------------------------------------------------------------------

def test_fixtures_are_deterministic_valid_pngs_with_known_gold():
    ocr, mmmu, aime = fixtures()
    assert (len(ocr.rows), len(mmmu.rows), len(aime.rows)) == (40, 30, 30)
    assert [r["image"].data for r in ocr.rows] == [r["image"].data for r in ocrbench_fixture().rows]
    image = ocr.rows[0]["image"]
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", image.data[8:16])
    ihdr = image.data[16:16 + length]
    assert kind == b"IHDR" and struct.unpack(">II", ihdr[:8]) == (image.width, image.height)
    assert struct.unpack(">I", image.data[16 + length:20 + length])[0] == zlib.crc32(b"IHDR" + ihdr)
    assert gold(OCRBENCH_ID, 0) == ["CANVAS"] == gold("echo840/OCRBench", 0)
    assert all(isinstance(gold(AIME_ID, i), int) and 0 <= gold(AIME_ID, i) < 1000 for i in range(30))
    assert all(gold(MMMU_ID, i) in "ABCDEFGHIJ" for i in range(30))
    info = image_index()[__import__("hashlib").sha256(image.data).hexdigest()]
    assert info[0].dataset == OCRBENCH_ID and info[0].text == "CANVAS"
