"""`kvv ingest swe-bench`: an agentic benchmark's report turned into a kvv check.

kvv does not run coding agents: the SWE-bench harness (or DeepSWE on Pier) runs the vendor's
model as an agent and writes a report. This module reads that report, feeds one score per
instance (1 resolved, 0 not) in a seeded order to the same anytime-valid test the benchmarks
use (kvv.sequential.OneSample, against the profile's `benchmarks.swe-bench` reference), and
builds a results document that `kvv merge`, every report and the PR comment treat like a run's.
No request is sent, and the document says so.

Reports read (the format is recognised from the content):

* the harness's run report, `<model>.<run_id>.json` from `swebench.harness.run_evaluation`
  (make_run_report, schema_version 2): `total_instances` and the outcome lists
  `resolved_ids`, `unresolved_ids`, `empty_patch_ids`, `error_ids`, `incomplete_ids`;
* per-instance reports, `{instance_id: {"resolved": bool, ...}}` (the harness's `report.json`),
  one file or a directory holding them (`logs/run_evaluation/<run_id>/<model>/`);
* a list of task results, JSON or JSON Lines: DeepSWE's `bench/analyze.py` records
  (`task`, `reward`, `mode`) or any `{instance_id|task_id|task|id, resolved|solved|success|reward}`.

How outcomes count: upstream's published solve rate is resolved / total, so every instance
that was not resolved scores 0, including harness errors and instances never run. Their
item verdicts still say which they were (error, not fail), and the check counts them: when
most instances errored the run measured the harness, not the model, and the verdict is error.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .checks.base import Check, Context, NotApplicable, Summary
from .errors import ConfigError
from .profile import Profile
from .sequential import OneSample, bonferroni_note
from .summary import check_result, totals
from .verdict import ERROR, ERROR_CLASSES, FAIL, INCONCLUSIVE, PASS, exit_code, worst

CHECK_ID = "swe-bench"
ALPHA = 0.01                    # per side, as the benchmarks' family (docs/architecture.md §3)
DEFAULT_TOLERANCE = 0.05
HARNESS_SHARE = 0.5             # more errored instances than this: the run measured the harness

RESOLVED, UNRESOLVED, EMPTY_PATCH, ERRORED, INCOMPLETE = "resolved", "unresolved", "empty_patch", "error", "incomplete"
# The harness's outcome lists, each instance in exactly one of them.
OUTCOME_LISTS = {"resolved_ids": RESOLVED, "unresolved_ids": UNRESOLVED, "empty_patch_ids": EMPTY_PATCH,
                 "error_ids": ERRORED, "incomplete_ids": INCOMPLETE}
# Count fields that must agree with their list (the harness writes both).
COUNTS = {"resolved_instances": "resolved_ids", "unresolved_instances": "unresolved_ids",
          "empty_patch_instances": "empty_patch_ids", "error_instances": "error_ids",
          "completed_instances": "completed_ids"}
# An outcome's item verdict: the agent's patch was judged (pass/fail), or it never was (error).
VERDICTS = {RESOLVED: PASS, UNRESOLVED: FAIL, EMPTY_PATCH: FAIL, ERRORED: ERROR, INCOMPLETE: ERROR}
MESSAGES = {RESOLVED: "resolved: the instance's tests pass with the agent's patch",
            UNRESOLVED: "unresolved: the instance's tests do not pass with the agent's patch",
            EMPTY_PATCH: "unresolved: the agent produced an empty patch",
            ERRORED: "harness error: the instance was not evaluated (counted unresolved, as upstream's rate does)",
            INCOMPLETE: "not run: no result for this instance (counted unresolved, as upstream's rate does)"}
# Task-result records: the names the id and the outcome go by.
ID_FIELDS = ("instance_id", "task_id", "task", "id")
BOOLEAN_FIELDS = ("resolved", "solved", "success", "passed")
REWARD_FIELDS = ("reward", "score")
# DeepSWE analyze.py's failure modes.
MODES = {"pass": RESOLVED, "correctness": UNRESOLVED, "regression": UNRESOLVED, "timeout": UNRESOLVED,
         "error": ERRORED, "incomplete": INCOMPLETE}


@dataclass
class Instance:
    id: str
    outcome: str
    note: str | None = None         # what the report said beyond the outcome (a DeepSWE mode)


@dataclass
class Report:
    path: Path
    kind: str                       # what the file was recognised as, for people
    instances: list[Instance]
    sha256: str
    model: str | None = None        # the model the report names, when it names one


# -- reading a report -------------------------------------------------------------------------

def read_report(path: str | Path) -> Report:
    """The instances of a SWE-bench / DeepSWE report; ConfigError naming the file and the field."""
    path = Path(path)
    if path.is_dir():
        return _read_directory(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such file", source=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read it: {exc.strerror or exc}", source=str(path)) from None
    data = _parse(raw, str(path))
    digest = hashlib.sha256(raw).hexdigest()
    if isinstance(data, dict) and any(isinstance(data.get(k), str) for k in ID_FIELDS):
        data = [data]               # JSON Lines of one task result
    if isinstance(data, dict) and ("resolved_ids" in data or "total_instances" in data):
        return Report(path, "SWE-bench harness report", _harness(data, str(path)), digest, _model_from_name(path))
    if isinstance(data, dict):
        return Report(path, "SWE-bench per-instance report", _per_instance(data, str(path)), digest)
    records = data
    kind = "DeepSWE results" if any(isinstance(r, dict) and "mode" in r for r in records) else "task results"
    return Report(path, kind, _records(records, str(path)), digest)


def _parse(raw: bytes, source: str) -> Any:
    """JSON, or JSON Lines (one object a line): a dict or a list of records."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start}): expected a JSON report",
                          source=source) from None
    if not text.strip():
        raise ConfigError("empty file: expected a JSON report", source=source)
    try:
        data = json.loads(text)
    except ValueError as whole:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(lines) < 2:
            raise ConfigError(f"not JSON: {whole}", source=source) from None
        data = []
        for n, line in lines:
            try:
                data.append(json.loads(line))
            except ValueError as exc:
                raise ConfigError(f"not JSON (nor JSON Lines): {exc}", source=source, path=f"line {n}") from None
    if not isinstance(data, (dict, list)):
        raise ConfigError(f"expected a JSON object (a harness report) or a list of task results, not "
                          f"{type(data).__name__}", source=source)
    return data


