"""The sweep tests' launcher: it records each batch handed to submit and leaves the jobs queued. It stands in for
a cluster scheduler (the local launcher really runs a sweep in tests/e2e/test_sweep_e2e.py; Slurm's array in the
Slurm tests)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from launchers.base import Handle
from launchers.local import LocalLauncher
from launchers.options import LocalOptions
from trainer_platform import pipeline
from trainer_platform.errors import SpecError
from trainer_platform.job import VerlJob
from trainer_platform.runs import QUEUED, STOPPED, SUCCEEDED, RunDir

# the platform's own launcher lookup, for tests that must not get a double
REAL_LOOKUP = pipeline._launcher_class


class _Options(LocalOptions):
    """The local launcher's options (conf/launcher/local.yaml), detached: submit returns at once."""

    @classmethod
    def model_validate(cls, obj: object, **kwargs: object) -> _Options:  # type: ignore[override]
        return cls.model_construct(**{**dict(obj), "wait": False})  # type: ignore[call-overload]


class Batches(LocalLauncher):
    """Records each batch handed to submit; the jobs stay queued (a scheduler that never starts them)."""

    batches: list[list[str]] = []
    fail_render_for: str | None = None
    Options = _Options  # type: ignore[assignment]

    def render(self, job: VerlJob, run_dir: RunDir) -> dict[str, str]:
        if self.fail_render_for and run_dir.name == self.fail_render_for:
            raise SpecError("launcher", "cannot render this run", "planted failure")
        return {}

    def submit(self, jobs: Sequence[VerlJob], run_dirs: Sequence[RunDir]) -> list[Handle]:  # type: ignore[override]
        type(self).batches.append([run.name for run in run_dirs])
        assert len(jobs) == len(run_dirs)
        handles = []
        for run in run_dirs:
            handle = Handle(launcher="local", run_dir=str(run.path), data={"job_id": f"{len(handles)}"})
            run.save_handle(handle.to_dict())
            run.write_status(QUEUED, launcher="local")
            handles.append(handle)
        return handles


@pytest.fixture(autouse=True, name="batches")
def batches_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Batches]]:
    """In an empty folder, with every launcher lookup answered by Batches (unknown names still refused)."""
    monkeypatch.chdir(tmp_path)
    real = pipeline._launcher_class

    def lookup(name: str) -> type[Batches]:
        real(name)  # unknown names are still refused
        return Batches

    monkeypatch.setattr(pipeline, "_launcher_class", lookup)
    Batches.batches = []
    Batches.fail_render_for = None
    handlers, level = logging.root.handlers[:], logging.root.level  # Hydra's main configures logging
    yield Batches
    logging.root.handlers[:], logging.root.level = handlers, level


class Scored(Batches):
    """A waiting launcher whose 'training' is a formula: val/loss = (log10(lr) + 3)^2 (best at lr 1e-3), logged at
    step 5; a trial with lr above 1e-2 is stopped by the grad-norm rule, as the diagnostics monitor would. It stands
    in for training in the fast search tests (tests/e2e/test_sweep_e2e.py searches with real training)."""

    Options = LocalOptions  # waits, as a search needs

    def submit(self, jobs: Sequence[VerlJob], run_dirs: Sequence[RunDir]) -> list[Handle]:  # type: ignore[override]
        import json
        import math

        handles = super().submit(jobs, run_dirs)
        for job, run in zip(jobs, run_dirs, strict=True):
            lr = float(next(a for a in job.argv if a.startswith("optim.lr=")).split("=", 1)[1])
            if lr > 1e-2:
                reason = {"rule": "grad_norm_explosion", "step": 2, "message": "planted"}
                run.write_status(STOPPED, exit_code=143, stop_reason=reason)
                continue
            record = {"step": 5, "data": {"val/loss": (math.log10(lr) + 3) ** 2}}
            (run.path / "metrics.jsonl").write_text(json.dumps(record) + "\n")
            run.write_status(SUCCEEDED, exit_code=0)
        return handles

    def wait(self, handle: Handle) -> int:
        code = handle.rundir.read_status().exit_code
        return 1 if code is None else code
