"""The tiny SFT run end to end over SSH, through train.py: shipped model, data and code, the run followed to its end
(launcher.wait=true), metrics and the checkpoint pointer synced back, `trainer-platform status` from a new process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import sshd_service
from conftest import REPO_ROOT, run_dir_of, run_train


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tiny_sft_over_ssh(sshd: sshd_service.Sshd, ssh_client_home: Path, tmp_path: Path) -> None:
    # root logs in by key and uses this session's interpreter (the test user cannot read root's venv)
    res = run_train(
        "algorithm=sft",
        "data=tiny_sft",
        "train.steps=2",
        "launcher=ssh",
        f"launcher.host={sshd.host}",
        f"launcher.port={sshd.port}",
        "launcher.user=root",
        f"launcher.key_file={sshd.key_file}",
        f"launcher.remote_dir={tmp_path / 'remote'}",
        f"launcher.python={sys.executable}",
        "launcher.wait=true",
        f"run_root={tmp_path / 'runs'}",
        cwd=tmp_path,
    )
    run = run_dir_of(res)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "succeeded" and status["exit_code"] == 0, res.stdout[-3000:]
    remote = Path(status["remote_run"])
    assert remote.parent == tmp_path / "remote" / "runs"
    assert status["remote_checkpoints"].endswith(f"{remote}/checkpoints")
    assert (remote / "checkpoints" / "global_step_2").is_dir()
    assert (run / "checkpoints" / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 2
    assert (run / "train.log").read_text() == (remote / "train.log").read_text()
    assert (run / "tp_job.sh").read_text() == (remote / "tp_job.sh").read_text()  # the rendered file that ran
    out = subprocess.run(
        [sys.executable, "-m", "trainer_platform.cli", "status", str(run)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "succeeded" in out and "step 2" in out


@pytest.mark.parametrize("auth", ["wrong-password", "no-key"])
def test_auth_failure_leaves_no_run_dir(
    sshd: sshd_service.Sshd, ssh_client_home: Path, tmp_path: Path, auth: str
) -> None:
    """Refused at login (nothing launched): exit 2 with the reason, and no pending run dir is left behind."""
    from launchers import passwords

    if auth == "wrong-password":
        passwords.add_host(sshd.host, sshd.port, sshd.user, "wrong-password")
    res = run_train(
        "algorithm=sft",
        "data=tiny_sft",
        "launcher=ssh",
        f"launcher.host={sshd.host}",
        f"launcher.port={sshd.port}",
        f"launcher.user={sshd.user}",
        f"launcher.remote_dir={tmp_path / 'remote'}",
        f"run_root={tmp_path / 'runs'}",
        cwd=tmp_path,
        check=False,
    )
    assert res.returncode == 2 and "authentication failed" in res.stderr, res.stdout[-2000:] + res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    left = [p.name for p in (tmp_path / "runs").iterdir()] if (tmp_path / "runs").exists() else []
    assert not [name for name in left if not name.startswith(".")], left
