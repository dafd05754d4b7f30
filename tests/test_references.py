"""Built-in references: each says what it is valid for, loads with its check's loader, and is
picked only where it holds; the second simulator, where none of kvv's built-in ones holds, is
honest by its own tokenizer."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from importlib import resources

import httpx
import pytest

from kvv import references
from kvv.checks.base import Context
from kvv.checks.prompt_tokens import load_cases
from kvv.checks.toolcall_replay import load_reference, load_requests
from kvv.errors import ConfigError
from kvv.profile import builtin_profiles, load_profile
from kvv.simulator.tokenizer import DEFAULT, TOKENIZERS

KVV_SIM = DEFAULT.identity
ALT_SIM = TOKENIZERS["kvv-chunks-1"].identity
DATA = resources.files("kvv") / "data"
EVERY = [r for check in ("prompt-tokens", "toolcall-replay") for r in references.builtin(check).values()]


def ctx(profile: str = "kimi-k3", simulator: dict[str, str] | None = None, **options) -> Context:
    return Context(profile, load_profile(profile), "kimi", options, simulator=simulator)


# -- the catalogue ----------------------------------------------------------------------------------

@pytest.mark.parametrize("reference", EVERY, ids=lambda r: f"{r.check}:{r.name}")
def test_every_reference_says_what_it_is_valid_for_and_loads(reference):
    assert len(reference.valid_for) == 1 and set(reference.valid_for) <= {"simulator", "model"}
    assert reference.source and re.fullmatch(r"\d{4}-\d\d-\d\d", reference.date) and reference.licence
    if reference.simulator is not None:     # names a simulator kvv has
        assert any(t.identity == reference.simulator for t in TOKENIZERS.values()), reference.simulator
    else:
        assert set(reference.valid_for["model"]) == {"id", "tokenizer", "template"}
    if reference.check == "prompt-tokens":
        assert load_cases(None, reference.file)
    else:
        requests = load_requests(None, reference.requests)
        assert len(load_reference(None, len(requests), reference.file)) == len(requests)


def test_simulator_corpus_constants_are_its_tokenizers_counts():
    for reference in EVERY:
        if reference.check == "prompt-tokens" and reference.simulator is not None:
            tokenizer = TOKENIZERS[reference.simulator["tokenizer"]]
            for case in load_cases(None, reference.file):
                assert case["expected_prompt_tokens"] == tokenizer.prompt_tokens(case["request"]), case["id"]


def test_upstream_k3_cases_are_vendored_with_licence_and_provenance():
    folder = DATA / "upstream"
    text = (folder / "kimi-k3-prompt-token-cases.jsonl").read_bytes()
    source = (folder / "SOURCE.md").read_text()
    assert hashlib.sha256(text).hexdigest() in source and "489077b" in source
    licence = (folder / "LICENSE").read_text()
    assert "MIT License" in licence and "Copyright (c) 2026 Moonshot AI" in licence
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in licence
    cases = load_cases(None, "upstream/kimi-k3-prompt-token-cases.jsonl")
    assert len(cases) == 44


def test_profiles_name_only_references_measured_on_their_model():
    named = {p: load_profile(p).references for p in builtin_profiles()}
    assert named == {"generic": {}, "kimi-k2.5": {}, "kimi-k3": {"prompt-tokens": "kimi-k3-upstream"}}
    reference = references.builtin("prompt-tokens")["kimi-k3-upstream"]
    assert reference.simulator is None and reference.valid_for["model"]["id"] == "Kimi K3"


# -- the selection rule -----------------------------------------------------------------------------

@pytest.mark.parametrize("profile", ["kimi-k3", "kimi-k2.5", "generic"])
@pytest.mark.parametrize("check", ["prompt-tokens", "toolcall-replay"])
def test_kvv_simulator_gets_its_own_references_under_every_profile(profile, check):
    chosen = references.for_target(check, ctx(profile, KVV_SIM))
    assert chosen is not None and chosen.name == "kvv-simulator"


@pytest.mark.parametrize("check", ["prompt-tokens", "toolcall-replay"])
def test_another_simulator_gets_none_not_even_the_profiles_model_reference(check):
    assert references.for_target(check, ctx("kimi-k3", ALT_SIM)) is None
    # An identity matching in one id only is another simulator too.
    assert references.for_target(check, ctx("kimi-k3", {**KVV_SIM, "template": "kvv-chat-2"})) is None


def test_any_other_endpoint_gets_what_the_profile_names():
    assert references.for_target("prompt-tokens", ctx("kimi-k3")).name == "kimi-k3-upstream"
    assert references.for_target("toolcall-replay", ctx("kimi-k3")) is None
    for profile in ("kimi-k2.5", "generic"):
        assert references.for_target("prompt-tokens", ctx(profile)) is None


def test_a_profile_naming_an_unknown_or_simulator_reference_is_a_config_error():
    profile = load_profile("generic")
    for name, says in (("nope", "expected one of: kvv-simulator, kimi-k3-upstream"),
                       ("kvv-simulator", "holds only for kvv's simulator")):
        bad = Context("m", dataclasses.replace(profile, references={"prompt-tokens": name}), "none")
        with pytest.raises(ConfigError) as caught:
            references.for_target("prompt-tokens", bad)
        assert says in str(caught.value) and "references.prompt-tokens" in str(caught.value)


def test_results_name_the_reference_and_what_it_holds_for():
    described = references.builtin("prompt-tokens")["kimi-k3-upstream"].describe()
    assert described["name"] == "kimi-k3-upstream"
    assert described["file"] == "kvv/data/upstream/kimi-k3-prompt-token-cases.jsonl (built-in)"
    assert described["valid_for"].startswith("Kimi K3 (tokenizer Kimi K3's own")
    simulator = references.builtin("toolcall-replay")["kvv-simulator"].describe()
    assert simulator["valid_for"] == "kvv's simulator (tokenizer kvv-words-1, template kvv-chat-1)"


# -- the second simulator ---------------------------------------------------------------------------

ALT = TOKENIZERS["kvv-chunks-1"]


def test_second_tokenizer_counts_otherwise():
    assert ALT.count("Hello, world") == 4 and DEFAULT.count("Hello, world") == 3    # "Hell" "o," "worl" "d"
    text = "The quick-brown fox's 12345 jumps."
    parts = ALT.pieces(text)
    assert "".join(parts) == text
    assert all(ALT.count("".join(parts[:k])) == k for k in range(len(parts) + 1))
    # kvv's built-in constants would fail a healthy vendor counting like this (slack 3).
    corpus = load_cases(None)
    missed = [c["id"] for c in corpus if not 0 <= ALT.prompt_tokens(c["request"]) - c["expected_prompt_tokens"] <= 3]
    assert missed == [c["id"] for c in corpus]


@pytest.mark.parametrize("stream", [False, True])
def test_second_simulator_announces_itself_and_its_usage_is_honest_by_its_own_count(simulate, stream):
    sim = simulate("kimi-k3", tokenizer="kvv-chunks-1")
    body = {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "Describe a river in a few sentences."}],
            "thinking": {"type": "enabled"}}
    extra = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    with httpx.Client(timeout=10) as http:
        response = http.post(f"{sim.url}/chat/completions", json={**body, **extra})
        capped = http.post(f"{sim.url}/chat/completions", json={**body, "max_tokens": 5})
    assert response.headers["x-kvv-simulator"] == "tokenizer=kvv-chunks-1; template=kvv-chat-2"
    if stream:
        events = [json.loads(line[6:]) for line in response.text.splitlines()
                  if line.startswith("data: {")]
        usage = next(e["choices"][0]["usage"] for e in events if e["choices"] and e["choices"][0].get("usage"))
        reasoning = "".join(e["choices"][0]["delta"].get("reasoning_content", "") for e in events if e["choices"])
        content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    else:
        usage, message = response.json()["usage"], response.json()["choices"][0]["message"]
        reasoning, content = message["reasoning_content"], message["content"]
    assert reasoning and content
    assert usage["prompt_tokens"] == ALT.prompt_tokens(body) != DEFAULT.prompt_tokens(body)
    assert usage["completion_tokens"] == ALT.count(reasoning) + ALT.count(content)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    cut = capped.json()
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 5
    assert ALT.count(cut["choices"][0]["message"]["reasoning_content"]) == 5


def test_unknown_tokenizer_is_refused(kvv):
    run = kvv("simulate", "--port", "0", "--tokenizer", "gpt-2")
    assert run.exit_code == 2
    assert "unknown tokenizer 'gpt-2'; expected one of kvv-words-1, kvv-chunks-1" in run.output + run.stderr
