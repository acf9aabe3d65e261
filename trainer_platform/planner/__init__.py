"""The compute planner: hardware detection and the settings a spec leaves open."""

from trainer_platform.planner.hardware import Hardware, detect_hardware
from trainer_platform.planner.plan import Plan, plan

__all__ = ["Hardware", "Plan", "detect_hardware", "plan"]
