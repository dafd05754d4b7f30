"""The append-only journal: one JSON line per HTTP attempt and per finished item.

Lines are flushed as they are written, so an interrupted run loses nothing; `--resume`
reads the finished items back.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .redact import Redactor
from .verdict import ERROR


class Journal:
    def __init__(self, path: Path, redactor: Redactor, *, append: bool):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.redactor = redactor
        self._file = path.open("a" if append else "w", encoding="utf-8")

    def write(self, kind: str, **record: Any) -> None:
        line = {"ts": round(time.time(), 3), "kind": kind, **record}
        self._file.write(json.dumps(self.redactor.obj(line), ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_journal(path: Path) -> tuple[dict[str, Any] | None, dict[tuple[str, str, str], dict[str, Any]]]:
    """(the first run record, the items finished by (check, item, digest)). Errored items run again."""
    first: dict[str, Any] | None = None
    done: dict[tuple[str, str, str], dict[str, Any]] = {}
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue              # a line cut by a hard kill: that item simply runs again
            if not isinstance(record, dict):
                continue
            if record.get("kind") == "run" and first is None:
                first = record
            elif record.get("kind") == "item" and record.get("verdict") != ERROR:
                try:
                    done[(record["check"], record["item"], record["digest"])] = record
                except (KeyError, TypeError):
                    continue
    return first, done
