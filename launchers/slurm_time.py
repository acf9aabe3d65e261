"""launcher.time=null: the job's time limit is its partition's, read from Slurm at submit and written as --time.

Why explicit (measured on the test Slurm 22.05 with submitit 1.5.4): submitit writes its own `--time=5` unless it is
given a time, and a time of None (no --time line) leaves submitit's USR2 handler computing `None * 60`: the job
fails with a TypeError on the signal that should requeue it (the time limit's warning, a preemption). So the
launcher always hands submitit a number: the partition's DefaultTime, else its MaxTime, else (MaxTime=UNLIMITED)
0, which is sbatch's "no time limit" (the job shows TimeLimit=UNLIMITED) and a number submitit can count with.

Where it can differ from leaving the limit to Slurm: a QOS or association MaxWall below the partition's limit is not
read here; on such a cluster set launcher.time.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from launchers.options import slurm_minutes
from trainer_platform.errors import SpecError, did_you_mean

# sbatch's --time=0: no time limit (the partition allows any)
NO_LIMIT = 0
_UNLIMITED = {"UNLIMITED", "INFINITE"}
_UNSET = {"NONE", "N/A", ""}


@dataclass(frozen=True)
class PartitionTime:
    """A partition's time limits in minutes, as scontrol reports them (None: not set / unlimited)."""

    partition: str
    # DefaultTime: the limit of a job that asks for none (None: NONE, not set)
    default_min: int | None
    # MaxTime: the most a job may ask for (None: UNLIMITED)
    max_min: int | None

    @property
    def limit_min(self) -> int:
        """The job's limit when launcher.time is null: DefaultTime, else MaxTime, else NO_LIMIT."""
        if self.default_min is not None:
            return self.default_min
        return NO_LIMIT if self.max_min is None else self.max_min


def parse_partitions(text: str) -> list[dict[str, str]]:
    """`scontrol -o show partition` output, one dict of Key=Value fields per partition line."""
    partitions = []
    for line in text.splitlines():
        fields = dict(word.partition("=")[::2] for word in line.split() if "=" in word)
        if fields.get("PartitionName"):
            partitions.append(fields)
    return partitions


def partition_minutes(value: str) -> int | None:
    """A time as scontrol shows a partition's DefaultTime or MaxTime, in minutes: None for UNLIMITED/INFINITE
    and for NONE (not set); ValueError for anything else that is not one of Slurm's time formats."""
    value = value.strip()
    if value.upper() in _UNLIMITED or value.upper() in _UNSET:
        return None
    return slurm_minutes(value)


def partition_time(fields: Mapping[str, str]) -> PartitionTime:
    """The time limits of one partition line of scontrol (SpecError when scontrol's values cannot be read)."""
    name = fields.get("PartitionName", "?")
    try:
        default = partition_minutes(fields.get("DefaultTime", "NONE"))
        maximum = partition_minutes(fields.get("MaxTime", "UNLIMITED"))
    except ValueError:
        shown = f"DefaultTime={fields.get('DefaultTime')} MaxTime={fields.get('MaxTime')}"
        raise SpecError(
            "launcher.time",
            f"cannot read the time limit of Slurm partition {name!r} ({shown})",
            "set launcher.time (minutes or D-HH:MM:SS)",
        ) from None
    return PartitionTime(name, default, maximum)


def choose_partition(partitions: list[dict[str, str]], name: str | None) -> dict[str, str]:
    """The line of partition `name`, or of the cluster's default partition (Default=YES) when `name` is None."""
    if name is None:
        default = [p for p in partitions if p.get("Default", "").upper() == "YES"]
        if not default:
            raise SpecError(
                "launcher.partition", "the Slurm cluster has no default partition", "set launcher.partition"
            )
        return default[0]
    for p in partitions:
        if p["PartitionName"] == name:
            return p
    names = sorted(p["PartitionName"] for p in partitions)
    hint = did_you_mean(name, names) or ""
    raise SpecError(
        "launcher.partition", f"Slurm has no partition {name!r}", f"{hint} partitions: {', '.join(names)}".strip()
    )


def query_partitions(env: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """Every partition of the cluster (hidden ones too), from `scontrol --all -o show partition`."""
    argv = ["scontrol", "--all", "-o", "show", "partition"]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, env=None if env is None else dict(env), timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SpecError(
            "launcher.time", f"cannot ask Slurm for the partition's time limit: {e}", "set launcher.time"
        ) from None
    if res.returncode != 0:
        problem = (res.stderr or res.stdout).strip().splitlines()
        raise SpecError(
            "launcher.time",
            f"cannot ask Slurm for the partition's time limit: {' '.join(argv)}: {problem[-1] if problem else '?'}",
            "check that Slurm is reachable (SLURM_CONF), or set launcher.time",
        )
    return parse_partitions(res.stdout)


def resolve_time_min(time_min: int | None, partition: str | None, env: Mapping[str, str] | None = None) -> int:
    """The --time to submit with: `time_min` (launcher.time) when set, else the partition's limit (NO_LIMIT for
    an unlimited partition), read from Slurm now."""
    if time_min is not None:
        return time_min
    return partition_time(choose_partition(query_partitions(env), partition)).limit_min
