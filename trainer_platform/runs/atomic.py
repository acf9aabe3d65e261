"""Atomic file writes: a reader on any host sees the old content or the new, never a torn file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# fsyncs in flight at once: the filesystem commits concurrent fsyncs together (ext4's journal, an NFS COMMIT per
# file in parallel), so 256 small files take about what 10 take one after another
_FSYNC_THREADS = 32


def fsync_dir(path: Path) -> None:
    """Make a rename or new entry in `path` durable (best effort: some filesystems refuse directory fsync)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: str | bytes, *, executable: bool = False) -> None:
    """Replace `path` with `data` atomically: temp file in the same folder, fsync, os.replace."""
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o755 if executable else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_unsynced(path: Path, data: str | bytes, *, executable: bool = False) -> None:
    """Write a NEW file in a folder no reader looks at yet (a run dir being staged), without fsync: the caller
    makes a whole batch of them durable at once with `fsync_all` before publishing the folder with a rename."""
    payload = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755 if executable else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    os.chmod(path, 0o755 if executable else 0o644)  # whatever the umask


def fsync_all(paths: Iterable[Path]) -> None:
    """fsync files and folders (folders best effort, as `fsync_dir`), concurrently; raises the first OSError of a
    file."""
    from concurrent.futures import ThreadPoolExecutor

    def sync(path: Path) -> None:
        if path.is_dir():
            fsync_dir(path)
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    todo = list(paths)
    if len(todo) <= 1:
        for path in todo:
            sync(path)
        return
    with ThreadPoolExecutor(max_workers=min(_FSYNC_THREADS, len(todo)), thread_name_prefix="fsync") as pool:
        for _ in pool.map(sync, todo):
            pass


def json_text(data: Any) -> str:
    """`data` as stable, readable JSON text (sorted keys, indented, trailing newline)."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
