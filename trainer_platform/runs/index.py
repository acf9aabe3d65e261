"""The runs under a folder, found by walking it for run directories (a folder with a status.json). The files are
the truth: the indexed view of `runs` (runs/catalog.py) walks the same way and only caches what it read."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from trainer_platform.runs.rundir import STATUS_FILE, RunDir, RunDirError

# run dirs sit at most this many folders below the root (root/run, root/sweep/run, root/group/sweep/run)
MAX_DEPTH = 3


def walk_run_dirs(root: Path, max_depth: int = MAX_DEPTH) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to `root`, stat of its status.json) of every run dir under `root`, in name order per folder.

    Hidden folders (staging, caches) are skipped, and nothing below a run dir is searched. One stat per folder.
    """

    def walk(folder: str, prefix: str, depth: int) -> Iterator[tuple[str, os.stat_result]]:
        try:
            with os.scandir(folder) as entries:
                children = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
        except OSError:
            return
        for name in children:
            path = f"{folder}/{name}"
            rel = f"{prefix}{name}"
            try:
                stat = os.stat(f"{path}/{STATUS_FILE}")
            except OSError:
                if depth < max_depth:
                    yield from walk(path, f"{rel}/", depth + 1)
                continue
            yield rel, stat

    yield from walk(str(root), "", 1)


def list_runs(root: Path, max_depth: int = MAX_DEPTH) -> list[RunDir]:
    """Run directories under `root` (searching nested folders such as sweeps, not inside runs), oldest first."""
    base = Path(root).absolute()
    found = [RunDir(base / rel) for rel, _ in walk_run_dirs(base, max_depth)]

    def created(run: RunDir) -> str:
        try:
            return run.read_status().created or ""
        except RunDirError:
            return ""

    return sorted(found, key=lambda r: (created(r), str(r.path)))
