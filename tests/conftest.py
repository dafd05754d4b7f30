"""Shared fixtures: a simulated vendor on a free loopback port, and kvv run in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from click.testing import CliRunner

from kvv.cli import cli
from kvv.profile import load_profile
from kvv.simulator import Simulator, parse_faults

CANARY_KEY = "sk-canary-3f9c1e7a5b2d4c6e8f0a1b3c5d7e9f21"
# Upstream's own case files, vendored with their MIT notice (see SOURCE.md there), for proving
# kvv reads their formats: the tests read nothing from outside the checkout.
UPSTREAM_DATA = Path(__file__).resolve().parent / "fixtures" / "upstream-kvv"


@pytest.fixture
def simulate() -> Iterator[Callable[..., Simulator]]:
    """Start simulated vendors on free ports: simulate("kimi-k3", {"usage-off": 7}, seed=1).
    Every one started is stopped after the test."""
    started: list[Simulator] = []

    def start(profile: str = "kimi-k3", faults: dict[str, Any] | None = None, **options: Any) -> Simulator:
        options.setdefault("retry_after", 0)
        sim = Simulator(load_profile(profile), faults, **options).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(simulate) -> Callable[..., Simulator]:
    """The same with faults as the CLI spells them: simulator("kimi-k3", "ignore-temperature")."""
    def start(profile: str = "kimi-k3", *faults: str, **options: Any) -> Simulator:
        return simulate(profile, parse_faults(list(faults)), **options)

    return start


class Run:
    def __init__(self, result, out: Path):
        self.exit_code = result.exit_code
        self.output = result.output
        self.stderr = result.stderr
        self.out = out
        self.exception = result.exception

    @property
    def results(self) -> dict[str, Any]:
        return json.loads((self.out / "results.json").read_text())

    def check(self, check_id: str) -> dict[str, Any]:
        return next(c for c in self.results["checks"] if c["id"] == check_id)

    def verdicts(self) -> dict[str, str]:
        return {c["id"]: c["verdict"] for c in self.results["checks"]}

    def assert_fails_exactly(self, failing: set[str]) -> None:
        """Exit 1, the `failing` checks fail with evidence, and every other check passes."""
        assert self.exit_code == 1, self.output
        verdicts = self.verdicts()
        assert {c for c, v in verdicts.items() if v == "fail"} == set(failing), verdicts
        assert all(v == "pass" for c, v in verdicts.items() if c not in failing), verdicts
        assert all(self.check(c)["evidence"] for c in failing)


@pytest.fixture
def kvv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """Invoke the CLI in-process: kvv("run", "--base-url", url, ...), output under tmp_path."""
    for name in ("KVV_API_KEY", "KIMI_API_KEY", "KVV_BASE_URL", "KIMI_BASE_URL", "KVV_MODEL", "MODEL_NAME",
                 "THINK_MODE", "KVV_THINK_MODE", "KVV_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    def invoke(*args: str, env: dict[str, str] | None = None, out: str = "out") -> Run:
        out_dir = tmp_path / out
        argv = list(args)
        if argv and argv[0] == "run" and "--output-dir" not in argv:
            argv += ["--output-dir", str(out_dir)]
        result = CliRunner().invoke(cli, argv, env=env, catch_exceptions=True)
        return Run(result, out_dir)

    return invoke


@pytest.fixture(autouse=True)
def no_internal_errors(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """Every test fails if a run it made reports a kvv internal error: a crash of kvv must never
    pass as the vendor's outage. Tests that cause one on purpose say so with
    @pytest.mark.internal_errors_expected."""
    yield
    if request.node.get_closest_marker("internal_errors_expected"):
        return
    for journal in tmp_path.rglob("journal.jsonl"):
        crashes = [line for line in journal.read_text(encoding="utf-8", errors="replace").splitlines()
                   if '"kind": "internal"' in line]
        if crashes:
            pytest.fail(f"kvv internal error in {journal}:\n{json.loads(crashes[0]).get('traceback')}")


@pytest.fixture(autouse=True)
def dataset_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Benchmark datasets are cached under a temporary directory, never the user's cache; no
    test reaches the public dataset server (there is a stand-in in kvv.simulator)."""
    monkeypatch.setenv("KVV_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kvv-cache"))
    monkeypatch.delenv("KVV_DATASETS_SERVER", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
