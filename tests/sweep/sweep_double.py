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
from trainer_platform.runs import QUEUED, RunDir


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
