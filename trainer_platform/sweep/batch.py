"""A sweep across its batches: each batch of runs (all of a grid, or the trials Optuna asks for next) is composed
and validated, named by its swept values, prepared into run dirs under the sweep dir and handed to the launcher as
one batch through the pipeline's `run_batch`. The sweep's manifest follows every batch.

`train.py -m` makes the session and hands a grid's runs to its `launch` itself; for a search it activates the session
(`activate`) and Hydra's Optuna sweeper calls our launcher plugin (hydra_plugins/trainer_platform_launcher), which
hands each batch of trials to `active_session().launch(...)`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_platform.errors import SpecError
from trainer_platform.runs import utc_now
from trainer_platform.sweep.manifest import create_sweep_dir, write_manifest
from trainer_platform.sweep.naming import default_sweep_name, run_name
from trainer_platform.sweep.overrides import key_of


class SweepAborted(BaseException):
    """Raised through Hydra (which turns any Exception into a traceback and exit 1) when a batch failed: train.py
    catches it and reports the session's error with our message and exit code."""


@dataclass
class SweepSession:
    """One sweep: what varies (axes), its name and kind, and, once its first batch is prepared, its directory."""

    # swept key -> its values as written (or an Optuna search space), in run-name order
    axes: dict[str, list[str]]
    # the sweep's name (the sweep dir's); None = from the sweep file or `sweep`, with a UTC stamp
    name: str | None = None
    # how runs are chosen: grid (every combination, zipped axes, seeds) or optuna
    sweeper: str = "grid"
    # the named sweep file (sweeps/NAME.yaml) it came from
    sweep_file: str | None = None
    # extra manifest entries (the objective of a search, the sweep file's content)
    details: dict[str, Any] = field(default_factory=dict)
    # the runs of a grid, expanded and validated by train.py (None: the sweeper chooses them, e.g. Optuna)
    planned: list[list[str]] | None = None
    # a search's objective: each finished run is scored by it (the value Optuna is told; None when none)
    objective: Any = None
    # the next trial's number
    trials: int = 0
    sweep_dir: Path | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    # what stopped the sweep (raised again by train.py once Hydra has returned)
    error: BaseException | None = None
    # composes the runs' configs for the whole sweep (trainer_platform.compose.run_composer; made when first needed)
    composer: Any = None
    # the configs train.py composed to check the planned runs, by their overrides: each run is composed once
    composed: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)

    def values_of(self, overrides: list[str]) -> dict[str, str]:
        """A run's swept values, in axis order."""
        given = {key_of(o): o.split("=", 1)[1] for o in overrides if "=" in o}
        return {key: given[key] for key in self.axes if key in given}

    def run_name(self, overrides: list[str], index: int) -> str:
        """A run's dir name: its swept values; a search's trials lead with their number (`trial=3,...`), as a
        search may try the same values twice."""
        values = self.values_of(overrides)
        if self.objective is None:
            return run_name(values)
        return run_name({"trial": str(index), **{k: _short(v) for k, v in values.items()}})

    def launch(self, jobs: list[list[str]]) -> list[Any]:
        """Compose, validate, prepare and submit one batch of runs; their exit codes (0 when detached), or for a
        search each run's objective value (None when it logged none: failed, or pruned by a diagnostics rule; the
        Optuna sweeper records a trial without a number as failed and goes on, where NaN would stop it)."""
        from trainer_platform.flags import parse_flag
        from trainer_platform.pipeline import RunRequest, run_batch

        if not jobs:
            return []
        first_index = len(self.runs)
        names = [self.run_name(overrides, self.trials + i) for i, overrides in enumerate(jobs)]
        self.trials += len(jobs)
        configs = [self._compose(overrides, name) for overrides, name in zip(jobs, names, strict=True)]
        self.name = self.name or default_sweep_name(self.sweep_file)
        root = Path(str(configs[0].get("run_root") or "runs")).expanduser()
        dry = all(parse_flag("dry_run", cfg.get("dry_run", False)) for cfg in configs)
        fresh = self.sweep_dir is None and not dry
        if fresh:
            self.sweep_dir = create_sweep_dir(root, self.name)
            self.name = self.sweep_dir.name
        created: list[Any] = []

        def record(prepared: list[Any]) -> None:
            for run in prepared:
                values = self.values_of(run.request.argv)
                self.runs.append({"name": run.run.name, "values": values, "overrides": run.request.argv})
            self._write_manifest(prepared[0].request.spec)
            created.extend(prepared)

        try:
            specs = [self._spec(cfg, overrides) for cfg, overrides in zip(configs, jobs, strict=True)]
            # a dry run creates nothing: it says where the runs would go
            where = root / self.name if dry or self.sweep_dir is None else self.sweep_dir
            requests = [
                RunRequest(spec, overrides, root=where, name=name)
                for spec, overrides, name in zip(specs, jobs, names, strict=True)
            ]
            codes = run_batch(requests, on_created=None if dry else record)
        except BaseException:
            if fresh and not created and self.sweep_dir is not None:
                shutil.rmtree(self.sweep_dir, ignore_errors=True)  # nothing of this sweep was created
                self.sweep_dir = None
            raise
        if self.objective is None or dry:
            self.codes.extend(codes)
            return codes
        scores = self._scores(created, first_index)
        # a trial a diagnostics rule stopped was pruned on purpose: it does not fail the search
        self.codes.extend(0 if "pruned" in self.runs[first_index + i] else c for i, c in enumerate(codes))
        return scores

    def _scores(self, prepared: list[Any], first_index: int) -> list[float | None]:
        """Each finished run's objective value (None when none), also written into the manifest."""
        from trainer_platform.sweep.objective import run_value

        scores = []
        for i, run in enumerate(prepared):
            scored = run_value(run.run, self.objective)
            status = run.run.read_status()
            entry = self.runs[first_index + i]
            entry.update(state=status.state, value=None if scored is None else scored[0])
            reason = status.extra.get("stop_reason")
            if isinstance(reason, dict):
                entry["pruned"] = f"{reason.get('rule')} at step {reason.get('step')}"
            scores.append(None if scored is None else scored[0])
        if prepared:
            self._write_manifest(prepared[0].request.spec)
        return scores

    def _compose(self, overrides: list[str], name: str) -> dict[str, Any]:
        """The run's config: the one composed when the sweep was checked, else composed now."""
        from trainer_platform.compose import compose_config, run_composer

        cfg = self.composed.pop(tuple(overrides), None)
        if cfg is None:
            if self.composer is None:
                self.composer = run_composer()
            try:
                cfg = compose_config(overrides, composer=self.composer)
            except SpecError as exc:
                raise self._in_run(exc, overrides) from None
        cfg["name"] = name
        return cfg

    def _spec(self, cfg: dict[str, Any], overrides: list[str]) -> Any:
        """The run's validated spec, named by its swept values, in the sweep's W&B group."""
        from trainer_platform.spec import RunSpec

        wandb = (cfg.get("logger") or {}).get("wandb")
        if isinstance(wandb, dict) and not wandb.get("group"):
            wandb["group"] = self.name
        try:
            return RunSpec.from_config(cfg)
        except SpecError as exc:
            raise self._in_run(exc, overrides) from None

    @staticmethod
    def _in_run(exc: SpecError, overrides: list[str]) -> SpecError:
        hint = f"{exc.hint + '; ' if exc.hint else ''}in the sweep run: {' '.join(overrides)}"
        return SpecError(exc.key, exc.problem, hint)

    def _write_manifest(self, spec: Any) -> None:
        assert self.sweep_dir is not None
        manifest = {
            "name": self.name,
            "created": self.details.get("created") or utc_now(),
            "sweeper": self.sweeper,
            "sweep_file": self.sweep_file,
            "launcher": spec.launcher.model_dump(),
            "axes": self.axes,
            **{k: v for k, v in self.details.items() if k != "created"},
            "runs": self.runs,
        }
        self.details.setdefault("created", manifest["created"])
        write_manifest(self.sweep_dir, manifest)


def _short(value: str) -> str:
    """A sampled number in 4 significant digits (1.694e-05), for names; anything else as it is."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value and "e" not in value.lower() else f"{number:.4g}"


_ACTIVE: list[SweepSession] = []


def activate(session: SweepSession) -> None:
    """Make `session` the one our launcher plugin hands its batches to (train.py does this before Hydra runs)."""
    _ACTIVE[:] = [session]


def active_session(task_overrides: list[str] | None = None) -> SweepSession:
    """The active sweep; without one (Hydra driven by another program), a new one from the command line's
    overrides as Hydra recorded them."""
    if not _ACTIVE:
        from trainer_platform.sweep.overrides import axes

        overrides = list(task_overrides or [])
        _ACTIVE.append(SweepSession(axes=axes(overrides)))
    return _ACTIVE[0]


def deactivate() -> SweepSession | None:
    """End the active sweep; returns it (with its codes and error)."""
    return _ACTIVE.pop() if _ACTIVE else None
