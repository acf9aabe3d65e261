"""Names that become paths or remote identifiers: the run name, the run root, W&B project/entity/group/tags.

Checked before anything is allocated, so a name the filesystem (or W&B) would reject is reported as our key with
the rule it breaks, never as a traceback or as a verl key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from trainer_platform.errors import SpecError

if TYPE_CHECKING:
    from trainer_platform.spec import RunSpec

# a run dir name: letters, digits and . _ - (not leading), and = , + for a sweep's runs, which are named by their
# swept values (`algorithm.lr=1e-06,train.seed=1`); short enough for `-NN` suffixes and staging prefixes
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=,+-]*")
MAX_RUN_NAME = 128
# characters W&B refuses in project names
_WANDB_BAD = re.compile(r"[/\\#?%:]")


def check_run_name(name: str, key: str = "name") -> None:
    if len(name) > MAX_RUN_NAME:
        raise SpecError(key, f"run name is {len(name)} characters long", f"use at most {MAX_RUN_NAME} characters")
    if not _RUN_NAME.fullmatch(name):
        raise SpecError(
            key,
            f"{name!r} is not a usable run directory name",
            "use letters, digits and '._-=,+' (a letter or digit first), no '/' or spaces: e.g. name=grpo-test-1",
        )


def check_run_root(root: str) -> None:
    """The run root must be a directory or creatable as one (no file on its path)."""
    path = Path(root).expanduser()
    if not root.strip():
        raise SpecError("run_root", "is empty", "set run_root to a folder, e.g. run_root=runs")
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                what = "run_root" if parent == path else f"{parent} (on the run_root path)"
                raise SpecError("run_root", f"{what} is a file, not a directory", "point run_root at a folder")
            if not _writable(parent):
                raise SpecError("run_root", f"{parent} is not writable", "point run_root at a folder you can write")
            return


def _writable(path: Path) -> bool:
    import os

    return os.access(path, os.W_OK | os.X_OK)


def check_names(spec: RunSpec) -> None:
    if spec.name is not None:
        check_run_name(spec.name)
    check_run_root(spec.run_root)
    wandb = spec.logger.wandb
    if wandb is None:
        return
    for key, value in (("project", wandb.project), ("entity", wandb.entity), ("group", wandb.group)):
        if value is None:
            continue
        if not value.strip() or _WANDB_BAD.search(value) or len(value) > 128:
            raise SpecError(
                f"logger.wandb.{key}",
                f"{value!r} is not a valid W&B {key} name",
                "use at most 128 characters without / \\ # ? % : (e.g. my-project)",
            )
    for tag in wandb.tags:
        if not tag.strip() or len(tag) > 64:
            raise SpecError("logger.wandb.tags", f"tag {tag!r} is empty or over 64 characters", "shorten the tag")
