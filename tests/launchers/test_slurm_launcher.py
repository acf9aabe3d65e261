"""The slurm launcher against a real Slurm on 127.0.0.1 (tests/slurm_service.py): the shared contract (submit,
status from a new process, logs, follow, cancel, failure exit code, resume)."""

from __future__ import annotations

import pytest

import slurm_service
from launcher_contract import LauncherContract, MakeLauncher
from launchers.options import SlurmOptions
from launchers.slurm import SlurmLauncher


class TestSlurmLauncher(LauncherContract):
    streams_to_console = False

    @pytest.fixture
    def make_launcher(self, slurm_cluster: slurm_service.Slurm) -> MakeLauncher:
        opts = SlurmOptions(name="slurm", time=10, setup=("export TP_SETUP_RAN=1",))
        return lambda console: SlurmLauncher(opts)