def _harness(data: dict[str, Any], source: str) -> list[Instance]:
    """make_run_report's document: every instance of the dataset in exactly one outcome list."""
    total = data.get("total_instances")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ConfigError(f"expected the number of instances evaluated, not {total!r}", source=source,
                          path="total_instances")
    if "resolved_ids" not in data:
        raise ConfigError("missing: the harness report lists the resolved instances here", source=source,
                          path="resolved_ids")
    lists = {name: _ids(data, name, source) for name in [*OUTCOME_LISTS, "completed_ids"]}
    for count, name in COUNTS.items():
        if count in data and data[count] != len(lists[name]) and name in data:
            raise ConfigError(f"says {data[count]!r} but {name} lists {len(lists[name])}", source=source, path=count)
    seen: dict[str, str] = {}
    instances = []
    for name, outcome in OUTCOME_LISTS.items():
        for instance_id in lists[name]:
            if instance_id in seen:
                raise ConfigError(f"{instance_id!r} is also in {seen[instance_id]}: an instance has one outcome",
                                  source=source, path=name)
            seen[instance_id] = name
            instances.append(Instance(instance_id, outcome))
    if not total:
        raise ConfigError("0: the report holds no instances, so there is nothing to judge", source=source,
                          path="total_instances")
    if len(instances) != total:
        raise ConfigError(f"says {total} but the outcome lists ({', '.join(OUTCOME_LISTS)}) name "
                          f"{len(instances)} instances", source=source, path="total_instances")
    return instances


def _ids(data: dict[str, Any], name: str, source: str) -> list[str]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(i, str) and i for i in value):
        raise ConfigError("expected a list of instance ids (strings)", source=source, path=name)
    if len(set(value)) != len(value):
        twice = next(i for i in value if value.count(i) > 1)
        raise ConfigError(f"{twice!r} is listed twice", source=source, path=name)
    return value


def _per_instance(data: dict[str, Any], source: str) -> list[Instance]:
    """The harness's report.json: {instance_id: {"resolved": bool, "patch_is_None": bool, ...}}."""
    if not data:
        raise ConfigError("empty report: no instances, so there is nothing to judge", source=source)
    instances = []
    for instance_id, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigError("expected an object with `resolved` (a SWE-bench per-instance report), or a harness "
                              "report with `total_instances` and `resolved_ids`", source=source, path=instance_id)
        instances.append(Instance(instance_id, _instance_outcome(entry, source, instance_id)))
    return instances


