"""Names in a sweep: the sweep's own (run_root/<sweep>) and each run's, made of its swept values
(`algorithm.lr=1e-6,train.seed=1`), readable and safe as a directory name."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime, timezone

# what a run dir name may hold as is (trainer_platform.names); anything else becomes '_'
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")
# longest name before it is cut (with a hash of the whole name, so cut names stay distinct)
MAX_NAME = 120


def sanitise(text: str) -> str:
    """`text` as a run directory name: unsafe characters as '_', a letter or digit first, at most MAX_NAME
    characters (a longer one is cut and ends in a hash of the whole)."""
    name = _UNSAFE.sub("_", text.strip())
    if not name[:1].isalnum():
        name = "r" + name
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9]}~{digest}"
    return name


def run_name(values: Mapping[str, str]) -> str:
    """A run's directory name from its swept values, in the sweep's axis order; `run` for a sweep of one."""
    if not values:
        return "run"
    return sanitise(",".join(f"{key}={value}" for key, value in values.items()))


def default_sweep_name(sweep_file: str | None) -> str:
    """`<sweep file>-<UTC stamp>`, or `sweep-<UTC stamp>` for a command-line sweep."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{sweep_file or 'sweep'}-{stamp}"
