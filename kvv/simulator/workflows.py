"""Scripted multi-step tool tasks (kvv/data/tool-workflows.yaml) that the simulated model plays.

A task is recognised by its instruction (the first user message). Round k of its script is
played when the history holds k assistant tool-call turns; "{rK.J}" in arguments and in the
final answer stands for the result of call J of round K, found by the id of that call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from .calls import call_id
from .conversation import first_user_text, tool_call_turns, tool_results

PLACEHOLDER = re.compile(r"\{r(\d+)\.(\d+)\}")


@dataclass(frozen=True)
class Task:
    id: str
    instruction: str
    script: list[list[tuple[str, Any]]]      # rounds of (tool name, arguments)
    final: str


@dataclass(frozen=True)
class Step:
    """What the model does next: a round of calls, or (calls None) a text answer."""

    calls: list[tuple[str, Any]] | None = None
    text: str | None = None


class _Missing(Exception):
    def __init__(self, call: str):
        super().__init__(call)
        self.call = call


def task_for(messages: list[dict[str, Any]], path: str | None = None) -> Task | None:
    """The task whose instruction the conversation starts with, if any."""
    return load_tasks(path).get(first_user_text(messages).strip())


@lru_cache(maxsize=8)
def load_tasks(path: str | None = None) -> dict[str, Task]:
    """The tasks of a workflows file (kvv's own by default), by instruction."""
    if path is None:
        text = (resources.files("kvv") / "data" / "tool-workflows.yaml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    tasks = [_task(entry) for entry in (yaml.safe_load(text) or {}).get("tasks") or []]
    return {task.instruction: task for task in tasks}


def next_step(task: Task, messages: list[dict[str, Any]], id_format: str) -> Step:
    """The script's next round, with earlier results filled in; then the final answer.

    A result the history lacks makes the model say so instead ("missing tool result for <id>").
    """
    turns = tool_call_turns(messages)
    results = tool_results(messages)

    def result(round_: int, position: int) -> str:
        made = turns[round_][position] if round_ < len(turns) and position < len(turns[round_]) else None
        call = made.get("id") if isinstance(made, dict) else None
        if not isinstance(call, str):     # never made: name it by the id it would have had
            earlier = sum(len(calls) for calls in task.script[:round_])
            call = call_id(id_format, task.script[round_][position][0], earlier + position)
        if call not in results:
            raise _Missing(call)
        return results[call]

    try:
        if len(turns) < len(task.script):
            return Step(calls=[(name, _filled(arguments, result)) for name, arguments in task.script[len(turns)]])
        return Step(text=_substituted(task.final, result))
    except _Missing as missing:
        return Step(text=f"missing tool result for {missing.call}")


def _filled(value: Any, result: Callable[[int, int], str]) -> Any:
    """Arguments with placeholders replaced; a lone placeholder takes the result's JSON value."""
    if isinstance(value, dict):
        return {key: _filled(item, result) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, result) for item in value]
    if not isinstance(value, str):
        return value
    text = _substituted(value, result)
    if not PLACEHOLDER.fullmatch(value):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _substituted(text: str, result: Callable[[int, int], str]) -> str:
    """`text` with each "{rK.J}" replaced by the result of call J of round K."""
    return PLACEHOLDER.sub(lambda found: result(int(found[1]), int(found[2])), text)


def _task(entry: dict[str, Any]) -> Task:
    script = [[(call["name"], call.get("arguments") or {}) for call in round_] for round_ in entry["script"]]
    return Task(entry["id"], entry["instruction"].strip(), script, str(entry["final"]))