def _instance_outcome(entry: dict[str, Any], source: str, where: str) -> str:
    resolved = entry.get("resolved")
    if not isinstance(resolved, bool):
        raise ConfigError(f"expected true or false, not {resolved!r}", source=source, path=f"{where}.resolved")
    if resolved:
        return RESOLVED
    return EMPTY_PATCH if entry.get("patch_is_None") or entry.get("patch_exists") is False else UNRESOLVED


def _read_directory(path: Path) -> Report:
    """The harness's log directory: one report.json per evaluated instance. A report.json the
    harness left empty or broken is that instance's harness error, as make_run_report counts it."""
    files = sorted(path.rglob("report.json"))
    if not files:
        raise ConfigError("no report.json under this directory (expected the harness's "
                          "logs/run_evaluation/<run_id>/<model>/ directory, or give the run report's file)",
                          source=str(path))
    instances: dict[str, Instance] = {}
    where: dict[str, Path] = {}
    blob = hashlib.sha256()
    for file in files:
        raw = file.read_bytes()
        blob.update(f"{file.relative_to(path).as_posix()}\0{hashlib.sha256(raw).hexdigest()}\n".encode())
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError:
            data = None
        found = ([Instance(file.parent.name, ERRORED, "its report.json is empty or not JSON")]
                 if not isinstance(data, dict) or not data else _per_instance(data, str(file)))
        for instance in found:
            if instance.id in instances:
                raise ConfigError(f"{instance.id!r} is also reported in {where[instance.id]}", source=str(file))
            instances[instance.id], where[instance.id] = instance, file
    # logs/run_evaluation/<run_id>/<model>/<instance>/report.json: the model is named in the layout
    models = {f.parent.parent.name.replace("__", "/") for f in files if "run_evaluation" in f.resolve().parts}
    return Report(path, "SWE-bench per-instance reports", list(instances.values()), blob.hexdigest(),
                  models.pop() if len(models) == 1 else None)


def _records(records: list[Any], source: str) -> list[Instance]:
    """Task results: DeepSWE's analysis records or {id field, outcome field} objects."""
    if not records:
        raise ConfigError("empty list: no task results, so there is nothing to judge", source=source)
    instances: list[Instance] = []
    seen: dict[str, str] = {}          # task id -> where it first appears
    for index, record in enumerate(records):
        where = f"[{index}]"
        if not isinstance(record, dict):
            raise ConfigError(f"expected an object per task, not {type(record).__name__}", source=source, path=where)
        instance_id = next((record[k] for k in ID_FIELDS if isinstance(record.get(k), str) and record[k]), None)
        if instance_id is None:
            raise ConfigError(f"no task id: expected one of {', '.join(ID_FIELDS)}", source=source, path=where)
        if instance_id in seen:
            raise ConfigError(f"{instance_id!r} is also at {seen[instance_id]}: one result per task", source=source,
                              path=where)
        seen[instance_id] = where
        outcome, note = _record_outcome(record, source, where)
        instances.append(Instance(instance_id, outcome, note))
    return instances


def _record_outcome(record: dict[str, Any], source: str, where: str) -> tuple[str, str | None]:
    if "mode" in record:            # DeepSWE analyze.py: reward is the score, mode says why it failed
        mode = record["mode"]
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}", source=source,
                              path=f"{where}.mode")
        outcome = RESOLVED if record.get("reward") == 1 else MODES[mode]
        return outcome, (f"DeepSWE mode {mode}" if mode not in ("pass", "correctness") else None)
    for name in BOOLEAN_FIELDS:
        if name in record:
            value = record[name]
            if value is None:
                return INCOMPLETE, None
            if not isinstance(value, bool):
                raise ConfigError(f"expected true or false, not {value!r}", source=source, path=f"{where}.{name}")
            return (RESOLVED if value else ERRORED if record.get("error") else UNRESOLVED), None
    for name in REWARD_FIELDS:
        if name in record:
            value = record[name]
            if value is None:
                return INCOMPLETE, None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"expected a number in [0, 1], not {value!r}", source=source, path=f"{where}.{name}")
            # Solved means a reward of 1, as DeepSWE's score.py counts a pass.
            return (RESOLVED if value == 1 else ERRORED if record.get("error") else UNRESOLVED), None
    raise ConfigError(f"no outcome: expected one of {', '.join(BOOLEAN_FIELDS + REWARD_FIELDS)} or mode",
                      source=source, path=where)


