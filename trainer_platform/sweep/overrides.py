"""A sweep's runs (`python train.py -m a=1,2 b=x,y`), read with Hydra's own override grammar, checked before any
of them launches: a bad value anywhere in a list is reported like any bad override (exit code 2)."""

from __future__ import annotations

import itertools
from typing import Any

from trainer_platform.errors import SpecError

# beyond this many combinations, each value is checked with the first value of every other list
_CHECK_EVERY_COMBINATION = 64


def parse(overrides: list[str]) -> list[Any]:
    """Hydra's parsed overrides; a grammar error becomes a SpecError naming the override."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed = []
    for override in overrides:
        try:
            parsed.extend(parser.parse_overrides([override]))
        except OverrideParseException as exc:
            problem = str(exc).strip().splitlines()[0]
            raise SpecError(
                override,
                f"is not valid override syntax: {problem}",
                "quote values holding brackets, commas or spaces, e.g. 'data.train_files=[\"/a.parquet\"]'",
            ) from None
    return parsed


def combinations(overrides: list[str]) -> list[list[str]]:
    """The override list of each run of the sweep, in Hydra's order (the last list varies fastest)."""
    choices: list[list[str]] = []
    for override in parse(overrides):
        if override.is_sweep_override():
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    return [list(combo) for combo in itertools.product(*choices)]


def runs_to_check(overrides: list[str]) -> list[list[str]]:
    """Every combination, or for a very large sweep one run per listed value (the others at their first value)."""
    runs = combinations(overrides)
    if len(runs) <= _CHECK_EVERY_COMBINATION:
        return runs
    values = [[run[0] for run in combinations([override])] for override in overrides]
    firsts = [v[0] for v in values]
    return [[*firsts[:i], value, *firsts[i + 1 :]] for i, listed in enumerate(values) for value in listed[1:]] + [
        firsts
    ]


def check(overrides: list[str]) -> int:
    """Compose and validate every run of a command-line sweep before any launches; returns how many runs it has."""
    runs = combinations(overrides)
    _validate(runs_to_check(overrides))
    return len(runs)


def check_runs(runs: list[list[str]], composer: Any = None) -> dict[tuple[str, ...], dict[str, Any]]:
    """Compose and validate the runs of a sweep (of a very large one, enough runs to try every value once); returns
    each checked run's composed config by its overrides, for the batch to use instead of composing it again.
    `composer` (trainer_platform.compose.run_composer()) shares Hydra's work across the runs."""
    if len(runs) <= _CHECK_EVERY_COMBINATION:
        return _validate(runs, composer)
    chosen: list[list[str]] = []
    seen: set[str] = set()
    for run in runs:
        if not set(run) <= seen:
            chosen.append(run)
            seen |= set(run)
    return _validate(chosen, composer)


def _validate(runs: list[list[str]], composer: Any = None) -> dict[tuple[str, ...], dict[str, Any]]:
    from trainer_platform.compose import compose_config
    from trainer_platform.spec import RunSpec

    composed: dict[tuple[str, ...], dict[str, Any]] = {}
    for run in runs:
        try:
            cfg = compose_config(run, composer=composer)
            RunSpec.from_config(cfg)
        except SpecError as exc:
            raise SpecError(
                exc.key, exc.problem, f"{exc.hint + '; ' if exc.hint else ''}in the sweep run: {' '.join(run)}"
            ) from None
        composed[tuple(run)] = cfg
    return composed


# keys a sweep may not vary: one launcher takes the whole batch, and these steer the invocation itself
_NOT_SWEPT = {
    "launcher": "a sweep goes to one launcher as one batch: pick it once (launcher=NAME), one sweep per launcher",
    "name": "name= names the whole sweep (run_root/NAME); its runs are named by their swept values",
    "run_root": "a sweep lives in one run_root: set it once",
    "resume": "resume each run with `trainer-platform resume RUN_DIR`",
    "resume_dir": "resume each run with `trainer-platform resume RUN_DIR`",
    "dry_run": "dry_run=true applies to the whole sweep: set it once",
}


def key_of(override: str) -> str:
    """The key an override sets: `+algorithm.lr=1` -> `algorithm.lr`."""
    return override.split("=", 1)[0].strip().lstrip("+~")


def refuse_swept(key: str) -> None:
    """SpecError when `key` (or the group it belongs to) may not vary across a sweep's runs."""
    root = key.split(".", 1)[0].split("/", 1)[0]
    if root in _NOT_SWEPT:
        raise SpecError(key, "cannot vary across a sweep", _NOT_SWEPT[root])


def axes(overrides: list[str]) -> dict[str, list[str]]:
    """The swept keys of a command line and their values, in order (`a=1,2 b=x` -> {'a': ['1', '2']});
    SpecError for a key that may not be swept."""
    found: dict[str, list[str]] = {}
    for override in parse(overrides):
        if override.is_sweep_override():
            key = override.get_key_element().lstrip("+~")
            refuse_swept(key)
            found[key] = list(override.sweep_string_iterator())
    return found
