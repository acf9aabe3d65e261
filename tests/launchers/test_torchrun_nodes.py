"""Multi-node torchrun on Slurm (launchers/torchrun_nodes.py): golden file, shell syntax, and what the script
decides per node. It runs for real on two Slurm nodes in tests/e2e/test_multinode_slurm.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from launchers.render import WRAPPER
from launchers.torchrun_nodes import TORCHRUN_NODES, render_torchrun_nodes, render_with_torchrun_nodes
from trainer_platform.job import VerlJob

GOLDEN = Path(__file__).parent / "golden"


def _sft_job(nnodes: int = 2, uses_ray: bool = False) -> VerlJob:
    return VerlJob(
        entry_point="verl.trainer.sft_trainer",
        argv=(
            "python", "-m", "torch.distributed.run", "--nproc_per_node=1", f"--nnodes={nnodes}",
            "--rdzv_backend=c10d", "--rdzv_endpoint=${MASTER_ADDR}:${MASTER_PORT}", "-m", "verl.trainer.sft_trainer",
            "trainer.default_local_dir='${TP_RUN_DIR}/checkpoints'", "trainer.experiment_name=it's $(not) run",
        ),
        env={"PYTHONPATH": "${TP_VERL_EXT}", "VERL_PLATFORM": "tp_cpu"},
        nnodes=nnodes,
        nprocs_per_node=1,
        uses_ray=uses_ray,
    )  # fmt: skip


def test_torchrun_nodes_script_golden(tmp_path: Path) -> None:
    files = render_with_torchrun_nodes(
        _sft_job(), run_name="sft-2n", verl_ext="/shared/code/verl", setup=("module load cuda",), python="python3"
    )
    assert sorted(files) == [WRAPPER, TORCHRUN_NODES]
    assert 'exec bash "$here"/tp_torchrun_nodes.sh\n' in files[WRAPPER]
    text = files[TORCHRUN_NODES]
    path = GOLDEN / "slurm_tp_torchrun_nodes.sh"
    if os.environ.get("TP_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs; rerun with TP_UPDATE_GOLDEN=1 if the change is intended"
    (tmp_path / TORCHRUN_NODES).write_text(text)
    subprocess.run(["bash", "-n", str(tmp_path / TORCHRUN_NODES)], check=True)
    # the rendezvous endpoint expands on each node (never single-quoted)
    assert '--rdzv_endpoint="${MASTER_ADDR}":"${MASTER_PORT}"' in text
    assert "export MASTER_ADDR MASTER_PORT=29500" in text


def test_only_multinode_torchrun_jobs() -> None:
    with pytest.raises(ValueError, match="not a multi-node torchrun job"):
        render_torchrun_nodes(_sft_job(1), run_name="r")
    with pytest.raises(ValueError, match="not a multi-node torchrun job"):
        render_torchrun_nodes(_sft_job(2, uses_ray=True), run_name="r")
    with pytest.raises(ValueError, match="rendezvous port"):
        render_torchrun_nodes(_sft_job(), run_name="r", master_port=80)
