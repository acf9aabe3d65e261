"""Sweeps: many runs from one command (`python train.py -m a=1,2`, `-m +sweep=NAME`), prepared and validated
together, handed to the launcher as one batch, recorded under one sweep directory with a manifest."""

from trainer_platform.sweep.overrides import axes, check, check_runs, combinations
from trainer_platform.sweep.plan import plan_sweep

__all__ = ["axes", "check", "check_runs", "combinations", "plan_sweep"]
