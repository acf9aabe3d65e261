"""Where the platform keeps things on disk: the verl-side folder and the local cache."""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent
# where a built wheel carries the checkout's conf/, verl/ and sweeps/ (setup.py copies them in; never in a checkout)
SHIPPED = Path(__file__).resolve().parent / "_shipped"


def _tree(name: str) -> Path:
    """The checkout's top-level folder `name` (a source tree or an editable install), else the copy an installed
    wheel carries inside the package."""
    return SHIPPED / name if SHIPPED.is_dir() else _REPO_ROOT / name


def verl_ext_dir() -> Path:
    """The `verl/` folder: modules verl imports into its own processes (put on their PYTHONPATH only)."""
    return _tree("verl")


def conf_dir() -> Path:
    """The Hydra config tree shipped with the platform."""
    return _tree("conf")


def sweeps_dir() -> Path:
    """The named sweep files (`sweeps/NAME.yaml`)."""
    return _tree("sweeps")


def cache_dir() -> Path:
    """Cache for generated tiny models, datasets and converted parquet.

    `TRAINER_PLATFORM_CACHE` overrides; default `~/.cache/trainer_platform`.
    """
    env = os.environ.get("TRAINER_PLATFORM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "trainer_platform"


def local_placeholders(run_dir: Path | str) -> dict[str, str]:
    """Values of a job's placeholders (trainer_platform.job) for a run on this machine."""
    return {"TP_RUN_DIR": str(Path(run_dir).absolute()), "TP_VERL_EXT": str(verl_ext_dir())}


def local_conf_dir() -> Path:
    """A user's own config options (cluster addresses, servers, accounts), loaded as an extra Hydra search path:
    `conf/local/launcher/gpu1.yaml` becomes `launcher=gpu1`. Gitignored. `TRAINER_PLATFORM_LOCAL_CONF` overrides."""
    env = os.environ.get("TRAINER_PLATFORM_LOCAL_CONF")
    if env:
        return Path(env).expanduser()
    if SHIPPED.is_dir():  # an installed wheel: the user's config dir, not site-packages
        return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "trainer_platform" / "local"
    return conf_dir() / "local"


def local_searchpath() -> list[str]:
    """The Hydra override that loads `local_conf_dir()`, when it exists."""
    folder = local_conf_dir()
    return [f"hydra.searchpath=[file://{folder.absolute()}]"] if folder.is_dir() else []


def repo_root() -> Path:
    """The folder holding the platform's packages (the checkout, or site-packages for an installed wheel): Hydra
    finds our launcher plugin in its hydra_plugins/."""
    return _REPO_ROOT
