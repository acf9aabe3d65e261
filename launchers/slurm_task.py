"""What runs inside a Slurm job: submitit's runner unpickles a `SlurmTask` and calls it. Light on purpose (it is
imported on the compute node before the job starts): the standard library and the run dir only.

The task runs the run dir's tp_job.sh (which records the job's own start, end and exit code in job_state.json) and
exits with the job's exit code, so Slurm's own record says FAILED with that code when the job failed (a task never
shows as COMPLETED after an error). On USR2 (the time limit is near, or the job is being preempted) submitit calls
`checkpoint()` and requeues the job; the requeued attempt runs the same task, and verl resumes from the run's last
checkpoint (trainer.resume_mode=auto) into the same W&B run (the run dir keeps the W&B id).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launchers.render import JOB_STATE, WRAPPER


@dataclass(frozen=True)
class SlurmTask:
    """Run one run dir's job (its tp_job.sh) as this Slurm job or array task."""

    # absolute path of the run directory, on the filesystem the compute nodes share
    run_dir: str

    def __call__(self) -> int:
        from trainer_platform.runs import RunDir

        run = RunDir.open(self.run_dir)
        attempt = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
        if attempt > 0:
            # a requeued attempt: keep what the interrupted one logged (verl's file logger starts metrics.jsonl
            # afresh), and mark in the log where this attempt starts
            run.archive_metrics()
            with run.open_log() as log:
                job_id = os.environ.get("SLURM_JOB_ID", "?")
                log.write(f"trainer_platform: Slurm job {job_id} requeued, attempt {attempt + 1}\n".encode())
        # the previous attempt's record must not stand for this one
        Path(self.run_dir, JOB_STATE).unlink(missing_ok=True)
        # a session of its own, as every launcher starts it: the wrapper stops its job by session (cancel, a
        # diagnostics stop rule), which finds nothing when the wrapper is not the session's leader
        proc = subprocess.Popen(
            ["bash", str(Path(self.run_dir) / WRAPPER)], stdin=subprocess.PIPE, start_new_session=True
        )
        # the wrapper reads secrets from stdin: none here, Slurm passed the submitting environment to the job
        proc.communicate(b"--\n")
        code = proc.returncode
        if code != 0:
            # SystemExit passes through submitit's runner (it catches Exception), so Slurm sees this exit code
            sys.exit(code if 0 < code < 256 else 1)
        return 0

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on USR2: requeue this same task. verl's checkpoints are already on disk (saved every
        train.save_every steps); the requeued attempt resumes from the newest."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)
