"""The ray launcher against a real `ray start --head` on loopback: the shared contract (submit, status from a new
process, logs, follow, cancel, failure exit code, resume) and the rendered entrypoint."""

from __future__ import annotations

import pytest
import ray_service

from launcher_contract import LauncherContract, MakeLauncher
from launchers.base import Handle
from launchers.options import RayOptions
from launchers.ray import RayLauncher


class TestRayLauncher(LauncherContract):
    streams_to_console = False
    passes_submitter_env = False

    @pytest.fixture
    def make_launcher(self, ray_head: ray_service.RayHead) -> MakeLauncher:
        opts = RayOptions(name="ray", address=ray_head.address, env={"TP_CONTRACT_VAR_FROM_OPTIONS": "1"})
        return lambda console: RayLauncher(opts)

    def job_cwd(self, handle: Handle) -> str | None:
        return None  # Ray's own working directory for the job
