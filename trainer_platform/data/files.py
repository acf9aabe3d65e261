"""What a training file must hold, checked on this machine before anything launches.

Parquet files in verl's formats: readable, not empty, with the columns their format needs, and the first row of
the chat columns shaped as verl reads them (a list of {role, content} turns, not plain strings). Each failure is a
`SpecError` naming the key and the file; `MissingFileError` is the one failure a dry run (or a launcher that runs
the job elsewhere) may turn into a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer_platform.errors import SpecError

# columns each data format must have (verl's names)
REQUIRED_COLUMNS = {
    "messages": ("messages",),
    "prompts": ("prompt", "data_source"),
    "preference": ("prompt", "chosen", "rejected"),
}
# columns holding chat turns, per format
_CHAT_COLUMNS = {"messages": ("messages",), "prompts": ("prompt",), "preference": ("prompt",)}


class MissingFileError(SpecError):
    """A data file that is not on this machine (it may exist where the job runs)."""


def check_parquet(key: str, path: Path, fmt: str, *, has_reward_fn: bool, hint_missing: str = "") -> int:
    """Check one data file; returns its row count."""
    if path.is_dir():
        raise SpecError(key, f"{path} is a directory, not a parquet file", "name the .parquet file(s) inside it")
    if not path.is_file():
        raise MissingFileError(
            key,
            f"file {path} does not exist on this machine",
            hint_missing or "create it (verl's examples/data_preprocess scripts write this format) or fix the path",
        )
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # a corrupt or non-parquet file
        raise SpecError(
            key,
            f"{path} is not a readable parquet file ({exc.__class__.__name__})",
            "write the data with pandas.DataFrame.to_parquet or pyarrow",
        ) from None
    columns = set(handle.schema_arrow.names)
    missing = [c for c in REQUIRED_COLUMNS[fmt] if c not in columns]
    if fmt == "prompts" and "reward_model" not in columns and not has_reward_fn:
        missing.append("reward_model (ground truth) or a data.reward.path function")
    if missing:
        raise SpecError(
            key,
            f"{path} lacks column(s) {', '.join(missing)} needed for {fmt} data (has: {', '.join(sorted(columns))})",
            format_hint(fmt),
        )
    rows = handle.metadata.num_rows
    if rows == 0:
        raise SpecError(key, f"{path} has no rows", "write at least one batch of rows into it")
    first = handle.read_row_group(0, columns=list(_CHAT_COLUMNS[fmt])).slice(0, 1).to_pylist()[0]
    for column in _CHAT_COLUMNS[fmt]:
        problem = _chat_problem(first[column])
        if problem:
            raise SpecError(key, f"{path}: column {column!r} {problem} in its first row", format_hint(fmt))
    return rows


def _chat_problem(value: Any) -> str:
    """Why a cell is not a list of {role, content} turns ('' when it is)."""
    if not isinstance(value, list) or not value:
        return f"holds {type(value).__name__} {str(value)[:40]!r}, not a list of chat turns"
    for turn in value:
        if not isinstance(turn, dict) or "role" not in turn or "content" not in turn:
            return f"holds a turn {str(turn)[:40]!r} that is not a {{role, content}} mapping"
    return ""


def format_hint(fmt: str) -> str:
    return {
        "messages": "SFT rows need `messages`: a list of {role, content} turns",
        "prompts": "RL rows need `prompt` (chat turns), `data_source` and `reward_model: {ground_truth}`",
        "preference": "DPO rows need `prompt` (chat turns), `chosen` and `rejected` (strings)",
    }[fmt]


def check_model_dir(path: Path) -> None:
    """A local Hugging Face model directory: exists, has a config.json that is a JSON object."""
    import json

    if path.is_file():
        raise SpecError("model.path", f"{path} is a file, not a model directory", "point at the folder holding it")
    if not path.is_dir():
        raise MissingFileError(
            "model.path", f"directory {path} does not exist", "point model.path at a Hugging Face model dir"
        )
    config = path / "config.json"
    if not config.is_file():
        raise SpecError(
            "model.path",
            f"{path} has no config.json, so it is not a Hugging Face model directory",
            "point model.path at the folder that holds config.json and the weights",
        )
    try:
        data = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(
            "model.path", f"{config} is not valid JSON ({exc.__class__.__name__})", "restore the model's config.json"
        ) from None
    if not isinstance(data, dict) or "model_type" not in data:
        raise SpecError(
            "model.path",
            f"{config} has no model_type, so transformers cannot load it",
            "restore the model's config.json (it names model_type, e.g. qwen2)",
        )
