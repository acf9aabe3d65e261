"""Values a user sets that replace a preset's built-in source: they take effect, never silently lose to it.

`model.path=DIR` under `model=tiny` trains DIR; `data.train_files=[...]` under a tiny data preset trains on those
files. Applied to the composed config before validation, so spec.yaml and job.json show what runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainer_platform.errors import SpecError


def apply_user_paths(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The config with a user's model path / data files replacing the built-in model / data they override."""
    out = dict(cfg)
    model = out.get("model")
    if isinstance(model, Mapping) and model.get("builtin") is not None and model.get("path"):
        out["model"] = {**model, "builtin": None}
    data = out.get("data")
    if isinstance(data, Mapping):
        from trainer_platform.data.validate import resolve_data_paths

        out["data"] = data = resolve_data_paths(data)
    if isinstance(data, Mapping) and data.get("builtin") is not None:
        if data.get("train_files"):
            out["data"] = {**data, "builtin": None, "builtin_rows": None}
        elif data.get("val_files"):
            raise SpecError(
                "data.val_files",
                f"data={data.get('name')} generates its own training and validation files",
                "set data.train_files too to train on your own files",
            )
    return out
