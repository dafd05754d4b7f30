"""A short string that matches a regular expression, for JSON Schema's `pattern` keyword."""

from __future__ import annotations

import re
# The parser's opcodes; `re` exposes no public parse tree, and typeshed has no stubs for these private modules.
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

# A character each class is sure to contain (a category inside or outside [...]).
CATEGORY_EXAMPLES = {
    sre.CATEGORY_DIGIT: "0", sre.CATEGORY_NOT_DIGIT: "a",
    sre.CATEGORY_SPACE: " ", sre.CATEGORY_NOT_SPACE: "a",
    sre.CATEGORY_WORD: "a", sre.CATEGORY_NOT_WORD: "-",
    sre.CATEGORY_LINEBREAK: "\n", sre.CATEGORY_NOT_LINEBREAK: "a",
}
# The same categories as regex source, to rebuild a class and test candidates against it.
CATEGORY_SOURCES = {
    sre.CATEGORY_DIGIT: r"\d", sre.CATEGORY_NOT_DIGIT: r"\D",
    sre.CATEGORY_SPACE: r"\s", sre.CATEGORY_NOT_SPACE: r"\S",
    sre.CATEGORY_WORD: r"\w", sre.CATEGORY_NOT_WORD: r"\W",
}
# Tried in turn for a negated class such as [^abc].
FALLBACK_CHARACTERS = "ax0_- Z.9"
REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)


def matching_string(pattern: str, min_length: int = 0) -> str:
    """The shortest string the regex generates, lengthened by its repeats toward `min_length`.

    Lookarounds are ignored, so the result is a candidate: the caller checks it still matches.
    """
    tree = _parser.parse(pattern)
    shortest = _Emitter(0).emit(tree)
    if len(shortest) >= min_length:
        return shortest
    return _Emitter(min_length - len(shortest)).emit(tree)


class _Emitter:
    """Walks the parse tree once; `budget` is how many characters the repeats may add."""

    def __init__(self, budget: int):
        self.budget = budget
        self.groups: dict[int, str] = {}

    def emit(self, items: Any) -> str:
        return "".join(self._item(op, value) for op, value in items)

    def _item(self, op: Any, value: Any) -> str:
        if op is sre.LITERAL:
            return chr(value)
        if op is sre.NOT_LITERAL:
            return next(c for c in FALLBACK_CHARACTERS if ord(c) != value)
        if op is sre.ANY:
            return "a"
        if op is sre.IN:
            return _class_member(value)
        if op is sre.CATEGORY:
            return CATEGORY_EXAMPLES.get(value, "a")
        if op is sre.BRANCH:
            return min((self.emit(branch) for branch in value[1]), key=len)
        if op is sre.SUBPATTERN:
            group, _, _, items = value
            text = self.emit(items)
            if group is not None:
                self.groups[group] = text
            return text
        if op is sre.ATOMIC_GROUP:
            return self.emit(value)
        if op in REPEATS:
            return self._repeat(*value)
        if op is sre.GROUPREF:
            return self.groups.get(value, "")
        if op is sre.GROUPREF_EXISTS:
            group, yes, no = value
            return self.emit(yes) if group in self.groups else self.emit(no or [])
        return ""            # anchors (AT) and lookarounds (ASSERT, ASSERT_NOT) consume nothing

    def _repeat(self, least: int, most: int, items: Any) -> str:
        parts = [self.emit(items) for _ in range(least)]
        while self.budget > 0 and len(parts) < most:
            unit = self.emit(items)
            if not unit:
                break
            parts.append(unit)
            self.budget -= len(unit)
        return "".join(parts)


def _class_member(members: list[tuple[Any, Any]]) -> str:
    if members and members[0][0] is sre.NEGATE:
        excluded = re.compile(_class_source(members[1:]))
        return next((c for c in FALLBACK_CHARACTERS if not excluded.fullmatch(c)), "\x00")
    op, value = members[0]
    if op is sre.LITERAL:
        return chr(value)
    if op is sre.RANGE:
        return chr(value[0])
    return CATEGORY_EXAMPLES.get(value, "a")


def _class_source(members: list[tuple[Any, Any]]) -> str:
    """A [...] regex for a parsed class, to test candidate characters against."""
    parts = []
    for op, value in members:
        if op is sre.LITERAL:
            parts.append(re.escape(chr(value)))
        elif op is sre.RANGE:
            parts.append(f"{re.escape(chr(value[0]))}-{re.escape(chr(value[1]))}")
        elif op is sre.CATEGORY:
            parts.append(CATEGORY_SOURCES.get(value, ""))
    return f"[{''.join(parts)}]" if parts else "[^\\s\\S]"
