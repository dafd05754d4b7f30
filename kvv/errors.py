"""Errors kvv raises to its caller. Everything a vendor does wrong is a finding, not one of these."""

from __future__ import annotations


class KvvError(Exception):
    """Base class."""


class ConfigError(KvvError):
    """Bad configuration or input file: the CLI exits 2 with this message.

    The message names the file, the key path and what was expected.
    """

    def __init__(self, message: str, *, source: str | None = None, path: str | None = None):
        self.source = source
        self.path = path
        where = ": ".join(p for p in (source, path) if p)
        super().__init__(f"{where}: {message}" if where else message)
