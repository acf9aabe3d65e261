"""A hyper-parameter search (`search:` in a sweep file) through Hydra's Optuna sweeper (hydra-optuna-sweeper):
its settings, and the overrides that hand it to Hydra. Each trial is a run of the sweep; the launcher plugin
scores it by the objective read from its metrics once it ends. Hopeless trials are pruned through the diagnostics
stream: the rules listed in `prune_on` stop a trial (status `stopped`, its last checkpoint kept) and the trial
counts as failed for Optuna (hydra-optuna-sweeper can only tell complete or failed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from trainer_platform.errors import SpecError
from trainer_platform.sweep.objective import Objective


class SearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Optuna's sampler: tpe (Bayesian) or random
    sampler: Literal["tpe", "random"] = "tpe"
    # the sampler's random seed (null: a different search each time)
    seed: int | None = None
    # how many trials (runs) in all
    n_trials: PositiveInt = 10
    # how many trials run at once (one batch for the launcher)
    n_jobs: PositiveInt = 1
    # key -> search space in Hydra's sweep syntax: interval(a,b), tag(log,interval(a,b)), choice(a,b), range(a,b)
    params: dict[str, str] = Field(min_length=1)
    # what each trial is scored by
    objective: Objective
    # diagnostics rules that stop (prune) a hopeless trial, e.g. [loss_plateau, reward_collapse]
    prune_on: list[str] = Field(default_factory=list)

    @field_validator("prune_on")
    @classmethod
    def _rules(cls, value: list[str]) -> list[str]:
        from trainer_platform.diagnostics import RULES
        from trainer_platform.errors import did_you_mean

        for rule in value:
            if rule not in RULES:
                hint = did_you_mean(rule, RULES) or ""
                raise ValueError(f"{rule!r} is not a diagnostics rule. {hint} rules: {', '.join(sorted(RULES))}")
        return value


def representative(key: str, space: str) -> str:
    """One value of a search space (its first choice, its low bound), to validate the runs before any starts;
    SpecError naming the key when the space is not Hydra sweep syntax."""
    from trainer_platform.sweep.overrides import parse

    [override] = parse([f"{key}={space}"])
    if not override.is_sweep_override():
        raise SpecError(f"search.params.{key}", f"{space!r} is not a search space", "use interval(a,b), choice(a,b)")
    value: Any = override.value()
    if hasattr(value, "start") and hasattr(value, "end"):  # interval or range
        return str(value.start)
    for choice in getattr(value, "list", []):
        return str(choice)
    raise SpecError(f"search.params.{key}", f"{space!r} has no value", "list at least one choice")


def search_overrides(search: SearchSettings, name: str | None) -> list[str]:
    """Hydra's settings of the Optuna sweeper for this search (the search space goes as sweep overrides)."""
    direction = "minimize" if search.objective.mode == "min" else "maximize"
    out = [
        "hydra/sweeper=optuna",
        f"hydra/sweeper/sampler={search.sampler}",
        f"hydra.sweeper.n_trials={search.n_trials}",
        f"hydra.sweeper.n_jobs={search.n_jobs}",
        f"hydra.sweeper.direction={direction}",
        # a failed or pruned trial has no score (failed for Optuna); the search goes on
        "hydra.sweeper.max_failure_rate=1.0",
    ]
    if search.seed is not None:
        out.append(f"hydra.sweeper.sampler.seed={search.seed}")
    if name:
        out.append(f"hydra.sweeper.study_name={name}")
    return out


def prune_overrides(search: SearchSettings) -> list[str]:
    """Every trial's diagnostics: the `prune_on` rules enabled with action stop."""
    return [
        o
        for rule in search.prune_on
        for o in (f"diagnostics.rules.{rule}.enabled=true", f"diagnostics.rules.{rule}.action=stop")
    ]


def plan_search(path: Path, search: SearchSettings, base: list[str], fixed: list[str], name: str | None) -> Any:
    """(session, Hydra overrides) of a search: its fixed overrides checked on a representative run first."""
    from trainer_platform.sweep.batch import SweepSession
    from trainer_platform.sweep.overrides import check_runs, key_of

    for override in fixed:
        if key_of(override) in search.params:
            raise SpecError(override, f"sets a key that {path.name} searches", "drop it from the command line")
    given = {key_of(o) for o in fixed}
    shared = [*(o for o in base if key_of(o) not in given), *fixed, *prune_overrides(search)]
    sample = [*shared, *(f"{k}={representative(k, v)}" for k, v in search.params.items())]
    try:
        composed = check_runs([sample])
    except SpecError as exc:
        raise SpecError(exc.key, exc.problem, f"{exc.hint} (from {path})") from None
    _check_waits(composed[tuple(sample)])
    session = SweepSession(
        axes={k: [v] for k, v in search.params.items()},
        name=name,
        sweeper="optuna",
        sweep_file=path.stem,
        details={"objective": search.objective.model_dump(), "search": search.model_dump(exclude={"objective"})},
        objective=search.objective,
    )
    spaces = [f"{k}={v}" for k, v in search.params.items()]
    return session, [*shared, *spaces, *search_overrides(search, name)]


def _check_waits(cfg: dict[str, Any]) -> None:
    """A search scores each trial when it ends: its launcher must follow the runs (launcher.wait=true). `cfg` is
    a composed run config."""
    from trainer_platform.pipeline import make_launcher
    from trainer_platform.spec import RunSpec

    launcher = make_launcher(RunSpec.from_config(cfg))
    options = getattr(launcher, "options", None)
    if options is not None and not options.wait:
        raise SpecError(
            "launcher.wait",
            "an Optuna search scores each trial when it ends, so its launcher must follow the runs",
            "add launcher.wait=true",
        )
