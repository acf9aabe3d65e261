"""Where a dry run puts its files: `<run_root>/.dry-runs/<name>-<UTC stamp>/`, never a run directory.

A dry run claims no run name and never writes into an existing run (a resume dry run included): its spec.yaml,
plan.json, job.json and launch.sh go to a fresh folder of their own, which `list` and every run command ignore
(no status.json, and its parent's name starts with a dot).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from trainer_platform.runs.atomic import atomic_write

DRY_RUNS_DIR = ".dry-runs"


def write_dry_run(root: Path, name: str, files: Mapping[str, str]) -> Path:
    """Write a dry run's files into a new folder under `root/.dry-runs/`; returns that folder."""
    base = Path(root).expanduser().absolute() / DRY_RUNS_DIR
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    suffix = 1
    while True:
        folder = base / (f"{name}-{stamp}" if suffix == 1 else f"{name}-{stamp}-{suffix}")
        try:
            os.mkdir(folder)
            break
        except FileExistsError:
            suffix += 1
    for rel, content in files.items():
        atomic_write(folder / rel, content, executable=rel.endswith(".sh"))
    return folder
