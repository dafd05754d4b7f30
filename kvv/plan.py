"""Which checks run, with which items, and what they may cost. No network."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import Check, Context, Item, registry
from .checks.base import NotApplicable
from .config import Settings
from .errors import ConfigError
from .profile import Profile


@dataclass
class PlannedCheck:
    check: Check
    items: list[Item]
    context: Context
    # Each item's place in the check's whole plan: with --shard the items are a slice of it, and
    # kvv merge puts the slices back in this order (sequential tests see items as drawn).
    positions: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.positions:
            self.positions = list(range(len(self.items)))

    @property
    def requests(self) -> int:
        return sum(item.request_count or len(item.requests) for item in self.items)

    @property
    def token_ceiling(self) -> int | None:
        """Completion tokens at most; None when some request leaves it to the server."""
        ceilings = [item.token_ceiling for item in self.items if item.token_ceiling is not None]
        if len(ceilings) < len(self.items):
            return None
        return sum(ceilings)

    @property
    def prompt_tokens(self) -> int | None:
        """Estimated prompt tokens of the items that state theirs (long contexts); None if none does."""
        known = [item.prompt_tokens for item in self.items if item.prompt_tokens is not None]
        return sum(known) if known else None

    def rungs(self) -> list[dict[str, Any]]:
        """A ladder probe's cost per rung, in plan order: {rung, items, requests, completion, prompt}."""
        table: dict[str, dict[str, Any]] = {}
        for item in self.items:
            if item.rung is None:
                continue
            row = table.setdefault(item.rung, {"rung": item.rung, "items": 0, "requests": 0, "completion": 0,
                                               "prompt": None})
            row["items"] += 1
            row["requests"] += item.request_count or len(item.requests)
            row["completion"] = None if row["completion"] is None or item.token_ceiling is None \
                else row["completion"] + item.token_ceiling
            if item.prompt_tokens is not None:
                row["prompt"] = (row["prompt"] or 0) + item.prompt_tokens
        return list(table.values())


@dataclass
class Plan:
    checks: list[PlannedCheck]
    skipped: dict[str, str]          # check id -> why it does not run
    # make_plan's plans are made again once the probe says what the endpoint is (which
    # references hold depends on it); a plan put together by hand runs as it is.
    from_settings: bool = False
    titles: dict[str, str] = field(default_factory=dict)   # every known check id -> its title
    # Options of every check the settings chose, whether or not it got items (a shard may hold
    # none of a check's items): what the run record compares.
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(p.requests for p in self.checks)

    @property
    def token_budget(self) -> tuple[int, int]:
        """(completion tokens at most over capped items, items left at the server's default)."""
        items = [i for p in self.checks for i in p.items]
        return (sum(i.token_ceiling for i in items if i.token_ceiling is not None),
                sum(1 for i in items if i.token_ceiling is None))


