"""Diagnostics on a run's metrics stream: rules (pure, standard library only) and the monitor that runs them beside
a job and acts (warn, or stop the run keeping its last checkpoint). See rules.py and monitor.py."""

from trainer_platform.diagnostics.rules import (
    ACTIONS,
    RULES,
    STOP,
    WARN,
    Anomaly,
    ConfigError,
    Detector,
    DiagnosticsConfig,
    config_from_dict,
    evaluate,
)

__all__ = [
    "ACTIONS",
    "RULES",
    "STOP",
    "WARN",
    "Anomaly",
    "ConfigError",
    "Detector",
    "DiagnosticsConfig",
    "config_from_dict",
    "evaluate",
]
