"""Configuration: precedence, and bad input that exits 2 naming the file, the key and the expectation."""

from __future__ import annotations

from pathlib import Path

import pytest


def write(tmp_path: Path, text: str, name: str = "kvv.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text,expected", [
    ("base-url: [unclosed\n", ["not valid YAML", "line"]),
    ("base-url: http://x/v1\nconcurency: 4\n", ["unknown key 'concurency'", "concurrency"]),
    ("concurrency: four\n", ["concurrency", "'four' is not of type 'integer'"]),
    ("think-mode: sometimes\n", ["think-mode", "kimi"]),
    ("checks:\n  param-temprature: {enabled: false}\n", ["checks.param-temprature", "unknown check",
                                                         "param-temperature"]),
    ("checks:\n  max-tokens-applied: {limt: 3}\n", ["checks.max-tokens-applied.limt", "limit"]),
    ("checks:\n  max-tokens-applied: {limit: many}\n", ["checks.max-tokens-applied.limit", "positive int"]),
    ("checks:\n  baseline: {enabled: maybe}\n", ["checks.baseline.enabled", "boolean"]),
    ("- just\n- a list\n", ["mapping"]),
])
def test_bad_config_exits_2_naming_file_and_key(kvv, tmp_path, text, expected):
    path = write(tmp_path, text)
    run = kvv("plan", "--config", path, "--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    assert run.exit_code == 2, run.output
    assert path in run.stderr
    for fragment in expected:
        assert fragment in run.stderr, run.stderr
    assert "Traceback" not in run.output + run.stderr


def test_missing_config_file(kvv, tmp_path):
    run = kvv("plan", "--config", str(tmp_path / "nope.yaml"), "--base-url", "http://127.0.0.1:9/v1")
    assert run.exit_code == 2
    assert "nope.yaml" in run.stderr


@pytest.mark.parametrize("args,expected", [
    (["--only", "param-temprature"], "unknown check 'param-temprature'"),
    (["--skip", "nothing"], "unknown check 'nothing'"),
    (["--profile", "kimi-k9"], "no such profile"),
    (["--think-mode", "maybe"], "Invalid value for '--think-mode'"),
])
def test_bad_flags_exit_2(kvv, args, expected):
    run = kvv("plan", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", *args)
    assert run.exit_code == 2
    assert expected in run.stderr + run.output


def test_no_endpoint_exits_2(kvv):
    run = kvv("run", "--model", "m")
    assert run.exit_code == 2
    assert "no endpoint" in run.stderr


def test_insecure_http_to_a_remote_host_needs_opt_in(kvv):
    run = kvv("run", "--base-url", "http://example.invalid/v1", "--model", "m")
    assert run.exit_code == 2
    assert "http" in run.stderr


def test_bad_profile_file(kvv, tmp_path):
    profile = write(tmp_path, "id: mine\nthinking: {modes: [thinking], default: thinking}\n"
                              "parameters:\n  temperature:\n"
                              "    thinking: {equals: 1.0, accept: [1.0], reject: [1.0]}\n",
                    "mine.yaml")
    run = kvv("plan", "--profile", profile, "--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    assert run.exit_code == 2
    assert "parameters.temperature.thinking.reject" in run.stderr


def test_precedence_flags_over_file_over_environment(kvv, tmp_path):
    path = write(tmp_path, "base-url: http://127.0.0.1:7001/v1\nmodel: from-file\n")
    env = {"KVV_BASE_URL": "http://127.0.0.1:7000/v1", "KVV_MODEL": "from-env", "THINK_MODE": "opensource"}
    run = kvv("plan", "--config", path, "--model", "from-flag", env=env)
    assert run.exit_code == 0, run.stderr
    assert "http://127.0.0.1:7001/v1" in run.output
    assert "model from-flag" in run.output
    assert "think mode opensource" in run.output
    run = kvv("plan", env={**env, "KIMI_BASE_URL": "http://ignored/v1"})
    assert "http://127.0.0.1:7000/v1" in run.output and "model from-env" in run.output


def test_profile_file_is_relative_to_the_config(kvv, tmp_path):
    (tmp_path / "profiles").mkdir()
    write(tmp_path, "id: strict\nthinking: {modes: [non-thinking], default: non-thinking}\n"
                    "parameters:\n  top_p:\n    non-thinking: {equals: 0.9, accept: [0.9], reject: [0.5]}\n",
          "profiles/strict.yaml")
    path = write(tmp_path, "base-url: http://127.0.0.1:9/v1\nmodel: m\nprofile: profiles/strict.yaml\n")
    run = kvv("plan", "--config", path)
    assert run.exit_code == 0, run.stderr
    assert "param-top-p" in run.output and "profile strict" in run.output


def test_check_options_and_enabled_from_the_file(kvv, simulator, tmp_path):
    sim = simulator("kimi-k3")
    path = write(tmp_path, f"base-url: {sim.url}\nmodel: kimi-k3\nchecks:\n"
                           "  max-tokens-applied: {limit: 3}\n  stream-parity: {enabled: false}\n"
                           "  param-temperature:\n    enabled: true\n")
    run = kvv("run", "--config", path, "--only", "max-tokens-applied,param-temperature,stream-parity")
    assert run.exit_code == 0, run.output
    assert set(run.verdicts()) == {"max-tokens-applied", "param-temperature"}
    assert all("max_tokens=3" in i["id"] for i in run.check("max-tokens-applied")["items"])
    assert run.check("param-temperature")["config_line"] == 6
    assert run.results["config_file"] == path
