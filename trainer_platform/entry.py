"""The `train.py` command: argument handling, error reporting and exit codes around the pipeline."""

from __future__ import annotations

import sys

from trainer_platform.errors import SpecError

USAGE = """usage: python train.py [key=value ...] [-m]

  python train.py                                   train the default (tiny model, tiny data, this machine)
  python train.py algorithm=grpo data=tiny_math     pick options of the config groups in conf/
  python train.py algorithm.lr=2e-6 train.steps=20  set single values
  python train.py ... dry_run=true                  print the exact verl command, launch nothing
  python train.py resume=true resume_dir=runs/NAME  continue a run from its last checkpoint
  python train.py -m algorithm.lr=1e-6,2e-6         one run per value (a sweep)

groups: algorithm, model, data, compute, launcher, logger, surgery, +experiment"""


def main(argv: list[str]) -> int:
    """Run train.py with `argv` (without the program name); returns the process exit code."""
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    if any(a in ("-m", "--multirun") for a in argv):
        return _multirun(argv)
    try:
        from trainer_platform.pipeline import run_overrides

        return run_overrides(argv)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _multirun(argv: list[str]) -> int:
    """A sweep through Hydra's multirun: each combination becomes one run through the same pipeline."""
    from trainer_platform.compose import check_group_choices

    overrides = [a for a in argv if a not in ("-m", "--multirun")]
    try:
        check_group_choices([o for o in overrides if "," not in o])
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import hydra
    from omegaconf import DictConfig

    from trainer_platform.paths import conf_dir

    failures: list[str] = []

    @hydra.main(config_path=str(conf_dir()), config_name="train", version_base="1.3")
    def _one(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig

        job_overrides = list(HydraConfig.get().overrides.task)
        try:
            from trainer_platform.pipeline import run_overrides

            code = run_overrides(job_overrides)
        except SpecError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 2
        if code != 0:
            failures.append(" ".join(job_overrides))

    sys.argv = [sys.argv[0], "-m", *overrides]
    _one()
    if failures:
        print(f"{len(failures)} sweep run(s) failed: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0
