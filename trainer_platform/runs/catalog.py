"""The runs under a run root as one-line summaries, answered from a rebuildable cache.

The run directories stay the source of truth. `<root>/.runs-index.json` only caches each run's summary together
with the fingerprint of the files it was read from (status.json, metrics.jsonl, the checkpoint marker, the run dir
itself): a run whose fingerprint differs, or that is new, is read again; a run dir that is gone drops out. The
fingerprint is taken *before* the files are read, so a run that changes while being read is read again next time.

Concurrent writers are safe: the cache is replaced atomically (temp file + rename) and only ever holds summaries
keyed by the fingerprint they were read under, so the worst a lost race costs is a re-read. Deleting the file, a
corrupt file, or a root that cannot be written only make the next call slower. No database: the root may be on NFS.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from trainer_platform.console.keys import key_metrics
from trainer_platform.console.view import job_facts
from trainer_platform.runs.atomic import atomic_write
from trainer_platform.runs.index import walk_run_dirs
from trainer_platform.runs.rundir import RunDir, RunDirError
from trainer_platform.runs.series import best, curves, last
from trainer_platform.runs.specs import load_spec
from trainer_platform.runs.status import TERMINAL_STATES

INDEX_FILE = ".runs-index.json"
# bump when RunSummary or the fingerprint changes: an index of another version is rebuilt
INDEX_VERSION = 1
# a file changed this recently (seconds) may change again within the same timestamp tick, unseen by its stat: a
# summary read from it is not trusted next time (git's "racily clean" rule)
RACY_S = 2.0


@dataclass(frozen=True)
class RunSummary:
    """What `runs` shows of one run, read from its run dir."""

    # path relative to the run root, e.g. "grpo-tiny-20261202-000000" or "lr-sweep/lr=1e-5"
    name: str
    # the folder between the root and the run dir ("" for a run directly under the root)
    sweep: str
    # stored state (status.json) and its UTC ISO times; None when unknown
    state: str
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    exit_code: int | None = None
    launcher: str | None = None
    dry_run: bool = False
    # from spec.yaml: algorithm name and kind (rl, sft, dpo), model and data preset names
    algorithm: str | None = None
    kind: str | None = None
    model: str | None = None
    data: str | None = None
    # last logged step and the optimizer steps the job was given
    step: int | None = None
    target_steps: int | None = None
    # the algorithm's main metric (console/keys.py): its label, last value and best value (when a direction is)
    metric: str | None = None
    metric_last: float | None = None
    metric_best: float | None = None
    # step of the newest complete checkpoint
    checkpoint: int | None = None
    # why the run dir could not be read (then only name, sweep and state="unreadable" are meaningful)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SUMMARY_FIELDS}


# the index stores a summary as the list of its field values in this order (compact, quick to load)
SUMMARY_FIELDS = tuple(f.name for f in fields(RunSummary))


def _stat_key(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino]


def fingerprint(run_path: str, status: os.stat_result, *, finished: bool) -> list[Any]:
    """What must stay the same for a cached summary to hold: status.json (replaced atomically on every change, also
    whenever a resume rewrites the spec), and while the run is not finished metrics.jsonl (appended in place) and
    verl's checkpoint marker. A finished run's metrics and checkpoints change only through a resume, which rewrites
    its status first; so for one, status.json alone is checked."""
    status_key = [status.st_mtime_ns, status.st_size, status.st_ino]
    if finished:
        return [status_key]
    return [
        status_key,
        _stat_key(f"{run_path}/metrics.jsonl"),
        _stat_key(f"{run_path}/checkpoints/latest_checkpointed_iteration.txt"),
    ]


def _is_racy(fp: list[Any], now_ns: int) -> bool:
    newest = max((key[0] for key in fp if key is not None), default=0)
    return newest >= now_ns - int(RACY_S * 1e9)


def _section_name(spec: dict[str, Any], section: str) -> str | None:
    value = spec.get(section)
    name = value.get("name") if isinstance(value, dict) else None
    return str(name) if name is not None else None


def summarize(run: RunDir, name: str, sweep: str) -> RunSummary:
    """Read one run dir into its summary; an unreadable one gives state "unreadable" and the reason."""
    try:
        status = run.read_status()
        spec = load_spec(run.spec_path)
        algorithm = spec.get("algorithm")
        kind = str(algorithm["kind"]) if isinstance(algorithm, dict) and algorithm.get("kind") else None
        target, _ = job_facts(run)
        if target is None:
            steps = (spec.get("train") or {}).get("steps") if isinstance(spec.get("train"), dict) else None
            target = steps if isinstance(steps, int) else None
        metric = key_metrics(kind)[0]
        records = run.read_metrics()
        steps_logged = [r["step"] for r in records if isinstance(r.get("step"), int)]
        found = curves(records, metric.names)
        curve = next((found[n] for n in metric.names if n in found), {})
        final, top = last(curve), best(curve, metric.better)
        launcher = status.extra.get("launcher")
        return RunSummary(
            name=name,
            sweep=sweep,
            state=status.state,
            created=status.created,
            started=status.started,
            finished=status.finished,
            exit_code=status.exit_code,
            launcher=str(launcher) if launcher else None,
            dry_run=bool(status.extra.get("dry_run")),
            algorithm=_section_name(spec, "algorithm"),
            kind=kind,
            model=_section_name(spec, "model"),
            data=_section_name(spec, "data"),
            step=max(steps_logged) if steps_logged else None,
            target_steps=target,
            metric=metric.label,
            metric_last=final.value if final else None,
            metric_best=top.value if top else None,
            checkpoint=run.last_checkpoint_step(),
        )
    except (RunDirError, OSError, ValueError, TypeError, KeyError) as e:
        return RunSummary(name=name, sweep=sweep, state="unreadable", error=f"{type(e).__name__}: {e}")


def _load(index_path: Path) -> dict[str, Any]:
    try:
        data = json.loads(index_path.read_bytes())
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != INDEX_VERSION
        or data.get("fields") != list(SUMMARY_FIELDS)
        or not isinstance(data.get("runs"), dict)
    ):
        return {}
    return data["runs"]


@dataclass
class ScanStats:
    """How a catalog call was answered: runs found, how many were read from their files, whether it saved."""

    runs: int = 0
    read: int = 0
    saved: bool = False


def catalog(root: Path, *, use_index: bool = True, stats: ScanStats | None = None) -> list[RunSummary]:
    """Summaries of every run dir under `root`, newest first (by creation time, then name).

    With `use_index`, unchanged runs come from `<root>/.runs-index.json` and the file is refreshed when anything
    changed; without it every run dir is read (the index is neither read nor written).
    """
    root = Path(root).absolute()
    index_path = root / INDEX_FILE
    cached = _load(index_path) if use_index else {}
    fresh: dict[str, Any] = {}
    summaries: list[RunSummary] = []
    stats = stats if stats is not None else ScanStats()
    for rel, status_stat in walk_run_dirs(root):
        path = f"{root}/{rel}"
        entry: Any = cached.get(rel)  # [fingerprint, field values, racy]
        summary: RunSummary | None = None
        trusted = type(entry) is list and len(entry) == 3 and entry[2] is False and type(entry[0]) is list
        if trusted and entry[0] == fingerprint(path, status_stat, finished=len(entry[0]) == 1):
            try:
                summary = RunSummary(*entry[1])
            except TypeError:
                summary = None
        if summary is None:
            fp = fingerprint(path, status_stat, finished=False)  # taken before reading
            sweep = rel.rpartition("/")[0]
            summary = summarize(RunDir(Path(path)), rel, sweep)
            stats.read += 1
            if summary.state in TERMINAL_STATES:
                fp = fp[:1]
            entry = [fp, [getattr(summary, f) for f in SUMMARY_FIELDS], _is_racy(fp, time.time_ns())]
        fresh[rel] = entry
        summaries.append(summary)
    stats.runs = len(summaries)
    if use_index and (stats.read or len(fresh) != len(cached)):
        try:
            atomic_write(
                index_path,
                json.dumps({"version": INDEX_VERSION, "fields": SUMMARY_FIELDS, "runs": fresh}, separators=(",", ":")),
            )
            stats.saved = True
        except OSError:
            pass  # a read-only root: answer from the files, just slower next time
    return newest_first(summaries)


def newest_first(summaries: Iterable[RunSummary]) -> list[RunSummary]:
    return sorted(summaries, key=lambda s: (s.created or "", s.name), reverse=True)
