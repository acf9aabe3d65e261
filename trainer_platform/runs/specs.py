"""A run's resolved spec (spec.yaml) as flat dotted keys, ordered by how much they matter to training, and the diff
of several runs' specs (what `compare` shows and what a sweep varied)."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Keys in the order a reader wants them: what changes the optimisation first, then the model and data, the shape
# of the job, and last the bookkeeping. A key takes the place of the first pattern it matches.
KEY_ORDER: tuple[str, ...] = (
    "algorithm.name",
    "algorithm.estimator",
    "algorithm.lr",
    "algorithm.batch_size",
    "algorithm.mini_batch_size",
    "algorithm.rollout_n",
    "algorithm.kl_*",
    "algorithm.beta",
    "algorithm.loss_*",
    "algorithm.clip_*",
    "algorithm.entropy_coef",
    "algorithm.temperature",
    "algorithm.*",
    "train.steps",
    "train.seed",
    "train.*",
    "model.name",
    "model.path",
    "model.*",
    "data.name",
    "data.*",
    "surgery.*",
    "verl.*",
    "compute.*",
    "launcher.*",
    "logger.*",
    "*",
)

# Keys that never change what a run learns: listed last by `compare`, never taken for a sweep's parameters.
BOOKKEEPING: tuple[str, ...] = ("name", "run_root", "dry_run", "verbose", "resume", "resume_dir", "launcher.*",
                                "logger.*")  # fmt: skip


def load_spec(path: Path) -> dict[str, Any]:
    """spec.yaml as a dict; {} when missing or not a mapping (the caller says what is missing)."""
    try:
        data = yaml.load(path.read_text(), Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def flatten(spec: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as `a.b.c` keys; lists and scalars are leaf values; an empty mapping is the leaf `{}`."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def _first_match(key: str, patterns: Sequence[str]) -> int:
    return next((i for i, p in enumerate(patterns) if fnmatch.fnmatchcase(key, p)), len(patterns))


def is_bookkeeping(key: str) -> bool:
    return _first_match(key, BOOKKEEPING) < len(BOOKKEEPING)


def importance(key: str) -> tuple[int, int, str]:
    """Sort key: training keys by KEY_ORDER, bookkeeping last."""
    return (int(is_bookkeeping(key)), _first_match(key, KEY_ORDER), key)


def show_value(value: Any) -> str:
    """A spec value as one short line: YAML-ish scalars, JSON for lists and mappings, '(unset)' for a missing key."""
    if value is _MISSING:
        return "(unset)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


class _Missing:
    def __repr__(self) -> str:
        return "(unset)"


# the value of a key one spec has and another lacks
_MISSING: Any = _Missing()


def diff(specs: Sequence[Mapping[str, Any]], *, everything: bool = False) -> list[tuple[str, list[Any]]]:
    """(key, value in each spec) for every flattened key whose values differ (all keys with `everything`),
    most important first. A key a spec lacks has the value `_MISSING` there (shown as '(unset)')."""
    flats = [flatten(spec) for spec in specs]
    keys = sorted({k for flat in flats for k in flat}, key=importance)
    rows = []
    for key in keys:
        values = [flat.get(key, _MISSING) for flat in flats]
        if everything or any(show_value(v) != show_value(values[0]) for v in values[1:]):
            rows.append((key, values))
    return rows


def swept_keys(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The training keys whose values differ between the specs (a sweep's parameters when it has no manifest)."""
    return [key for key, _ in diff(specs) if not is_bookkeeping(key)]
