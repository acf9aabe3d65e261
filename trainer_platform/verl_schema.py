"""Check a job's overrides against the installed verl's own config schema, without importing verl.

Hydra composes verl's YAML config tree (found with importlib's find_spec, so neither verl nor torch is imported)
with the job's overrides, exactly as verl's entry point would: an unknown key or a bad override fails here, before
anything is launched. A batch of jobs shares one `VerlSchema`, so verl's config tree is built once per batch and
each job costs only its overrides (trainer_platform.composer). The deeper check (verl's `validate_config` on the
dataclasses) runs in the test suite.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainer_platform.composer import Composer
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


class VerlSchema:
    """verl's config schema for a batch of jobs: each config verl composes (per entry point) is built by Hydra once
    for the batch (trainer_platform.composer), and each job's overrides are applied to a copy of it. A job the
    shared tree cannot take is composed by Hydra alone, which names the override verl rejects."""

    def __init__(self, dpo_config_dir: Path | None = None) -> None:
        self.dpo_config_dir = dpo_config_dir
        self._config_dir: Path | None = None
        self._composers: dict[tuple[Path, str], Composer] = {}
        # verl's config without the job's overrides (plain containers), per config: the defaults a value's type is
        # checked against
        self._defaults: dict[tuple[Path, str], Any] = {}

    @property
    def trees_built(self) -> int:
        """How many times Hydra built one of verl's config trees (tests: once per batch and entry point)."""
        return sum(c.trees_built for c in self._composers.values())

    def check(self, job: VerlJob) -> Any:
        """Compose the job's verl config; returns it (an OmegaConf DictConfig) or raises SpecError. The job's
        placeholders (${TP_RUN_DIR}, ...: filled in where it runs) count as absolute paths here."""
        job = job.resolve({"TP_RUN_DIR": "/run", "TP_VERL_EXT": "/verl_ext", "MASTER_ADDR": "head", "MASTER_PORT": "1"})
        if job.entry_point in CONFIG_NAMES:
            where, extra = (self._verl_dir(), CONFIG_NAMES[job.entry_point]), []
        elif self.dpo_config_dir is not None and job.entry_point.endswith(".py"):
            # our DPO config extends verl's sft_trainer_engine; point its search path at verl's config folder on
            # disk (its own `pkg://verl.trainer.config` would import verl, and with it torch)
            where, extra = (self.dpo_config_dir, "dpo_trainer"), [f"hydra.searchpath=[file://{self._verl_dir()}]"]
        else:
            return None
        overrides = job_overrides(job)
        config = self._compose(*where, [*overrides, *extra])
        if where not in self._defaults:
            from omegaconf import OmegaConf

            self._defaults[where] = OmegaConf.to_container(self._compose(*where, extra), resolve=False)
        check_value_types(self._defaults[where], config, overrides)
        return config

    def _verl_dir(self) -> Path:
        if self._config_dir is None:
            self._config_dir = verl_config_dir()
        return self._config_dir

    def _compose(self, config_dir: Path, config_name: str, overrides: list[str]) -> Any:
        composer = self._composers.get((config_dir, config_name))
        if composer is None:
            composer = self._composers[(config_dir, config_name)] = Composer(config_dir, config_name)
        cfg = composer.compose(overrides)
        return cfg if cfg is not None else compose_verl_config(config_dir, config_name, overrides)


def check_job_against_verl(job: VerlJob, dpo_config_dir: Path | None = None) -> Any:
    """Compose one job's verl config (VerlSchema.check); a batch shares one VerlSchema instead."""
    return VerlSchema(dpo_config_dir).check(job)


def check_value_types(defaults: Mapping[str, Any], config: Any, overrides: list[str]) -> None:
    """SpecError for an override whose value in `config` is not of the kind of verl's default there (`defaults`, plain
    containers): true or false, a number, a list, a mapping. verl's YAML is untyped, so Hydra takes
    `enforce_eager=maybe`, and verl's dataclasses refuse it only after launch. Keys without such a default (null, a
    string, an interpolation, a new `+key`) are left to verl."""
    from omegaconf import OmegaConf

    from trainer_platform.hydra_values import literal

    for override in overrides:
        key = override.split("=", 1)[0]
        if key.startswith(("+", "~", "hydra.")):
            continue
        default = _at(defaults, key)
        kind = _kind(default)
        if kind is None:
            continue
        value = OmegaConf.select(config, key, default=None, throw_on_resolution_failure=False)
        if value is None or _kind(value) == kind:
            continue
        raise SpecError(
            f"verl.{key}",
            f"verl's config holds {kind} here (default {default!r}), got {value!r}",
            f"write {kind}, e.g. verl.{key}={literal(default)}",
        )


def _kind(value: Any) -> str | None:
    """What a default of verl's config says a value must be (None: it says nothing)."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "a mapping"
    return "a list" if isinstance(value, Sequence) and not isinstance(value, str) else None


def _at(tree: Any, key: str) -> Any:
    """The value at a dotted key of plain containers (None when absent)."""
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree
