"""Sweeps: many runs from one command (`python train.py -m a=1,2`, `-m +sweep=NAME`), prepared and validated
together, handed to the launcher as one batch, recorded under one sweep directory with a manifest."""

from trainer_platform.sweep.overrides import axes, check, combinations

__all__ = ["axes", "check", "combinations"]
