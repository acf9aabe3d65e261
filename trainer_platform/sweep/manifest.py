"""The sweep directory (`run_root/<sweep name>/`) and its manifest, sweep.json: what was swept (axes), which runs
it made (their dirs, swept values, overrides) and with which launcher. Each run dir inside stays a normal run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trainer_platform.runs.atomic import atomic_write, json_text

MANIFEST = "sweep.json"


class SweepDirError(Exception):
    """A folder is not a sweep directory, or its manifest is unreadable; the message says which and why."""


def create_sweep_dir(root: Path, name: str) -> Path:
    """A new, empty folder `root/name` (`root/name-2`, ... when taken); safe against concurrent sweeps."""
    root = Path(root).expanduser().absolute()
    root.mkdir(parents=True, exist_ok=True)
    suffix = 1
    while True:
        folder = root / (name if suffix == 1 else f"{name}-{suffix}")
        try:
            os.mkdir(folder)
            return folder
        except FileExistsError:
            suffix += 1


def write_manifest(sweep_dir: Path, manifest: dict[str, Any]) -> None:
    """Write (or replace) sweep.json atomically."""
    atomic_write(Path(sweep_dir) / MANIFEST, json_text(manifest))


def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(sweep_dir: Path | str) -> dict[str, Any]:
    """The manifest of a sweep directory; SweepDirError naming the path when there is none or it is broken."""
    path = Path(sweep_dir).expanduser().absolute()
    if not path.is_dir():
        raise SweepDirError(f"{path}: no such directory; pass a sweep directory (run_root/<sweep name>)")
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepDirError(f"{path} is not a sweep directory (no {MANIFEST}); pass one made by train.py -m") from None
    except (OSError, ValueError) as exc:
        raise SweepDirError(f"{path / MANIFEST} is unreadable ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise SweepDirError(f"{path / MANIFEST} does not hold a sweep manifest (no list of runs)")
    return data