def _model_from_name(path: Path) -> str | None:
    """`<model>.<run_id>.json`: the model the harness named the report after ('/' written '__')."""
    stem = path.name[:-len(".json")] if path.name.endswith(".json") else None
    if not stem or "." not in stem:
        return None
    return stem.rsplit(".", 1)[0].replace("__", "/") or None


# -- the check --------------------------------------------------------------------------------

def _external(ctx: Context) -> list:
    raise NotApplicable("an agentic benchmark kvv does not run: run the SWE-bench harness (or DeepSWE), then "
                        "`kvv ingest swe-bench REPORT`")


def _setting(ctx: Context) -> dict[str, Any]:
    """The profile's `benchmarks.swe-bench`, with the command's options over it."""
    entry = dict((ctx.profile.benchmarks or {}).get(CHECK_ID) or {})
    for name in ("reference", "reference-n", "tolerance"):
        if ctx.options.get(name):
            entry[name] = ctx.options[name]
    return entry


def _test(records: list[dict[str, Any]], ctx: Context, unknown_errors: bool = False) -> OneSample | None:
    """The sequential test fed the records in order; `unknown_errors`: errored instances as
    unknown ([0, 1]) instead of 0, to see whether a verdict rests on them."""
    setting = _setting(ctx)
    if not setting.get("reference"):
        return None
    test = OneSample(setting["reference"], setting.get("tolerance") or DEFAULT_TOLERANCE, ALPHA / max(ctx.family, 1),
                     reference_n=setting.get("reference-n") or None)
    for record in records:
        data = record.get("data") or {}
        test.update(None if unknown_errors and record["verdict"] == ERROR else data.get("score"))
    return test


def summarize(records: list[dict[str, Any]], ctx: Context) -> Summary:
    n = len(records)
    counts = {outcome: sum(1 for r in records if (r.get("data") or {}).get("outcome") == outcome)
              for outcome in VERDICTS}
    errored = counts[ERRORED] + counts[INCOMPLETE]
    rate = counts[RESOLVED] / n if n else None
    details: dict[str, Any] = {"instances": n, **counts,
                               "counting": "solve rate = resolved / instances (upstream's rate): errored, "
                                           "empty-patch and not-run instances count as unresolved"}
    details.update({k: v for k, v in ctx.options.items() if k in ("source", "kind")})
    test = _test(records, ctx)
    value = None if rate is None else round(rate, 4)
    if errored and n and errored / n > HARNESS_SHARE:
        metric = {**(test.metric() if test else {}), "name": "solve_rate", "value": value}
        return Summary(ERROR, metric, details,
                       f"ERROR: {errored} of {n} instances errored or never ran, so this run measured the "
                       f"harness, not the model: fix the harness and evaluate again (solve rate {rate:.3f} "
                       "as reported)")
    if test is None:
        details["reference"] = (f"none: the profile {ctx.profile.id} has no benchmarks.{CHECK_ID}.reference; "
                                "pass --reference (and --reference-n) to judge against one")
        return Summary(INCONCLUSIVE, {"name": "solve_rate", "value": value}, details,
                       f"measured, not judged: solve rate {rate:.3f} over {n} instances; no reference "
                       "(pass --reference and --reference-n, or use a profile with benchmarks.swe-bench)")
    metric = {**test.metric(), "name": "solve_rate", "value": value}
    details["reference-source"] = _setting(ctx).get("reference-source")
    message = _sentence(test.verdict, n, metric)
    if errored:
        message += f"; {errored} errored or not run, counted unresolved"
        if test.verdict == FAIL:
            recheck = _test(records, ctx, unknown_errors=True)
            assert recheck is not None   # the same reference as `test`, which exists
            if recheck.verdict != FAIL:
                message += " — the FAIL rests on them: evaluate those instances again"
                details["fail_rests_on_errors"] = True
    return Summary(test.verdict, metric, details, message)


