"""Named sweep files: `python train.py -m +sweep=NAME` reads `sweeps/NAME.yaml` (config only, every field
commented) and expands it into the sweep's runs.

A file holds `base` (overrides every run shares), `grid` (every combination of these keys' values), `zip` (groups
of keys that advance together: the i-th values of each key make one point), `seeds` (every point once per seed,
as train.seed) and/or `search` (an Optuna search instead of a grid: trainer_platform/sweep/search.py). Axes given
on the command line (`-m +sweep=NAME a=1,2`) join the grid; plain overrides there apply to every run.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trainer_platform.errors import SpecError, choices_hint, did_you_mean
from trainer_platform.hydra_values import quote
from trainer_platform.paths import sweeps_dir
from trainer_platform.sweep.overrides import key_of, parse, refuse_swept
from trainer_platform.sweep.search import SearchSettings

Scalar = bool | int | float | str
SEED_KEY = "train.seed"


class SweepFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # key=value overrides every run of the sweep shares
    base: list[str] = Field(default_factory=list)
    # key -> values: every combination is one run
    grid: dict[str, list[Scalar]] = Field(default_factory=dict)
    # groups of keys that advance together (all lists of a group equally long)
    zip: list[dict[str, list[Scalar]]] = Field(default_factory=list)
    # every point of the grid once per seed (train.seed)
    seeds: list[int] = Field(default_factory=list)
    # an Optuna search instead of a grid
    search: SearchSettings | None = None

    @field_validator("base")
    @classmethod
    def _base(cls, value: list[str]) -> list[str]:
        for override in value:
            if "=" not in override:
                raise ValueError(f"{override!r} is not a key=value override")
        return value


def sweep_dir() -> Path:
    """The folder of named sweep files (`sweeps/` at the repo root)."""
    return sweeps_dir()


def available() -> list[str]:
    return sorted(p.stem for p in sweep_dir().glob("*.yaml"))


def split_sweep_option(overrides: list[str]) -> tuple[str | None, list[str]]:
    """(`NAME` of `+sweep=NAME`, the other overrides)."""
    name = None
    rest = []
    for override in overrides:
        if key_of(override) == "sweep":
            if name is not None:
                raise SpecError("sweep", "is given twice", "run one sweep file at a time: +sweep=NAME")
            name = override.split("=", 1)[1].strip()
        else:
            rest.append(override)
    return name, rest


def load(name: str) -> tuple[Path, SweepFile]:
    """The sweep file `name` (sweeps/NAME.yaml, or a path to a .yaml file) validated; SpecError naming the file."""
    import yaml

    path = Path(name).expanduser() if name.endswith((".yaml", ".yml")) else sweep_dir() / f"{name}.yaml"
    if not path.is_file():
        raise SpecError(f"sweep={name}", f"no sweep file {path}", choices_hint(name, available()))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(str(path), f"is not readable YAML ({str(exc).splitlines()[0]})", "fix the file") from None
    if not isinstance(raw, dict):
        raise SpecError(str(path), "does not hold a mapping (base, grid, zip, seeds, search)", "see sweeps/*.yaml")
    try:
        sweep = SweepFile.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            model = SweepFile if len(first["loc"]) == 1 else SearchSettings
            fields = sorted(model.model_fields)
            hint = f"{did_you_mean(str(first['loc'][-1]), fields)} fields: {', '.join(fields)}".strip()
            raise SpecError(f"{path}: {where}", "is not a sweep file field", hint) from None
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise SpecError(f"{path}: {where}", f"{msg} (got {first.get('input')!r})", "fix the value") from None
    _check(path, sweep)
    return path, sweep


def _check(path: Path, sweep: SweepFile) -> None:
    seen: dict[str, str] = {}

    def claim(key: str, where: str) -> None:
        refuse_swept(key)
        if key in seen:
            raise SpecError(f"{path}: {where}", f"{key} is also swept in {seen[key]}", "sweep each key in one place")
        seen[key] = where

    for key, values in sweep.grid.items():
        claim(key, "grid")
        if not values:
            raise SpecError(f"{path}: grid.{key}", "has no values", "list at least one value")
    for i, group in enumerate(sweep.zip):
        lengths = {key: len(values) for key, values in group.items()}
        if not group or len(set(lengths.values())) != 1 or 0 in lengths.values():
            raise SpecError(
                f"{path}: zip[{i}]",
                f"zipped keys need equally long, non-empty lists (got {lengths})",
                "give every key of the group one value per point",
            )
        for key in group:
            claim(key, f"zip[{i}]")
    if sweep.seeds:
        claim(SEED_KEY, "seeds")
        if len(set(sweep.seeds)) != len(sweep.seeds):
            raise SpecError(f"{path}: seeds", f"repeats a seed ({sweep.seeds})", "list each seed once")
    if sweep.search is not None:
        if sweep.grid or sweep.zip or sweep.seeds:
            raise SpecError(f"{path}: search", "cannot go with grid, zip or seeds", "a search chooses its own points")
        for key in sweep.search.params:
            refuse_swept(key)
    elif not (sweep.grid or sweep.zip or sweep.seeds):
        raise SpecError(str(path), "sweeps nothing", "add grid, zip, seeds or search")


def text(value: Scalar) -> str:
    """A value as it goes into an override (and a run name): YAML's own spelling for numbers and booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return quote(value) if isinstance(value, str) else str(value)


def expand(path: Path, sweep: SweepFile, overrides: list[str]) -> tuple[dict[str, list[str]], list[list[str]]]:
    """(axes, the override list of each run) of a grid sweep file combined with the command line's overrides."""
    axes_points: list[list[dict[str, str]]] = []
    axes: dict[str, list[str]] = {}
    for key, values in sweep.grid.items():
        axes_points.append([{key: text(v)} for v in values])
    for group in sweep.zip:
        keys = list(group)
        axes_points.append([{k: text(group[k][i]) for k in keys} for i in range(len(group[keys[0]]))])
    fixed: list[str] = []
    for override in parse(overrides):
        key = override.get_key_element().lstrip("+~")
        if override.is_sweep_override():
            refuse_swept(key)
            axes_points.append([{key: v} for v in override.sweep_string_iterator()])
        else:
            fixed.append(override.input_line)
    if sweep.seeds:
        axes_points.append([{SEED_KEY: str(s)} for s in sweep.seeds])
    for points in axes_points:
        for point in points:
            for key, value in point.items():
                axes.setdefault(key, []).append(value)
    swept = set(axes)
    for override in fixed:
        if key_of(override) in swept:
            raise SpecError(
                override, f"sets a key that {path.name} sweeps", "drop it from the command line, or edit the file"
            )
    given = {key_of(o) for o in fixed}
    base = [o for o in sweep.base if key_of(o) not in given]  # the command line wins over the file's base
    runs = [
        [*base, *fixed, *(f"{k}={v}" for point in combo for k, v in point.items())]
        for combo in itertools.product(*axes_points)
    ]
    return {k: _unique(v) for k, v in axes.items()}, runs


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def describe(sweep: SweepFile) -> dict[str, Any]:
    """The file's content for the sweep manifest."""
    return sweep.model_dump(exclude_none=True)
