"""The Hydra sweeper of `train.py -m` grids: train.py has already expanded the sweep (command-line lists, a sweep
file's grid, zipped axes and seeds) into the list of runs and validated each; this sweeper hands that whole list to
the launcher as ONE batch (Hydra's basic sweeper can express neither zipped axes nor repeated seeds)."""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class TrainerPlatformSweeperConf:
    _target_: str = "hydra_plugins.trainer_platform_launcher.list_sweeper.TrainerPlatformSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="trainer_platform", node=TrainerPlatformSweeperConf)


class TrainerPlatformSweeper(Sweeper):
    def __init__(self) -> None:
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from trainer_platform.sweep import combinations
        from trainer_platform.sweep.batch import active_session

        session = active_session(arguments)
        runs = session.planned if session.planned is not None else combinations(arguments)
        return [self.launcher.launch(runs, initial_job_idx=0)]