def _sentence(verdict: str, n: int, m: dict[str, Any]) -> str:
    """"FAIL over 113 instances: solve rate ≤ 0.467 (99%), reference 0.675 (n = 113) − 0.05"."""
    confidence = f"{(1 - m['alpha']) * 100:g}%"
    reference = f"reference {m['reference']:g}" + ("" if m.get("reference_exact") else f" (n = {m['reference_n']})")
    against = f"{reference} − {m['tolerance']:g}"
    if verdict == FAIL:
        return f"FAIL over {n} instances: solve rate ≤ {m['betting_upper']:.3f} ({confidence}), {against}"
    if verdict == PASS:
        return f"PASS over {n} instances: solve rate ≥ {m['betting_lower']:.3f} ({confidence}), {against}"
    return (f"undecided over {n} instances: solve rate {m['value']:.3f} is within {m['certifiable_margin']:.3f} of the "
            f"{reference} at {confidence}; no drop past the tolerance {m['tolerance']:g} shown")


CHECK = Check(CHECK_ID, "SWE-bench / DeepSWE solve rate within tolerance of the reference",
              "agentic coding broken (long tool histories, reasoning pass-back, tool-call parsing): the agent's "
              "solve rate in the harness's report falls below the official one",
              ("agentic",), _external, {"report": None, "reference": 0.0, "reference-n": 0, "tolerance": 0.0,
                                        "seed": 0}, summarize)


# -- the results document ---------------------------------------------------------------------

def ingest(report: Report, profile: Profile, *, model: str | None = None, reference: float | None = None,
           reference_n: int | None = None, tolerance: float | None = None, seed: int = 1,
           fail_on: str = "fail",
           on_internal: Callable[[Exception], None] | None = None) -> dict[str, Any]:
    """The results document of one ingested report (nothing is sent)."""
    from .runner import profile_digest

    clock, started = time.monotonic(), _now()
    options = {"report": str(report.path), "reference": reference or 0.0, "reference-n": reference_n or 0,
               "tolerance": tolerance or 0.0, "seed": seed}
    context = Context(model=model or report.model or profile.id, profile=profile, think_mode=profile.think_mode,
                      options={**options, "source": f"{report.path} (sha256 {report.sha256[:16]})",
                               "kind": report.kind}, seed=seed)
    if context.options["reference-n"] and not _setting(context).get("reference"):
        raise ConfigError(f"--reference-n without a reference: profile {profile.id} has no "
                          f"benchmarks.{CHECK_ID}.reference, so pass --reference too", source="--reference-n")
    order = sorted(report.instances, key=lambda i: i.id)
    random.Random(f"{seed}:{CHECK_ID}").shuffle(order)      # a seeded order, as the benchmarks draw theirs
    records = [_record(position, instance) for position, instance in enumerate(order)]
    notes: list[str] = []

    def internal(exc: Exception) -> None:
        notes.append(f"kvv internal error while summarising {CHECK_ID}: {type(exc).__name__}: {exc}")
        if on_internal is not None:
            on_internal(exc)

    entry = check_result(CHECK, context, records, planned=len(records), unfinished=0, stopped_early=False,
                         errors=dict.fromkeys(ERROR_CLASSES, 0), tokens={"prompt_tokens": 0, "completion_tokens": 0},
                         duration_s=0.0, evidence=[], on_internal=internal)
    source = {"check": CHECK_ID, "kind": report.kind, "path": str(report.path), "sha256": report.sha256,
              "model": context.model, "instances": len(records), "requests_sent": 0}
    record = {"kvv_version": __version__, "ingest": CHECK_ID, "source": source, "model": context.model,
              "profile": profile.id, "profile_digest": profile_digest(profile), "think_mode": profile.think_mode,
              "suite": "ingest", "checks": {CHECK_ID: options}, "seed": seed}
    verdict = entry["verdict"]
    entry["duration_s"] = round(time.monotonic() - clock, 3)
    return {
        "schema_version": 1,
        "kvv_version": __version__,
        "started_at": started,
        "finished_at": _now(),
        "duration_s": round(time.monotonic() - clock, 3),
        "complete": True,
        "stopped": None,
        "target": {"base_url": f"none: ingested from {report.path.name}", "model": context.model,
                   "profile": profile.id, "profile_as_of": profile.as_of, "profile_source": profile.source,
                   "think_mode": profile.think_mode, "simulated": False,
                   "simulation": None, "simulator": None},
        "suite": "ingest",
        "config_file": None,
        "fail_on": fail_on,
        "resumed": False,
        "verdict": verdict,
        "exit_code": exit_code(verdict, fail_on),
        "notes": [f"Ingested: {report.kind} {report.path} (sha256 {report.sha256}), {len(records)} instances; "
                  "kvv sent no request: the agent's runs were made and scored by the harness."] + notes,
        "multiple_testing": bonferroni_note(ALPHA, 1),
        "shard": None,
        "run": record,
        "totals": totals([entry], 0),
        "checks": [entry],
        "not_run": [],
        "ingested": [source],
    }