def make_plan(settings: Settings, profile: Profile, model: str, think_mode: str,
              simulator: dict[str, str] | None = None, previous: Plan | None = None) -> Plan:
    """The plan; with `previous` (the same settings, planned before the probe), only the checks
    whose items depend on the endpoint are built again."""
    every = registry(profile)
    _validate_ids(settings, {c.id: c for c in every})
    # Every check's settings are validated, also those of checks this run leaves out.
    configured = {}
    for check in every:
        config = dict(settings.checks.get(check.id, {}))
        enabled = config.pop("enabled", True)
        configured[check.id] = (enabled, _options(settings, check, config))
    planned, skipped, chosen, chosen_options = [], {}, 0, {}
    before = {p.check.id: p for p in previous.checks} if previous else {}
    for check in every:
        enabled, options = configured[check.id]
        # --only names checks directly, whatever suite they belong to.
        if settings.only:
            if check.id not in settings.only:
                continue
        elif settings.suite != "all" and settings.suite not in check.suites:
            continue
        if check.id in settings.skip or not enabled:
            skipped[check.id] = "skipped by configuration"
            continue
        chosen += 1
        chosen_options[check.id] = options
        if previous is not None and not check.endpoint_sensitive:
            if check.id in before:
                planned.append(before[check.id])
            elif check.id in previous.skipped:
                skipped[check.id] = previous.skipped[check.id]
            continue
        context = Context(model=model, profile=profile, think_mode=think_mode, options=options,
                          reference=bool(settings.reference_base_url), simulator=simulator,
                          judge=bool(settings.judge_base_url),
                          seed=settings.seed, full_pass=settings.full_pass,
                          max_prompt_tokens=settings.max_prompt_tokens,
                          datasets_server=settings.datasets_server)
        try:
            items = check.build(context)
        except NotApplicable as why:
            skipped[check.id] = str(why)
            continue
        if not items:
            skipped[check.id] = f"not applicable to profile {profile.id} with think mode {think_mode}"
            continue
        positions = list(range(len(items)))
        if settings.shard:
            index, count = settings.shard
            positions = [p for p in positions if shard_of(items[p], count) == index]
            if not positions:
                skipped[check.id] = f"shard {index}/{count} holds none of its {len(items)} items"
                continue
        planned.append(PlannedCheck(check, [items[p] for p in positions], context, positions))
    # The benchmarks share α: each tests at α / k (kvv.checks.bench); so do the probes (kvv.checks.ladder).
    for suite in ("bench", "probes"):
        family = [p for p in planned if suite in p.check.suites]
        for p in family:
            p.context.family = len(family)
    if not chosen:
        # Checks not applicable to this target are a finding of the run, reported as such;
        # a selection that leaves nothing at all is the user's mistake.
        raise ConfigError("no check left to run", source="--only/--skip")
    return Plan(planned, skipped, from_settings=True, titles={c.id: c.title for c in every},
                options=chosen_options)


def shard_of(item: Item, count: int) -> int:
    """Which of `count` shards (1-based) holds `item`: a hash of its id and digest, so the slices
    of any N are disjoint, cover the plan, and do not depend on the order items were built in
    (the id spreads items that send the same request)."""
    key = hashlib.sha256(f"{item.id}\0{item.digest}".encode()).hexdigest()
    return int(key[:16], 16) % count + 1


def _validate_ids(settings: Settings, known: dict[str, Check]) -> None:
    valid = ", ".join(known)
    for source, ids in (("--only", settings.only), ("--skip", settings.skip)):
        for check_id in ids:
            if check_id not in known:
                raise ConfigError(f"unknown check {check_id!r}; expected one of: {valid}", source=source)
    for check_id in settings.checks:
        if check_id not in known:
            raise ConfigError(f"unknown check {check_id!r}; expected one of: {valid}",
                              source=settings.config_file, path=f"checks.{check_id}")


def _options(settings: Settings, check: Check, config: dict[str, Any]) -> dict[str, Any]:
    options = dict(check.options)
    for key, value in config.items():
        if key not in check.options:
            expected = ", ".join(["enabled", *check.options]) or "enabled"
            raise ConfigError(f"unknown option {key!r}; expected one of: {expected}",
                              source=settings.config_file, path=f"checks.{check.id}.{key}")
        options[key] = _option_value(settings, check, key, value)
    return options


def _option_value(settings: Settings, check: Check, key: str, value: Any) -> Any:
    default = check.options[key]
    where = {"source": settings.config_file, "path": f"checks.{check.id}.{key}"}
    if default is None:                      # a file path, relative to the config file
        if not isinstance(value, str) or not value:
            raise ConfigError(f"expected a file path, got {value!r}", **where)
        path = Path(value)
        if not path.is_absolute() and settings.config_file:
            path = Path(settings.config_file).parent / path
        if not path.is_file():
            raise ConfigError(f"no such file: {path}", **where)
        return str(path)
    if type(value) is not type(default) or (isinstance(value, (int, float)) and value <= 0):
        raise ConfigError(f"expected a positive {type(default).__name__}, got {value!r}", **where)
    return value
