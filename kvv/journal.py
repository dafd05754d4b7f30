"""The append-only journal: one JSON line per HTTP attempt and per finished item.

Each line goes to the file in one write(2) on an O_APPEND descriptor, so an interrupted run
loses nothing and a killed one at most its last line; `--resume` reads the finished items back.
"""

from __future__ import annotations

import json
import os
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
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if append else os.O_TRUNC)
        self._fd = os.open(path, flags, 0o644)
        if append and _cut(path):
            self._put(b"\n")          # a line cut by a hard kill ends here, not inside the next one

    def write(self, kind: str, **record: Any) -> None:
        line = {"ts": round(time.time(), 3), "kind": kind, **record}
        self._put((self.redactor.dumps(line) + "\n").encode("utf-8"))

    def _put(self, data: bytes) -> None:
        # No buffer between lines: a signal or crash never leaves half a line behind a whole one.
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _cut(path: Path) -> bool:
    """Whether the file's last line lacks its newline."""
    with path.open("rb") as file:
        if file.seek(0, os.SEEK_END) == 0:
            return False
        file.seek(-1, os.SEEK_END)
        return file.read(1) != b"\n"


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
