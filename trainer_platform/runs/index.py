"""The runs under a folder: found by scanning for run directories (the files are the truth; nothing is cached)."""

from __future__ import annotations

from pathlib import Path

from trainer_platform.runs.rundir import RunDir, RunDirError


def list_runs(root: Path, max_depth: int = 3) -> list[RunDir]:
    """Run directories under `root` (searching nested folders such as sweeps, not inside runs), oldest first."""
    found: list[RunDir] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for child in children:
            if RunDir.is_run_dir(child):
                found.append(RunDir(child.absolute()))
            elif depth < max_depth:
                walk(child, depth + 1)

    walk(Path(root), 1)

    def created(run: RunDir) -> str:
        try:
            return run.read_status().created or ""
        except RunDirError:
            return ""

    return sorted(found, key=lambda r: (created(r), str(r.path)))
