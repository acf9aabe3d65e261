"""The diagnostics settings of an existing run, for `watch` and `diagnose`: the ones its job carried (job.json), else
the defaults of its algorithm kind from conf/diagnostics/ (a run made before diagnostics existed, or with them off)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from trainer_platform.diagnostics.rules import ConfigError, DiagnosticsConfig, config_from_dict
from trainer_platform.paths import conf_dir
from trainer_platform.runs import RunDir, RunDirError


def config_for_run(run: RunDir) -> DiagnosticsConfig:
    """The rules to run over `run`'s metrics; RunDirError naming the file when its settings are invalid."""
    try:
        job: dict[str, Any] = json.loads(run.job_path.read_text())
    except (OSError, ValueError):
        job = {}
    settings = job.get("diagnostics") if isinstance(job, dict) else None
    where = str(run.job_path)
    if not isinstance(settings, dict):
        kind = _kind(run)
        path = conf_dir() / "diagnostics" / f"{kind}.yaml"
        where = str(path)
        settings = yaml.safe_load(path.read_text()) if path.is_file() else {}
        settings = {**settings, "enabled": True}  # asked for explicitly: run them even where the job had them off
    try:
        return config_from_dict(settings)
    except ConfigError as e:
        raise RunDirError(f"{where}: diagnostics {e}") from None


def _kind(run: RunDir) -> str:
    try:
        spec = yaml.safe_load(run.spec_path.read_text())
        kind = spec["algorithm"]["kind"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "rl"
    return kind if kind in ("rl", "sft", "dpo") else "rl"
