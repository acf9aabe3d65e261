"""Compose conf/ + command-line overrides into one plain config, with clear errors for bad overrides.

Hydra's own errors for a misspelt group option or key are long and end in exit code 1; here each becomes a
`SpecError` that names the override and suggests the fix (exit code 2).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from trainer_platform.composer import Composer
from trainer_platform.errors import SpecError, choices_hint, did_you_mean
from trainer_platform.paths import conf_dir, local_conf_dir, local_searchpath

GROUPS = ("algorithm", "model", "data", "compute", "launcher", "logger", "diagnostics", "surgery", "experiment")


def group_options(group: str, root: Path | None = None) -> list[str]:
    """Option names of a config group (the YAML files in conf/<group>/, and conf/local/<group>/)."""
    base = root or conf_dir()
    names = {p.stem for p in (base / group).glob("*.yaml")}
    if root is None:
        names |= {p.stem for p in (local_conf_dir() / group).glob("*.yaml")}
    return sorted(names)


def option_descriptions(group: str, root: Path | None = None) -> list[tuple[str, str]]:
    """`(option, description)` for each option of a group: the first sentence of the file's first comment."""
    base = root or conf_dir()
    return [(name, file_description(base / group / f"{name}.yaml")) for name in group_options(group, root)]


def file_description(path: Path) -> str:
    """The first sentence of a config file's leading comment (a `# @package` line skipped), or ''."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text.startswith("#"):
            break
        body = text.lstrip("#").strip()
        if body.startswith("@package"):
            continue
        if not body:
            break
        words.append(body)
        end = re.search(r"\.(\s|$)", " ".join(words))
        if end:
            return " ".join(words)[: end.start() + 1]
    return " ".join(words)


def group_defaults(root: Path | None = None) -> dict[str, str]:
    """The option each group gets when the command line names none (train.yaml's defaults list)."""
    import yaml

    data = yaml.safe_load(((root or conf_dir()) / "train.yaml").read_text(encoding="utf-8"))
    entries = [e for e in data.get("defaults", []) if isinstance(e, dict)]
    return {str(k): str(v) for e in entries for k, v in e.items() if str(k) in GROUPS}


def describe_groups(groups: tuple[str, ...] = GROUPS) -> list[str]:
    """Lines listing each group (with its default) and its options, each with its file's description."""
    defaults = group_defaults()
    lines = []
    for group in groups:
        default = defaults.get(group)
        if default and default.startswith("${"):  # diagnostics: ${algorithm}
            default = f"same as {default.strip('${}')}"
        lines.append(f"  {group}" + (f" (default: {default})" if default else ""))
        lines += [f"    {option:<22} {text}" for option, text in option_descriptions(group)]
    return lines


def check_hydra_keys(overrides: list[str]) -> None:
    """Hydra's own settings (`hydra.run.dir=...`, `hydra/launcher=...`) would be accepted by Hydra and then mean
    nothing to a run: refuse them, saying what does the job instead."""
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if not key.startswith(("hydra.", "hydra/")) and key != "hydra":
            continue
        if key.startswith(("hydra.run", "hydra.sweep", "hydra.output_subdir", "hydra.job.chdir")):
            hint = "each run lives in run_root/NAME: set run_root=DIR and name=NAME"
        elif key.startswith(("hydra.verbose", "hydra.job_logging", "hydra.hydra_logging", "hydra/job_logging")):
            hint = "verbose=true shows verl's output live; all of it is in the run's train.log (trainer-platform logs)"
        elif key.startswith(("hydra/launcher", "hydra.launcher")):
            hint = "pick where the job runs with launcher=NAME"
        else:
            hint = "train.py fixes Hydra's own settings; see the run's config with `python train.py --cfg job`"
        raise SpecError(key, "is one of Hydra's own settings, which train.py does not use", hint)


def run_composer() -> Composer:
    """A Composer of run configs (conf/train.yaml) for one batch of runs: pass it to every `compose_config` of
    the batch, and Hydra builds each distinct set of group choices once."""
    return Composer(conf_dir(), "train")


def compose_config(
    overrides: list[str], config_name: str = "train", composer: Composer | None = None
) -> dict[str, Any]:
    """Compose the run config and return it as plain containers with interpolations resolved. With `composer`
    (`run_composer()`, shared by a batch) the config comes from its cached trees; what it cannot take goes
    through Hydra's compose here, which reports the error."""
    overrides = [_passthrough(o) for o in overrides]
    check_group_choices(overrides)
    check_hydra_keys(overrides)
    cfg = None
    if composer is not None and composer.config_name == config_name:
        cfg = composer.compose([*overrides, *local_searchpath()])
    return _plain(cfg if cfg is not None else _hydra_compose(overrides, config_name))


def _hydra_compose(overrides: list[str], config_name: str) -> Any:
    """Hydra's own compose of one run; SpecError naming the bad override."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        try:
            cfg = compose(config_name=config_name, overrides=[*overrides, *local_searchpath()])
        except HydraException as exc:
            # explain the failure: compose the groups alone and find the override naming a key that does not exist
            try:
                base = compose(
                    config_name=config_name,
                    overrides=[*(o for o in overrides if _is_group_choice(o)), *local_searchpath()],
                )
            except HydraException:
                base = None
            if base is not None:
                check_keys_exist(overrides, OmegaConf.to_container(base, resolve=False))
            _explain_grammar_error(exc)
            raise SpecError("overrides", _first_line(exc), "check the spelling of each key=value") from None
    return cfg


def _plain(cfg: Any) -> dict[str, Any]:
    """A composed config as plain containers, interpolations resolved (SpecError naming what cannot resolve)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or "config"
        raise SpecError(
            str(key), f"cannot resolve: {_first_line(exc)}", "set the value or the variable it names"
        ) from None
    assert isinstance(container, dict)
    container.pop("hydra", None)
    return {str(k): v for k, v in container.items()}


def _passthrough(override: str) -> str:
    """`verl.a.b=v` adds a raw verl key: Hydra needs the `+` for keys new to the (empty) verl block."""
    return "+" + override if override.startswith("verl.") else override


def _is_group_choice(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return key in GROUPS


def check_group_choices(overrides: list[str]) -> None:
    """Unknown group options (`algorithm=grpoo`) -> SpecError with did-you-mean."""
    for override in overrides:
        if "=" not in override:
            raise SpecError(
                override, "is not a key=value override", "write overrides as key=value, e.g. algorithm=grpo"
            )
        key, value = override.split("=", 1)
        group = key.lstrip("+~")
        if group in GROUPS and value in ("", "null") and not key.startswith("~"):
            raise SpecError(
                f"{group}={value}", f"{group} needs one of its options", choices_hint(value, group_options(group))
            )
        if group in GROUPS and value not in ("", "null"):
            options = group_options(group)
            if value not in options:
                raise SpecError(f"{group}={value}", f"no {group} option named {value!r}", choices_hint(value, options))


def check_keys_exist(overrides: list[str], base: Any) -> None:
    """`algorithm.klcoef=1` -> SpecError naming the closest existing key (new keys need a leading `+`)."""
    for override in overrides:
        key = override.split("=", 1)[0]
        if key.startswith(("+", "~")) or key in GROUPS or key.startswith("hydra."):
            continue
        parts = key.split(".")
        if parts[0] == "verl":
            continue  # passthrough keys are checked against verl's own schema
        node = base
        for i, part in enumerate(parts):
            if not isinstance(node, dict):
                break
            if part not in node:
                where = ".".join(parts[:i]) or "the top level"
                guess = did_you_mean(part, node.keys())
                hint = guess or f"keys under {where}: {', '.join(sorted(map(str, node.keys())))}"
                if not node:
                    hint = f"{where} is empty: add a key to it with a leading '+', e.g. +{key}=..."
                raise SpecError(key, f"unknown key {part!r} under {where}", hint)
            node = node[part]


def _explain_grammar_error(exc: BaseException) -> None:
    """Hydra's override grammar rejected an override: name it and say how to quote."""
    from hydra.errors import OverrideParseException

    if not isinstance(exc, OverrideParseException):
        return
    override = getattr(exc, "override", "") or _first_line(exc)
    key = override.split("=", 1)[0].lstrip("+~") or "override"
    value = override.split("=", 1)[1] if "=" in override else ""
    hint = f"quote a value holding spaces or ()[]{{}},:=' characters: \"{key}='...'\" (outer quotes for the shell)"
    if value.startswith("[") and value.endswith("]") and not any(q in value for q in "'\""):
        items = ",".join(f"'{item.strip()}'" for item in value[1:-1].split(","))
        hint = f'quote each list item holding spaces or ()[]{{}},:= characters: "{key}=[{items}]" (outer quotes: shell)'
    raise SpecError(key, f"{override!r} is not valid override syntax ({_first_line(exc)})", hint) from None


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, looking through to its cause when it has none."""
    while not str(exc).strip() and exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
