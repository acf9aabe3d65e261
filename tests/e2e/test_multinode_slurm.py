"""Multi-node for real: a two-node Slurm on this machine (each slurmd in a network namespace with its own address,
tests/netns_service.py), `train.py launcher=slurm compute.nodes=2`, our tp_ray_cluster.sh bringing Ray up across
both nodes, and verl's GRPO with trainer.nnodes=2 (one logical GPU per node on the CPU path) training the tiny
model for one step on the smallest batch, checkpoint written, status succeeded, the cluster torn down. Also: verl's
SFT as one torchrun per node (rendezvous on the first node), and a node whose Ray never joins failing the job with
its name.

The machine has 2 cores: the step itself is small, most of the time is Ray and verl's start-up on two nodes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import netns_service
import pytest

import slurm_service
from conftest import run_dir_of, run_train

pytestmark = pytest.mark.slow


def _ray_temp_dirs() -> set[Path]:
    return set(Path("/tmp").glob("tp-ray-*-tpn*"))


def _new_ray_temp_dirs(before: set[Path], job_id: str) -> list[Path]:
    """The Ray temp dirs of job `job_id` left on the nodes that were not there `before` it (test clusters number
    their jobs from 1 each session, and earlier versions left theirs behind)."""
    return sorted(p for p in _ray_temp_dirs() - before if p.name.startswith(f"tp-ray-{job_id}-"))


SMALLEST_GRPO = [
    "compute.nodes=2",
    "train.steps=1",
    "algorithm.batch_size=2",
    "algorithm.mini_batch_size=2",
    "algorithm.rollout_n=2",
]


def test_grpo_trains_on_two_slurm_nodes_through_our_ray_cluster(
    slurm_two_nodes: slurm_service.Slurm, tmp_path: Path
) -> None:
    from trainer_platform.runs import RunDir

    ray_tmp_before = _ray_temp_dirs()
    res = run_train(
        # launcher.time=null: the partition's limit (UNLIMITED here: --time=0), never submitit's 5 minutes (on 2
        # loaded cores the job was requeued at 3.5)
        "launcher=slurm", "launcher.wait=true", "launcher.ray_wait_s=240", *SMALLEST_GRPO,
        "name=grpo2n",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    run = run_dir_of(res)
    rd = RunDir.open(run)
    log = (run / "train.log").read_text(errors="replace")
    assert rd.read_status().state == "succeeded", log[-4000:]
    assert json.loads((run / "job_state.json").read_text())["exit_code"] == 0

    # the cluster spanned both nodes, each at its own address, and verl's workers ran on both
    (logs,) = (run / "ray_cluster").iterdir()
    addresses = {p.name: p.read_text().strip() for p in (logs / "nodes").iterdir()}
    assert sorted(addresses) == ["tpn0", "tpn1"] and len(set(addresses.values())) == 2, addresses
    assert (logs / "head_address").read_text().strip() == f"{addresses['tpn0']}:24000"
    assert "2 nodes, 2 GPUs registered" in log
    # Ray tags a remote node's actor output with its address, the driver node's without one
    assert re.search(rf"\(WorkerDict pid=\d+, ip={re.escape(addresses['tpn1'])}\)", log)
    assert re.search(r"\(WorkerDict pid=\d+\)", log), "no verl worker ran on the head node"
    assert "+ray_kwargs.ray_init.address=" in (run / "launch.sh").read_text()
    assert "#SBATCH --time=0" in (run / "tp_sbatch.sh").read_text().splitlines()

    # one step trained, its checkpoint written
    assert [r["step"] for r in rd.read_metrics() if "actor/pg_loss" in r["data"]] == [1]
    assert rd.last_checkpoint_step() == 1
    actor = run / "checkpoints" / "global_step_1" / "actor"
    assert sorted(p.name for p in actor.glob("model_world_size_*")) == [
        "model_world_size_2_rank_0.pt",
        "model_world_size_2_rank_1.pt",
    ]  # two ranks, one per node

    # torn down through ENDED: no Ray process of this job is left on either node
    assert (logs / "ENDED").exists()
    job_id = logs.name.split(".")[0]
    left = subprocess.run(["pgrep", "-f", f"tp-ray-{job_id}-"], capture_output=True, text=True).stdout.split()
    assert not left, f"Ray processes left behind: {left}"
    # and each node's Ray temp dir is gone (the namespaces share this /tmp)
    assert not _new_ray_temp_dirs(ray_tmp_before, job_id)


def test_sft_trains_on_two_slurm_nodes_through_torchrun_rendezvous(
    slurm_two_nodes: slurm_service.Slurm, tmp_path: Path
) -> None:
    """verl's SFT trainer as one torchrun per node (tp_torchrun_nodes.sh), the c10d rendezvous on the first node."""
    from trainer_platform.runs import RunDir

    res = run_train(
        "algorithm=sft", "data=tiny_sft", "compute.nodes=2", "train.steps=1", "launcher=slurm", "launcher.wait=true",
        "launcher.time=30", "name=sft2n", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    run = run_dir_of(res)
    rd = RunDir.open(run)
    log = (run / "train.log").read_text(errors="replace")
    assert rd.read_status().state == "succeeded", log[-4000:]
    nodes = [n.addr for n in slurm_two_nodes.nodes]
    assert f"rendezvous at {nodes[0]}:29500" in log
    # both nodes joined the rendezvous, the first one hosting it
    assert "(is_host=1)" in log and "(is_host=0)" in log
    losses = [r["data"]["train/loss"] for r in rd.read_metrics() if "train/loss" in r["data"]]
    assert len(losses) == 1 and 0 < losses[0] < 100, losses
    assert rd.last_checkpoint_step() == 1 and (run / "checkpoints" / "global_step_1").is_dir()


def test_a_node_that_never_joins_fails_the_job_naming_it(slurm_two_nodes: slurm_service.Slurm, tmp_path: Path) -> None:
    """The second node's Ray cannot start (its node-manager port is taken there): the job fails once
    launcher.ray_wait_s has passed, naming the node that did not register, and verl never starts."""
    from trainer_platform.runs import RunDir

    second = slurm_two_nodes.nodes[1]
    assert second.netns is not None
    port = 24000 + 10  # the node manager's port (launchers/ray_cluster.py: RayPorts)
    # SO_REUSEADDR: the earlier tests' Ray may have left connections on this port in TIME_WAIT, which refuse a plain
    # bind (but not Ray's, which sets it too: the port was then free for Ray and the job succeeded). Listening, it
    # still refuses Ray's raylet. The holder says when it holds the port; the job starts only then.
    holder = subprocess.Popen(
        [*netns_service.enter(second.netns), sys.executable, "-c",
         "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
         f"s.bind(('0.0.0.0', {port})); s.listen(); print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    if holder.stdout.readline().strip() != "held":
        holder.kill()
        pytest.fail(f"could not hold port {port} on {second.name} (exit code {holder.wait()}): the test cannot run")
    ray_tmp_before = _ray_temp_dirs()
    try:
        res = run_train(
            "launcher=slurm", "launcher.wait=true", "launcher.time=10", "launcher.ray_wait_s=30", *SMALLEST_GRPO,
            "name=nojoin", cwd=tmp_path, timeout=300, check=False,
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode != 0
    run = run_dir_of(res)
    log = (run / "train.log").read_text(errors="replace")
    assert RunDir.open(run).read_status().state == "failed"
    assert "Ray cluster incomplete after 30 s: 1 of 2 nodes and 1 of 2 GPUs registered (not registered: tpn1)" in log
    assert "running the job on the Ray cluster" not in log  # verl never started
    (logs,) = (run / "ray_cluster").iterdir()
    assert (logs / "ENDED").exists()
    job_id = logs.name.split(".")[0]
    left = subprocess.run(["pgrep", "-f", f"tp-ray-{job_id}-"], capture_output=True, text=True).stdout.split()
    assert not left, f"Ray processes left behind: {left}"
    # and each node's Ray temp dir is gone (the namespaces share this /tmp)
    assert not _new_ray_temp_dirs(ray_tmp_before, job_id)
