"""verl's file-logger output (metrics.jsonl): one JSON object `{"step": N, "data": {"key": value, ...}}` a line."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a file-logger JSONL file, in file order; [] when it does not exist.

    A torn last line (the job is writing it, or died mid-write) is skipped silently; a malformed line elsewhere is
    skipped with a warning.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = raw.split(b"\n")
    out: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            if i != len(lines) - 1:  # only the last piece lacks a newline after it: that one is a torn write
                warnings.warn(f"{path}:{i + 1}: skipping malformed metrics line", stacklevel=2)
            continue
        if isinstance(item, dict) and isinstance(item.get("data"), dict):
            out.append(item)
    return out


def latest(records: Iterable[dict[str, Any]]) -> tuple[int | None, dict[str, Any]]:
    """(highest step, latest value of every metric key) over file-logger records; (None, {}) when there are none."""
    step: int | None = None
    values: dict[str, Any] = {}
    for item in records:
        item_step = item.get("step")
        if isinstance(item_step, int):
            step = item_step if step is None else max(step, item_step)
        values.update(item["data"])
    return step, values


def _attempt_number(path: Path) -> int:
    return int(path.name.split("-")[1].split(".")[0])


def attempt_files(current: Path) -> list[Path]:
    """Metrics files of every attempt of a run, oldest first: metrics.attempt-1.jsonl, ..., then metrics.jsonl."""
    archived = sorted(current.parent.glob(f"{current.stem}.attempt-*{current.suffix}"), key=_attempt_number)
    return [*archived, current]


def archive(current: Path) -> Path | None:
    """Move `current` aside as the next metrics.attempt-N.jsonl, so a resumed attempt (verl's file logger truncates
    its file on open) keeps the history. Returns the archive path, or None when there is nothing to keep."""
    if not current.exists() or current.stat().st_size == 0:
        return None
    target = current.parent / f"{current.stem}.attempt-{len(attempt_files(current))}{current.suffix}"
    os.replace(current, target)
    return target
