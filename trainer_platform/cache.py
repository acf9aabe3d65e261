"""Build-once folders in the cache: built into a temporary sibling, then renamed into place (atomic, race-safe)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Return `target`, running `build(tmp_dir)` first if it does not exist yet.

    Concurrent callers are safe: each builds into its own temporary sibling and the first rename wins; a loser's
    rename fails because the folder exists, and its copy is thrown away.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
