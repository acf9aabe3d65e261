"""Check a job's overrides against the installed verl's own config schema, without importing verl.

Hydra composes verl's YAML config tree (found with importlib's find_spec, so neither verl nor torch is imported)
with the job's overrides, exactly as verl's entry point would: an unknown key or a bad override fails here, before
anything is launched. The deeper check (verl's `validate_config` on the dataclasses) runs in the test suite.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from trainer_platform.errors import SpecError
from trainer_platform.job import VerlJob

# verl entry point -> the Hydra config it composes
CONFIG_NAMES = {"verl.trainer.main_ppo": "ppo_trainer", "verl.trainer.sft_trainer": "sft_trainer_engine"}


def verl_config_dir() -> Path:
    """verl's installed config folder (verl/trainer/config), located without importing verl."""
    found = importlib.util.find_spec("verl")
    if found is None or not found.submodule_search_locations:
        raise SpecError("verl", "verl is not installed in this environment", "pip install 'verl[verl-core]==0.9.1'")
    for location in found.submodule_search_locations:
        candidate = Path(location) / "trainer" / "config"
        if (candidate / "ppo_trainer.yaml").is_file():
            return candidate
    raise SpecError("verl", "verl's config folder (verl/trainer/config) was not found", "reinstall verl")


def job_overrides(job: VerlJob) -> list[str]:
    """The Hydra overrides of a job: its argv after the entry point."""
    argv = list(job.argv)
    for marker in (job.entry_point, job.entry_point.rsplit("/", 1)[-1]):
        for i, arg in enumerate(argv):
            if arg == marker or arg.endswith("/" + marker):
                return argv[i + 1 :]
    return [a for a in argv if "=" in a and not a.startswith("-")]


def compose_verl_config(config_dir: Path, config_name: str, overrides: list[str]) -> Any:
    """Compose verl's config with overrides; SpecError naming the override verl rejects."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            return compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        bad = next((o for o in overrides if o.split("=", 1)[0].lstrip("+~") in text), "")
        raise SpecError(
            f"verl override {bad}" if bad else "verl overrides",
            f"verl's config rejects it: {text}",
            "check the key against verl's config (python -m verl.trainer.main_ppo --cfg job)",
        ) from None
    finally:
        GlobalHydra.instance().clear()


def check_job_against_verl(job: VerlJob, dpo_config_dir: Path | None = None) -> Any:
    """Compose the job's verl config; returns it (an OmegaConf DictConfig) or raises SpecError. The job's
    placeholders (${TP_RUN_DIR}, ...: filled in where it runs) count as absolute paths here."""
    job = job.resolve({"TP_RUN_DIR": "/run", "TP_VERL_EXT": "/verl_ext", "MASTER_ADDR": "head", "MASTER_PORT": "1"})
    if job.entry_point in CONFIG_NAMES:
        return compose_verl_config(verl_config_dir(), CONFIG_NAMES[job.entry_point], job_overrides(job))
    if dpo_config_dir is not None and job.entry_point.endswith(".py"):
        # our DPO config extends verl's sft_trainer_engine; point its search path at verl's config folder on disk
        # (its own `pkg://verl.trainer.config` would import verl, and with it torch)
        searchpath = f"hydra.searchpath=[file://{verl_config_dir()}]"
        return compose_verl_config(dpo_config_dir, "dpo_trainer", [*job_overrides(job), searchpath])
    return None
