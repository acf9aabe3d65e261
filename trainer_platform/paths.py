"""Where the platform keeps things on disk: the verl-side folder and the local cache."""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def verl_ext_dir() -> Path:
    """The repo's `verl/` folder: modules verl imports into its own processes (put on their PYTHONPATH only)."""
    return _REPO_ROOT / "verl"


def conf_dir() -> Path:
    """The Hydra config tree shipped with the platform."""
    return _REPO_ROOT / "conf"


def cache_dir() -> Path:
    """Cache for generated tiny models, datasets and converted parquet.

    `TRAINER_PLATFORM_CACHE` overrides; default `~/.cache/trainer_platform`.
    """
    env = os.environ.get("TRAINER_PLATFORM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "trainer_platform"


def local_placeholders(run_dir: Path | str) -> dict[str, str]:
    """Values of a job's placeholders (trainer_platform.job) for a run on this machine."""
    return {"TP_RUN_DIR": str(Path(run_dir).absolute()), "TP_VERL_EXT": str(verl_ext_dir())}
