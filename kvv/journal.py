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


def finished_items(path: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Items a previous run finished, by (check, item, digest). Errored items are run again."""
    done: dict[tuple[str, str, str], dict[str, Any]] = {}
    if not path.is_file():
        return done
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue              # a line cut by a hard kill: that item simply runs again
            if record.get("kind") == "item" and record.get("verdict") != ERROR:
                done[(record["check"], record["item"], record["digest"])] = record
    return done
