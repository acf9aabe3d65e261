"""A sweep across its batches: each batch of runs (all of a grid, or the trials Optuna asks for next) is composed
and validated, named by its swept values, prepared into run dirs under the sweep dir and handed to the launcher as
one batch through the pipeline's `run_batch`. The sweep's manifest follows every batch.

`train.py -m` makes the session (`activate`); Hydra's sweeper then calls our launcher plugin
(hydra_plugins/trainer_platform_launcher), which hands each batch to `active_session().launch(...)`.
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
    sweep_dir: Path | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    # what stopped the sweep (raised again by train.py once Hydra has returned)
    error: BaseException | None = None

    def values_of(self, overrides: list[str]) -> dict[str, str]:
        """A run's swept values, in axis order."""
        given = {key_of(o): o.split("=", 1)[1] for o in overrides if "=" in o}
        return {key: given[key] for key in self.axes if key in given}

    def launch(self, jobs: list[list[str]]) -> list[int]:
        """Compose, validate, prepare and submit one batch of runs; their exit codes (0 when detached)."""
        from trainer_platform.flags import parse_flag
        from trainer_platform.pipeline import RunRequest, run_batch

        if not jobs:
            return []
        configs = [self._compose(overrides) for overrides in jobs]
        self.name = self.name or default_sweep_name(self.sweep_file)
        root = Path(str(configs[0].get("run_root") or "runs")).expanduser()
        dry = all(parse_flag("dry_run", cfg.get("dry_run", False)) for cfg in configs)
        fresh = self.sweep_dir is None and not dry
        if fresh:
            self.sweep_dir = create_sweep_dir(root, self.name)
            self.name = self.sweep_dir.name
        created: list[bool] = []

        def record(prepared: list[Any]) -> None:
            for run in prepared:
                values = self.values_of(run.request.argv)
                self.runs.append({"name": run.run.name, "values": values, "overrides": run.request.argv})
            self._write_manifest(prepared[0].request.spec)
            created.append(True)

        try:
            specs = [self._spec(cfg, overrides) for cfg, overrides in zip(configs, jobs, strict=True)]
            # a dry run creates nothing: it says where the runs would go
            where = root / self.name if dry or self.sweep_dir is None else self.sweep_dir
            requests = [
                RunRequest(spec, overrides, root=where, name=run_name(self.values_of(overrides)))
                for spec, overrides in zip(specs, jobs, strict=True)
            ]
            codes = run_batch(requests, on_created=None if dry else record)
        except BaseException:
            if fresh and not created and self.sweep_dir is not None:
                shutil.rmtree(self.sweep_dir, ignore_errors=True)  # nothing of this sweep was created
                self.sweep_dir = None
            raise
        self.codes.extend(codes)
        return codes

    def _compose(self, overrides: list[str]) -> dict[str, Any]:
        from trainer_platform.compose import compose_config

        try:
            return compose_config(overrides)
        except SpecError as exc:
            raise self._in_run(exc, overrides) from None

    def _spec(self, cfg: dict[str, Any], overrides: list[str]) -> Any:
        """The run's validated spec, named by its swept values, in the sweep's W&B group."""
        from trainer_platform.spec import RunSpec

        cfg["name"] = run_name(self.values_of(overrides))
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
