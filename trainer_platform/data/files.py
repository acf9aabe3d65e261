"""Files a run reads, checked on this machine before anything launches: the model directory.

`MissingFileError` is the one failure a dry run (or a launcher that runs the job elsewhere) may turn into a
warning. Data sources are checked by data/validate.py and data/build.py.
"""

from __future__ import annotations

from pathlib import Path

from trainer_platform.errors import SpecError


class MissingFileError(SpecError):
    """A data file that is not on this machine (it may exist where the job runs)."""


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
