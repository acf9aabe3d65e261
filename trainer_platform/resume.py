"""What a resume starts from: which run `resume=true` names, and that run's saved spec with new overrides applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from trainer_platform.errors import SpecError
from trainer_platform.flags import override_values, parse_flag
from trainer_platform.runs import RunDir
from trainer_platform.spec import upgrade_saved_config


def saved_spec(run: RunDir, overrides: list[str]) -> dict[str, Any]:
    """A run's spec.yaml with `overrides` applied, as plain data; SpecError naming the file when it is unusable."""
    import yaml
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    hint = "restore spec.yaml from the run's launch.sh/job.json, or start a new run"
    try:
        saved = OmegaConf.load(run.spec_path)
    except FileNotFoundError:
        raise SpecError(str(run.spec_path), "is missing, so the run cannot be resumed", hint) from None
    except (OmegaConfBaseException, yaml.YAMLError, ValueError, UnicodeDecodeError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise SpecError(str(run.spec_path), f"is not valid YAML ({problem})", hint) from None
    if not isinstance(saved, DictConfig):
        raise SpecError(str(run.spec_path), "does not hold a mapping of settings", hint)
    saved = OmegaConf.create(upgrade_saved_config(cast(dict[str, Any], OmegaConf.to_container(saved))))
    try:
        merged = OmegaConf.merge(saved, OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
        cfg: Any = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as exc:
        raise SpecError("overrides", f"cannot apply to the saved spec: {exc}", "use dotted key=value pairs") from None
    return {str(k): v for k, v in cfg.items()}


def resume_target(overrides: list[str]) -> Path | None:
    """The run dir `resume=true` asks to continue (resume_dir, or run_root/name); None when not resuming."""
    values = override_values(overrides)
    if not parse_flag("resume", values.get("resume", "false")):
        return None
    if values.get("resume_dir") not in (None, "", "null"):
        return Path(values["resume_dir"]).expanduser()
    if values.get("name") in (None, "", "null"):
        raise SpecError(
            "resume",
            "resume=true needs the run to continue",
            "add resume_dir=runs/<name> (or name=<name> with the same run_root)",
        )
    return Path(values.get("run_root", "runs")).expanduser() / values["name"]
