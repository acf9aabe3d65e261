#!/bin/bash

# Parameters
#SBATCH --account=proj-42
#SBATCH --constraint='a100&ib'
#SBATCH --cpus-per-task=16
#SBATCH --exclude='gpu[01-03]'
#SBATCH --exclusive
#SBATCH --gpus-per-node=8
#SBATCH --job-name=tp-grpo-qwen
#SBATCH --mail-type=END
#SBATCH --mem=64G
#SBATCH --nodes=2
#SBATCH --open-mode=append
#SBATCH --output=/shared/runs/grpo-qwen/.slurm/%j_0_log.out
#SBATCH --partition=gpu
#SBATCH --qos=high
#SBATCH --requeue
#SBATCH --signal=B:USR2@90
#SBATCH --time=1564

# setup
set -e
module load cuda/12.4
source /shared/venvs/tp/bin/activate
set +e

# command
export SUBMITIT_EXECUTOR=slurm
exec env PYTHONPATH=/code${PYTHONPATH:+:$PYTHONPATH} /venv/bin/python -u -m submitit.core._submit /shared/runs/grpo-qwen/.slurm
