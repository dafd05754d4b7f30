"""A request the simulated server refuses (answered 400 unless a fault says otherwise)."""

from __future__ import annotations


class Rejected(Exception):
    """`param` names the offending field, if any."""

    def __init__(self, param: str | None, message: str):
        super().__init__(message)
        self.param = param
        self.message = message
