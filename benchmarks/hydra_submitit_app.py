"""The anchor of bench_slurm_submit.py: the usual hydra-submitit set-up over the platform. A Hydra app on the
platform's conf/ whose task runs one run in-process on the compute node (the platform's single-run path,
launcher=local there), swept with `-m hydra/launcher=submitit_slurm`: hydra-submitit composes and pickles each
run's config and submits them as one array; everything else happens on the node. Not part of the platform: it
needs hydra-submitit-launcher on PYTHONPATH (a bench-only install, see the benchmark's docstring)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


@hydra.main(config_path=str(REPO_ROOT / "conf"), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> int:
    from hydra.core.hydra_config import HydraConfig

    from trainer_platform.pipeline import run_overrides

    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith(("hydra.", "hydra/"))]
    return run_overrides([*overrides, "launcher=local"])


if __name__ == "__main__":
    main()
