"""The multi-node Ray bring-up script (launchers/ray_cluster.py): golden file, shell syntax, and the job side
(the job side, verl attached to the cluster's address, is in tests/test_verl_job.py). The script itself runs
for real on two Slurm nodes in tests/e2e/test_multinode_slurm.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from launchers.ray_cluster import (
    RAY_CLUSTER,
    RayClusterSettings,
    RayPorts,
    render_ray_cluster,
    render_with_ray_cluster,
    resource_flags,
)
from launchers.render import WRAPPER
from trainer_platform.job import VerlJob

GOLDEN = Path(__file__).parent / "golden"


def _grpo_job(nnodes: int = 2) -> VerlJob:
    return VerlJob(
        entry_point="verl.trainer.main_ppo",
        argv=(
            "python",
            "-m",
            "verl.trainer.main_ppo",
            "+ray_kwargs.ray_init.address='${TP_RAY_ADDRESS}'",
            f"trainer.nnodes={nnodes}",
            "trainer.n_gpus_per_node=1",
            "trainer.default_local_dir='${TP_RUN_DIR}/checkpoints'",
            "trainer.experiment_name=it's $(not) run",
        ),
        env={"PYTHONPATH": "${TP_VERL_EXT}", "VERL_PLATFORM": "tp_cpu", "WANDB_MODE": "disabled"},
        nnodes=nnodes,
        nprocs_per_node=1,
        uses_ray=True,
        ray_node_resources={"CPU": 16, "GPU": 1},
    )


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TP_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs; rerun with TP_UPDATE_GOLDEN=1 if the change is intended"


def test_ray_cluster_script_golden() -> None:
    files = render_with_ray_cluster(
        _grpo_job(),
        run_name="grpo-2n",
        verl_ext="../../code/verl-0123456789ab",
        setup=("source /shared/venv/bin/activate",),
        python="python3",
        settings=RayClusterSettings(ports=RayPorts(25000), register_timeout_s=120, stop_grace_s=5),
    )
    assert sorted(files) == [WRAPPER, RAY_CLUSTER]
    # the job-side wrapper records the job's end and runs the bring-up script, which runs the job itself
    assert 'exec bash "$here"/tp_ray_cluster.sh\n' in files[WRAPPER]
    assert "source /shared/venv/bin/activate" in files[WRAPPER]
    _check_golden("slurm_tp_ray_cluster.sh", files[RAY_CLUSTER])


def test_rendered_scripts_are_valid_bash(tmp_path: Path) -> None:
    for nnodes in (2, 3):
        for name, text in render_with_ray_cluster(_grpo_job(nnodes), run_name="r", verl_ext="verl").items():
            path = tmp_path / f"{nnodes}-{name}"
            path.write_text(text)
            subprocess.run(["bash", "-n", str(path)], check=True)


def test_nodes_are_one_element_each_and_the_cluster_is_waited_for() -> None:
    """verl's example quoted the node list into one element (verl#548) and never waited for the workers."""
    text = render_ray_cluster(_grpo_job(3), run_name="r")[RAY_CLUSTER]
    assert 'mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")' in text
    assert "--nodes=2 --ntasks=2 --ntasks-per-node=1" in text  # one batched srun for both workers
    assert [line.split()[:2] for line in text.splitlines() if line.startswith("srun")] == [["srun", "--overlap"]] * 2
    assert '"$python" - "$logs" 3 3 300 "${steps[@]}"' in text  # 3 nodes, 3 GPUs, 300 s
    assert "ray stop" not in text.replace("# ", "")  # `ray stop` kills every Ray process of the host


def test_a_job_without_a_cluster_is_refused() -> None:
    with pytest.raises(ValueError, match="without a Ray cluster"):
        render_ray_cluster(_grpo_job(1), run_name="r")


def test_resource_flags_and_ports() -> None:
    assert resource_flags({"CPU": 16, "GPU": 2}) == ["--num-cpus=16", "--num-gpus=2"]
    assert resource_flags({}) == []
    assert resource_flags({"accel": 1}) == ["--resources='{\"accel\":1}'"]
    ports = RayPorts(30000)
    assert ports.worker_max < 32768  # below Linux's ephemeral range
    with pytest.raises(ValueError, match="port base"):
        RayPorts(80)
