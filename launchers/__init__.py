"""Launchers: run a VerlJob somewhere (this machine, Ray, SSH, Slurm) and manage it from its run dir."""

from launchers.base import (
    ENTRY_POINT_GROUP,
    Handle,
    Launcher,
    LaunchError,
    UnknownLauncherError,
    available_launchers,
    get_launcher_class,
    handle_of,
    launcher_for,
    make_launcher,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Handle",
    "LaunchError",
    "Launcher",
    "UnknownLauncherError",
    "available_launchers",
    "get_launcher_class",
    "handle_of",
    "launcher_for",
    "make_launcher",
]
