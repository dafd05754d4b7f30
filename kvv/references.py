"""Which built-in reference a check may judge against, for the endpoint under test.

A reference (kvv/data/references.yaml) holds only where it was measured: on kvv's simulator
with one tokenizer and chat template, or on a real model. Judging another target against it
raises false alarms, so the endpoint decides:

- kvv's simulator (the Context's `simulator`, the identity its X-KVV-Simulator header announces):
  the reference made on a simulator with that identity, and nothing else;
- any other endpoint: the reference the run's profile names for the check (profile
  `references`), which must be a real model's.

None found: the check is not applicable. Files the user supplies and live references are the
checks' own business: they always apply, on the user's word.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .schema import load_yaml

if TYPE_CHECKING:
    from .checks.base import Context

CATALOGUE = "references.yaml"
# What the endpoint collecting a live reference is, in results.
LIVE = {"name": "live", "file": None,
        "valid_for": "the model behind --reference-base-url, asked the very same requests"}


@dataclass(frozen=True)
class Reference:
    check: str
    name: str
    file: str                              # under kvv/data
    valid_for: dict[str, dict[str, str]]   # {"simulator": {tokenizer, template}} or {"model": {id, …}}
    source: str
    date: str
    licence: str
    requests: str | None = None            # toolcall-replay: the requests the reference answers

    @property
    def simulator(self) -> dict[str, str] | None:
        """The simulator identity it was made on; None for a real model's reference."""
        return self.valid_for.get("simulator")

    def holds_on(self, identity: dict[str, str]) -> bool:
        """Whether it holds on a simulator announcing `identity` (every id it names must match)."""
        return self.simulator is not None and all(identity.get(k) == v for k, v in self.simulator.items())

    @property
    def holds_for(self) -> str:
        """What it is valid for, in words."""
        if self.simulator is not None:
            return f"kvv's simulator ({_ids(self.simulator)})"
        model = dict(self.valid_for["model"])
        return f"{model.pop('id')} ({_ids(model)})"

    def describe(self) -> dict[str, Any]:
        """The reference as results name it."""
        return {"name": self.name, "file": f"kvv/data/{self.file} (built-in)", "valid_for": self.holds_for,
                "source": self.source, "date": self.date, "licence": self.licence}


def supplied(file: str, where: str) -> dict[str, Any]:
    """A reference the user supplied (`where`: the option or flag), as results name it."""
    return {"name": "user-supplied", "file": file, "valid_for": f"what the user vouches for ({where})"}


@lru_cache(maxsize=None)
def _catalogue() -> dict[str, dict[str, Reference]]:
    text = (resources.files("kvv") / "data" / CATALOGUE).read_text(encoding="utf-8")
    data = load_yaml(text, f"kvv/data/{CATALOGUE}")
    return {check: {name: Reference(check=check, name=name, file=entry["file"], valid_for=entry["valid-for"],
                                    source=entry["source"], date=str(entry["date"]), licence=entry["licence"],
                                    requests=entry.get("requests"))
                    for name, entry in entries.items()}
            for check, entries in data.items()}


def builtin(check_id: str) -> dict[str, Reference]:
    """The check's built-in references by name."""
    return _catalogue().get(check_id, {})


def for_target(check_id: str, ctx: Context) -> Reference | None:
    """The built-in reference that holds for the endpoint `ctx` describes, or None."""
    references = builtin(check_id)
    if ctx.simulator is not None:
        return next((r for r in references.values() if r.holds_on(ctx.simulator)), None)
    name = ctx.profile.references.get(check_id)
    if name is None:
        return None
    where = {"source": ctx.profile.path, "path": f"references.{check_id}"}
    if name not in references:
        raise ConfigError(f"no built-in {check_id} reference {name!r}; expected one of: {', '.join(references)}",
                          **where)
    reference = references[name]
    if reference.simulator is not None:     # a profile describes a model; the simulator needs no naming
        raise ConfigError(f"{name!r} holds only for {reference.holds_for}; a profile names references "
                          "measured on its model", **where)
    return reference


def none_holds(check_id: str, ctx: Context, what: str, how: str) -> Exception:
    """The check's NotApplicable when no built-in reference holds for this endpoint: what is
    missing, for which target, what the built-in ones hold for, and `how` to supply one."""
    from .checks.base import NotApplicable

    target = (f"kvv's simulator ({_ids(ctx.simulator)})" if ctx.simulator is not None
              else f"model {ctx.model} (profile {ctx.profile.id})")
    held = " and ".join(r.holds_for for r in builtin(check_id).values()) or "nothing"
    return NotApplicable(f"no {what} valid for {target}; the built-in ones hold for {held}: {how}")


def _ids(ids: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in ids.items())