def _record(position: int, instance: Instance) -> dict[str, Any]:
    """An item record as the runner writes one; nothing was sent for it."""
    message = MESSAGES[instance.outcome] + (f" ({instance.note})" if instance.note else "")
    data = {"outcome": instance.outcome, "score": 1.0 if instance.outcome == RESOLVED else 0.0}
    digest = hashlib.sha256(json.dumps([instance.id, instance.outcome]).encode()).hexdigest()[:16]
    return {"id": instance.id, "mode": None, "verdict": VERDICTS[instance.outcome], "message": message,
            "digest": digest, "requests": 0, "attempts": 0, "resumed": False, "position": position, "data": data}


def is_ingested(results: dict[str, Any]) -> bool:
    return bool((results.get("run") or {}).get("ingest")) and isinstance(results.get("ingested"), list)


def combine(runs: list[tuple[str, dict[str, Any]]], ingested: list[tuple[str, dict[str, Any]]],
            merge_runs: Callable[..., dict[str, Any]], profile: str | None = None,
            fail_on: str | None = None) -> dict[str, Any]:
    """`kvv merge` of a run's results (one whole run, or its shards, merged by `merge_runs`)
    with ingested reports: their checks are added as they were judged (on their own α, said in
    the notes), the verdict and totals taken again over all checks."""
    if not runs:
        raise ConfigError("an ingested report merges into the results of a kvv run: name that run's output "
                          "directory (or its shards) too", source=ingested[0][0])
    if len(runs) == 1 and not runs[0][1].get("shard"):
        merged = json.loads(json.dumps(runs[0][1]))         # a whole run: its checks stand as they are
    else:
        merged = merge_runs(runs, profile, fail_on)
    fail_on = fail_on or merged["fail_on"]
    target, digest = merged["target"], (merged.get("run") or {}).get("profile_digest")
    ids = {c["id"]: "the run" for c in merged["checks"]}
    notes = []
    for source, document in ingested:
        theirs = document["target"]
        if theirs["profile"] != target["profile"] or document["run"].get("profile_digest") != digest:
            raise ConfigError(f"ingested with profile {theirs['profile']}, but the run used {target['profile']} "
                              "(or another version of it): ingest the report again with the run's --profile",
                              source=source)
        for check in document["checks"]:
            if check["id"] in ids:
                raise ConfigError(f"{check['id']} is in {ids[check['id']]} too: merge one report per check",
                                  source=source)
            ids[check["id"]] = source
            merged["checks"].append(check)
        for entry in document["ingested"]:
            notes.append(f"{entry['check']} ingested from {entry['kind']} {entry['path']} (sha256 "
                         f"{entry['sha256'][:16]}): no request sent; judged on its own α = {ALPHA:g} per side, "
                         "beside the run's benchmarks")
            if entry.get("model") != target["model"]:
                notes.append(f"{entry['check']} was ingested for model {entry.get('model')}, the run tested "
                             f"{target['model']}: make sure they are the same deployment")
        merged.setdefault("ingested", []).extend(document["ingested"])
    merged["notes"] = list(merged.get("notes") or []) + notes
    verdict = worst([c["verdict"] for c in merged["checks"]] + ([ERROR] if merged.get("stopped") else []))
    merged.update(verdict=verdict, fail_on=fail_on, exit_code=exit_code(verdict, fail_on),
                  totals=totals(merged["checks"], (merged.get("totals") or {}).get("probe_requests", 0)),
                  finished_at=max([merged["finished_at"], *(d["finished_at"] for _, d in ingested)]))
    return merged


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["CHECK", "Report", "Instance", "read_report", "ingest", "combine", "is_ingested", "summarize"]
