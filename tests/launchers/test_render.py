"""The render step: golden files for the rendered wrapper, and the relocatable job it is built from."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from launchers.render import render
from trainer_platform.job import VerlJob, shell_word

GOLDEN = Path(__file__).parent / "golden"


def _job() -> VerlJob:
    return VerlJob(
        entry_point="verl.trainer.sft_trainer",
        argv=(
            "python",
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--nnodes=2",
            "--rdzv_backend=c10d",
            "--rdzv_endpoint=${MASTER_ADDR}:${MASTER_PORT}",
            "-m",
            "verl.trainer.sft_trainer",
            "trainer.default_local_dir='${TP_RUN_DIR}/checkpoints'",
            "model.path=${TP_RUN_DIR}/../../inputs/m",
            "trainer.experiment_name=it's $(not) run",
        ),
        env={"PYTHONPATH": "${TP_VERL_EXT}", "VERL_FILE_LOGGER_PATH": "${TP_RUN_DIR}/metrics.jsonl"},
        nnodes=2,
        nprocs_per_node=2,
    )


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TP_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs; rerun with TP_UPDATE_GOLDEN=1 if the change is intended"


def test_ssh_wrapper_golden() -> None:
    files = render(
        _job(),
        launcher="ssh",
        run_name="sft-run",
        verl_ext="../../code/verl-0123456789ab",
        setup=["source ~/venvs/verl/bin/activate", "  ", "module load cuda/12.4"],
        grace_s=5.0,
        python="python3",
    )
    assert list(files) == ["tp_job.sh"]
    _check_golden("ssh_tp_job.sh", files["tp_job.sh"])


def test_multinode_rendezvous_expands_in_the_shell(tmp_path: Path) -> None:
    """Before: shlex.join single-quoted '--rdzv_endpoint=${MASTER_ADDR}:${MASTER_PORT}', so it never expanded."""
    line = _job().shell_line()
    script = tmp_path / "s.sh"
    script.write_text(f"set -- {line}\nprintf '%s\\n' \"$@\"\n")
    env = {
        "PATH": os.environ["PATH"],
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "29500",
        "TP_RUN_DIR": "/r d",
        "TP_VERL_EXT": "/v",
    }
    args = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, check=True).stdout
    lines = args.splitlines()
    assert "--rdzv_endpoint=10.0.0.1:29500" in lines
    assert "trainer.default_local_dir='/r d/checkpoints'" in lines
    assert "trainer.experiment_name=it's $(not) run" in lines  # everything else stays literal
    assert "PYTHONPATH=/v" in lines


def test_resolve_replaces_placeholders_and_moves_shipped_files() -> None:
    job = VerlJob(
        entry_point="e",
        argv=("python", "data.train_files=[/data/t.parquet]", "a=${TP_RUN_DIR}/x"),
        env={"P": "${TP_VERL_EXT}"},
        files=("/data/t.parquet",),
    )
    out = job.resolve({"TP_RUN_DIR": "/run", "TP_VERL_EXT": "/ext"}, {"/data/t.parquet": "/remote/t.parquet"})
    assert out.argv == ("python", "data.train_files=[/remote/t.parquet]", "a=/run/x")
    assert out.env == {"P": "/ext"} and out.files == ("/remote/t.parquet",)
    assert VerlJob.from_dict(job.to_dict()) == job


@pytest.mark.parametrize("arg", ["plain", "with space", "it's", "${NOT_OURS}", "a${TP_RUN_DIR}b${TP_RUN_DIR}", ""])
def test_shell_word_round_trips_without_placeholders(arg: str) -> None:
    expected = arg.replace("${TP_RUN_DIR}", "/R")
    assert shlex.split(shell_word(arg).replace('"${TP_RUN_DIR}"', "/R")) == [expected]


def test_the_job_does_not_join_the_submitters_wandb_service(tmp_path: Path) -> None:
    """Before: WANDB_SERVICE reached the job from the submitting process, so a requeued attempt joined the W&B service
    where its killed attempt's run was still open and failed ("run ID ... is in use")."""
    files = render(
        _job(), launcher="local", run_name="r", verl_ext="/v", command='echo "service=${WANDB_SERVICE-none}"'
    )
    (tmp_path / "tp_job.sh").write_text(files["tp_job.sh"])
    env = {"PATH": os.environ["PATH"], "WANDB_SERVICE": "2-4242-tcp-localhost-45678"}
    subprocess.run(["bash", str(tmp_path / "tp_job.sh")], env=env, stdin=subprocess.DEVNULL, check=True, timeout=60)
    assert "service=none" in (tmp_path / "train.log").read_text()


def test_ray_entry_golden() -> None:
    """The Ray job's entrypoint without a shared folder: the run's files come back through its output
    (tp_logsync.py), the diagnostics monitor runs beside the job."""
    from dataclasses import replace

    from launchers.render import render_ray_entry
    from trainer_platform.diagnostics import config_from_dict

    job = replace(_job(), diagnostics=config_from_dict({}).to_dict())
    files = render_ray_entry(job, run_name="sft-run", run_dir=None, sync_back=True, python="python3")
    shipped = ("tp_ray_entry.sh", "tp_logsync.py", "tp_monitor.py", "tp_diag_rules.py", "tp_diag_metrics.py")
    assert set(files) == {*shipped, "tp_diagnostics.json"}
    _check_golden("ray_tp_ray_entry.sh", files["tp_ray_entry.sh"])


def test_the_wrapper_removes_the_jobs_scratch_dirs_when_it_ends(tmp_path: Path) -> None:
    """Before: every RL run left its private Ray temp dir (/tmp/tp-ray-*, MBs of session files) behind."""
    from dataclasses import replace

    scratch = tmp_path / "tp-ray-0123456789"
    job = replace(_job(), scratch_dirs=(str(scratch),))
    files = render(job, launcher="ssh", run_name="r", verl_ext="/v", command=f"mkdir -p {scratch}/session_x")
    (tmp_path / "tp_job.sh").write_text(files["tp_job.sh"])
    subprocess.run(["bash", str(tmp_path / "tp_job.sh")], stdin=subprocess.DEVNULL, check=True, timeout=60)
    assert '"state": "succeeded"' in (tmp_path / "job_state.json").read_text()
    assert not scratch.exists()
