"""verl's file-logger output (metrics.jsonl): one JSON object `{"step": N, "data": {"key": value, ...}}` a line.

`MetricsReader` is the one reader of a run's metrics: it keeps an offset per file and returns only what was
appended since its last call, across every attempt of a resumed run (metrics.attempt-N.jsonl, then metrics.jsonl).
The console, `watch`, `diagnose`, the job-side monitor and the run index all read through it.

Standard library only and no imports from the rest of the platform: launchers ship this file beside a job
(launchers/render.py) for the diagnostics monitor, where the platform may not be installed.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# bytes before the offset remembered per file: a file replaced whole (an SSH sync writes a new copy) that still
# holds them at the same place is the same stream, grown
_TAIL = 256
_CHUNK = 1 << 20


@dataclass
class _FileState:
    offset: int = 0
    # a line not yet ended by a newline (the job is writing it)
    pending: bytes = b""
    # the last bytes before `offset`
    tail: bytes = b""
    # whole lines read so far (for the line numbers of warnings)
    lines: int = 0


def _parse(line: bytes, where: str, last: bool) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        item = json.loads(line)
    except ValueError:
        if not last:  # only a last line can be torn (the job died mid-write)
            warnings.warn(f"{where}: skipping malformed metrics line", stacklevel=3)
        return None
    return item if isinstance(item, dict) and isinstance(item.get("data"), dict) else None


class MetricsReader:
    """Reads the metrics of a run incrementally; `current` is its metrics.jsonl.

    `read()` returns the records appended since the last call, oldest attempt first; the first call returns all.
    A file is recognised by its inode, so an attempt archived by a resume (a rename) is read on from where it was;
    a file replaced by a grown copy is read on from the old offset; a file truncated in place is read again from
    its start. A line without its newline yet is held back until it is complete (or `final=True`: the job ended).
    """

    def __init__(self, current: Path) -> None:
        self.current = Path(current)
        self._files: dict[tuple[int, int], _FileState] = {}
        self._at_path: dict[Path, tuple[int, int]] = {}
        # bytes read from disk in all (tests and the watch benchmark check that nothing is read twice)
        self.bytes_read = 0

    def read(self, final: bool = False) -> list[dict[str, Any]]:
        """The records appended since the last call, in file order."""
        out: list[dict[str, Any]] = []
        seen: set[tuple[int, int]] = set()
        for path in attempt_files(self.current):
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed below; one open per file and poll
            except FileNotFoundError:
                continue
            with f:
                st = os.fstat(f.fileno())
                key = (st.st_dev, st.st_ino)
                state = self._state_for(path, key, seen, f, st.st_size)
                seen.add(key)
                self._at_path[path] = key
                out += self._read_from(f, state, str(path), final)
        return out

    def skip(self, path: Path) -> None:
        """Count `path` (one of the files) as read to its current end, without reading it."""
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                tail = b""
                if st.st_size:
                    f.seek(max(0, st.st_size - _TAIL))
                    tail = f.read(_TAIL)
        except FileNotFoundError:
            return
        key = (st.st_dev, st.st_ino)
        self._files[key] = _FileState(offset=st.st_size, tail=tail)
        self._at_path[Path(path)] = key

    def _state_for(self, path: Path, key: tuple[int, int], seen: set[tuple[int, int]], f: Any, size: int) -> _FileState:
        state = self._files.get(key)
        if state is None:
            state = _FileState()
            previous = self._at_path.get(path)
            old = self._files.get(previous) if previous is not None and previous not in seen else None
            if old is not None and size >= old.offset and _holds(f, old.offset, old.tail):
                state = old  # the same stream, copied anew (and maybe grown)
                del self._files[previous]  # type: ignore[arg-type]
            self._files[key] = state
        elif size < state.offset:  # truncated in place: a new attempt in the same file
            state.offset, state.pending, state.tail, state.lines = 0, b"", b"", 0
        return state

    def _read_from(self, f: Any, state: _FileState, where: str, final: bool) -> list[dict[str, Any]]:
        f.seek(state.offset)
        out: list[dict[str, Any]] = []
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            self.bytes_read += len(chunk)
            state.offset += len(chunk)
            state.tail = (state.tail + chunk)[-_TAIL:]
            *lines, state.pending = (state.pending + chunk).split(b"\n")
            for line in lines:
                state.lines += 1
                record = _parse(line, f"{where}:{state.lines}", last=False)
                if record is not None:
                    out.append(record)
        if final and state.pending:
            record = _parse(state.pending, f"{where}:{state.lines + 1}", last=True)
            state.pending = b""
            if record is not None:
                out.append(record)
        return out


def _holds(f: Any, offset: int, tail: bytes) -> bool:
    """Whether the open file `f` has `tail` just before `offset`."""
    if not tail:
        return offset == 0
    f.seek(offset - len(tail))
    return bool(f.read(len(tail)) == tail)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of one file-logger JSONL file, in file order; [] when it does not exist.

    A torn last line (the job is writing it, or died mid-write) is skipped silently; a malformed line elsewhere is
    skipped with a warning.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = raw.split(b"\n")
    out = []
    for i, line in enumerate(lines):
        record = _parse(line, f"{path}:{i + 1}", last=i == len(lines) - 1)
        if record is not None:
            out.append(record)
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
    try:
        return int(path.name.split("-")[1].split(".")[0])
    except (IndexError, ValueError):
        return 0


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
