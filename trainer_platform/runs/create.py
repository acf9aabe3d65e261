"""Creating run dirs, one or a batch (a sweep's runs), all or none (`RunDir.create` / `RunDir.create_all`).

Each run's files go into its private staging folder (`RunDir.allocate`) as plain writes: nobody reads that folder
yet, so no per-file temp file, rename and folder fsync. Every file and folder of the batch is then made durable in
one concurrent fsync pass (the filesystem commits concurrent fsyncs together), and each folder is renamed into
place: a run dir still appears in one rename, complete, and only after its content is on disk. The provenance the
runs share (git state, package versions) is taken once per batch.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_platform.runs import record
from trainer_platform.runs.atomic import fsync_all, json_text, write_unsynced
from trainer_platform.runs.status import PENDING, Status, utc_now

if TYPE_CHECKING:
    from trainer_platform.runs.rundir import RunDir

STATUS_FILE = "status.json"
RECORD_FILE = "record.json"
DIFF_FILE = "git.diff"
# Files the creation writes itself; callers may not pass them.
RESERVED = frozenset({STATUS_FILE, RECORD_FILE, DIFF_FILE})


@dataclass(frozen=True)
class NewRun:
    """A run dir to create: the allocated RunDir, its initial files (relative path -> content; `*.sh` files are
    made executable), the command line for record.json (None: sys.argv) and extra fields of its first status."""

    run: RunDir
    files: Mapping[str, str | bytes]
    argv: Sequence[str] | None = None
    status: Mapping[str, Any] = field(default_factory=dict)


def check_relative(rel: str) -> Path:
    """A file name a caller may write in a run dir: relative, inside it, not one of RESERVED (ValueError)."""
    path = Path(rel)
    if not rel or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"run dir file names must be relative paths inside the run dir, got {rel!r}")
    if rel in RESERVED:
        raise ValueError(f"{rel!r} is written by the run dir itself; do not pass it to create()")
    return path


def create_all(runs: Sequence[NewRun]) -> None:
    """Create every run (see the module docstring); on any failure none of them is left under its root."""
    staged = [(new, *new.run._take_staging()) for new in runs]
    renamed: list[Path] = []
    try:
        shared = record.environment() if staged else None
        written: list[Path] = []
        for new, staging, _ in staged:
            written += _stage(staging, new, shared)
        fsync_all(written)
        for new, staging, _ in staged:
            if os.path.lexists(new.run.path):
                from trainer_platform.runs.rundir import RunDirError

                raise RunDirError(f"{new.run.path} appeared outside the platform while staging; choose another name")
            os.rename(staging, new.run.path)
            renamed.append(new.run.path)
        fsync_all({path.parent for path in renamed})
    except BaseException:
        for path in renamed:
            shutil.rmtree(path, ignore_errors=True)
        for _, staging, _ in staged:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        for _, _, claim in staged:
            with contextlib.suppress(OSError):
                claim.unlink()
            with contextlib.suppress(OSError):  # only succeeds when no other allocation is in flight
                claim.parent.rmdir()


def _stage(staging: Path, new: NewRun, shared: record.Provenance | None) -> list[Path]:
    """Write one run's files into its staging folder; returns what to fsync: the files, then the folders."""
    prov = record.collect(new.argv, shared=shared)
    status = Status.from_dict({**new.status, "state": PENDING, "created": utc_now()})
    files: dict[Path, tuple[str | bytes, bool]] = {
        staging / check_relative(rel): (content, rel.endswith(".sh")) for rel, content in new.files.items()
    }
    files[staging / RECORD_FILE] = (json_text(prov.record), False)
    if prov.diff is not None:
        files[staging / DIFF_FILE] = (prov.diff, False)
    files[staging / STATUS_FILE] = (json_text(status.to_dict()), False)
    folders = {staging}
    for target, (content, executable) in files.items():
        if target.parent not in folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            folders |= {target.parent, *(p for p in target.parent.parents if staging in p.parents)}
        write_unsynced(target, content, executable=executable)
    os.chmod(staging, 0o755)
    return [*files, *sorted(folders, key=lambda p: -len(p.parts))]
