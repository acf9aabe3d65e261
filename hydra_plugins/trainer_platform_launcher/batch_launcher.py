"""The Hydra launcher of a `train.py -m` search: Hydra's sweeper (Optuna; any sweeper when Hydra is driven by
another program) hands it a batch of runs as override lists (train.py hands a grid to the session itself); it
hands the whole batch to the active sweep (trainer_platform.sweep.batch), which composes and validates every run,
prepares each into its run dir and submits all of them through ONE `launcher.submit` of the platform launcher the
runs name (`launcher=local|ssh|ray|slurm`: a Slurm sweep is one job array).

Hydra finds this module because `hydra_plugins` is a namespace package on sys.path. Each job's return value is its
exit code, or, for a search that asks for one, the objective read from its metrics. A problem that stops the batch
(bad input, a launcher that cannot start) is kept on the session and SweepAborted (a BaseException, which Hydra lets
through) ends the sweep: train.py then reports the problem itself (Hydra would print a traceback and exit 1).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


@dataclass
class TrainerPlatformLauncherConf:
    _target_: str = "hydra_plugins.trainer_platform_launcher.batch_launcher.TrainerPlatformLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="trainer_platform", node=TrainerPlatformLauncherConf)


class TrainerPlatformLauncher(Launcher):
    def __init__(self) -> None:
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from trainer_platform.sweep.batch import SweepAborted, active_session

        assert self.config is not None
        task = OmegaConf.select(self.config, "hydra.overrides.task", default=[]) or []
        session = active_session([str(o) for o in task])
        jobs = [list(overrides) for overrides in job_overrides]
        try:
            values: list[Any] = session.launch(jobs)
        except (KeyboardInterrupt, SweepAborted):
            raise
        except BaseException as exc:  # noqa: BLE001 - reported by train.py with its own message and exit code
            session.error = exc
            raise SweepAborted() from None
        return [_completed(overrides, value) for overrides, value in zip(jobs, values, strict=True)]


def _completed(overrides: list[str], value: Any) -> JobReturn:
    ret = JobReturn(overrides=overrides, status=JobStatus.COMPLETED)
    ret.return_value = value
    return ret
