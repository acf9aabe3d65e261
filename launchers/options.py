"""Launcher options: what `conf/launcher/<name>.yaml` (and `launcher.KEY=value` overrides) may set, per launcher.

Each launcher declares an `Options` model; `parse_options` turns the composed `launcher:` block into it, and every
problem into one SpecError naming the key (`launcher.hots` -> did you mean 'host'?). Values that end up in remote
commands (host names, remote paths) are checked here, before anything is launched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trainer_platform.errors import SpecError, did_you_mean, value_hint

# a host name or address: letters, digits, dots, dashes, colons (IPv6), never starting with '-' (an ssh option)
_HOST_RE = re.compile(r"[A-Za-z0-9_.:\[\]][A-Za-z0-9_.:\[\]-]*")
# a remote path: absolute or under the home folder (~/...), plain characters only
_REMOTE_PATH_RE = re.compile(r"(~|~/[A-Za-z0-9._/+@-]*|/[A-Za-z0-9._/+@-]*)")
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class LauncherOptions(BaseModel):
    """Options every launcher has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    # follow the run until it ends (train.py returns then); false: return after submit with the run dir and job id
    wait: bool = False


class LocalOptions(LauncherOptions):
    wait: bool = True
    # seconds between SIGTERM and SIGKILL when a run is stopped
    grace_s: float = Field(default=10.0, ge=0)
    # most jobs of a sweep running at once (null: as many as the GPUs hold side by side; 1 on a CPU-only machine)
    max_parallel: int | None = Field(default=None, gt=0)
    # the GPU ids of this machine local jobs may use (null: CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists)
    gpus: tuple[int, ...] | None = None

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or min(value) < 0 or len(set(value)) < len(value)):
            raise ValueError("must list distinct GPU ids (0, 1, ...), e.g. launcher.gpus=[0,1]; null: every GPU")
        return value

    @field_validator("wait")
    @classmethod
    def _wait(cls, value: bool) -> bool:
        if not value:
            raise ValueError(
                "the local launcher streams its job through train.py, so it always waits; for a run that outlives "
                "train.py use launcher=ssh (it can target this machine too)"
            )
        return value


def check_remote_path(value: str, key: str = "launcher.remote_dir") -> str:
    """A remote path that is safe to quote into a remote command: absolute or ~/..., no '..', plain characters."""
    if not _REMOTE_PATH_RE.fullmatch(value) or ".." in value.split("/"):
        raise ValueError(
            f"{value!r} is not a plain remote path: use an absolute path or ~/..., letters, digits and ._/+@- only"
        )
    return value


class SshOptions(LauncherOptions):
    # host name or address (or a Host alias from ~/.ssh/config)
    host: str
    # SSH port (null: from ~/.ssh/config, else 22)
    port: int | None = Field(default=None, gt=0, lt=65536)
    # remote user (null: from ~/.ssh/config, else your local user name)
    user: str | None = None
    # private key file (null: ssh-agent, ~/.ssh/config's IdentityFile, the default keys, a stored password)
    key_file: str | None = None
    # folder on the remote host that holds the runs and the shipped code and data
    remote_dir: str = "~/trainer_platform"
    # shell lines run on the remote host before the job (venv activation, module load)
    setup: tuple[str, ...] = ()
    # the Python interpreter on the remote host, after the setup lines (a name on PATH or an absolute path)
    python: str = "python"
    # accept and remember the host key of a host not yet in known_hosts (a changed key is always refused)
    trust_new_host: bool = False
    # seconds to wait for the TCP connection and the SSH handshake
    connect_timeout_s: float = Field(default=15.0, gt=0)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOST_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a host name or address")
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not _USER_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a user name")
        return value

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._/+-]+", value) or value.startswith("-"):
            raise ValueError(f"{value!r} is not an interpreter name or path")
        return value

    @field_validator("remote_dir")
    @classmethod
    def _remote_dir(cls, value: str) -> str:
        return check_remote_path(value)


class RayOptions(LauncherOptions):
    # the cluster's Job Submission address: http://HEAD:8265 (the dashboard port)
    address: str
    # environment variables for the job (non-secret: Ray shows them in its dashboard), on top of what the job sets
    env: dict[str, str] = Field(default_factory=dict)
    # a folder the cluster's nodes share where the runs' outputs go (checkpoints, metrics); null = the Ray job's
    # working directory, which Ray removes after the job with its checkpoints (metrics, the job's end and the
    # checkpoint pointer come back through the job's log either way: launchers/logsync.py)
    remote_dir: str | None = None
    # the Python interpreter on the cluster (a name on PATH or an absolute path)
    python: str = "python"
    # jobs whose shipped inputs (model, data) exceed this many MiB are refused: put them where the cluster can read
    # them (a hub id, a shared folder) instead of shipping them through Ray's working_dir upload
    max_ship_mib: int = Field(default=200, gt=0)

    @field_validator("remote_dir")
    @classmethod
    def _remote_dir(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"{value!r}: the cluster's shared folder must be an absolute path")
        return None if value is None else check_remote_path(value)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        found = re.fullmatch(r"https?://([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(:(\d{1,5}))?(/[A-Za-z0-9_./-]*)?", value)
        if not found or (found.group(3) is not None and not 0 < int(found.group(3)) < 65536):
            raise ValueError(f"{value!r} is not a Job Submission address like http://HEAD:8265")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        from trainer_platform.secrets_env import is_secret_name

        secret = next((name for name in value if is_secret_name(name)), None)
        if secret is not None:  # a SpecError of its own: parse_options would echo the value
            raise SpecError(
                f"launcher.env.{secret}",
                "looks like a secret, and launcher.env is written to the run dir and shown in Ray's dashboard",
                f"remove it and set {secret} in the Ray cluster's own environment",
            )
        return value


# a Slurm time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS
_SLURM_TIME_RE = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
# a plain Slurm value (partition, account, node list, constraint expression): no whitespace, quotes or shell syntax
_SLURM_VALUE_RE = re.compile(r"[A-Za-z0-9_.,:@%+\-\[\]|&!*()=/]+")
_SBATCH_ARG_RE = re.compile(r"--([a-z][a-z0-9-]*)(?:=(" + _SLURM_VALUE_RE.pattern + "))?")
# sbatch options the launcher sets itself, and where the user sets them instead
OWNED_SBATCH_OPTIONS = {
    "partition": "launcher.partition",
    "account": "launcher.account",
    "qos": "launcher.qos",
    "time": "launcher.time",
    "mem": "launcher.mem",
    "cpus-per-task": "launcher.cpus_per_task",
    "constraint": "launcher.constraint",
    "exclude": "launcher.exclude",
    "nodes": "compute (the planner's node count)",
    "gpus-per-node": "compute (the planner's GPUs per node)",
    "array": "launcher.array_parallelism (a sweep becomes one array)",
    "job-name": "the run name",
    "output": "the launcher (the job's output goes to the run dir's train.log)",
    "error": "the launcher (the job's output goes to the run dir's train.log)",
    "open-mode": "the launcher",
    "signal": "the launcher (USR2 before the time limit: requeue and resume)",
    "wrap": "the launcher",
}


def slurm_minutes(value: int | str) -> int:
    """A Slurm time limit in whole minutes (rounded up); ValueError when it is not one of Slurm's formats."""
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("a time limit must be positive")
        return value
    m = _SLURM_TIME_RE.fullmatch(value.strip())
    if not m:
        raise ValueError("not a Slurm time limit: use minutes, HH:MM:SS or D-HH:MM:SS")
    days, first, second, third = m.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = int(days) * 86400 + int(first) * 3600 + int(second or 0) * 60 + int(third or 0)
    elif third is not None:  # HH:MM:SS
        seconds = int(first) * 3600 + int(second) * 60 + int(third)
    elif second is not None:  # MM:SS
        seconds = int(first) * 60 + int(second)
    else:  # MM
        seconds = int(first) * 60
    if seconds <= 0:
        raise ValueError("a time limit must be positive")
    return -(-seconds // 60)


class SlurmOptions(LauncherOptions):
    # shell lines run in the job before it starts (venv activation, module load)
    setup: tuple[str, ...] = ()
    # Slurm partition (null: the cluster's default)
    partition: str | None = None
    # account the job is charged to (null: your default account)
    account: str | None = None
    # quality of service (null: the default)
    qos: str | None = None
    # time limit: minutes or Slurm's [D-]HH:MM:SS (null: the partition's DefaultTime, else its MaxTime, read at submit)
    time: int | str | None = None
    # memory per node, Slurm's format: 64G, 500M (null: the partition's default)
    mem: str | None = None
    # CPUs per task, the job being one task per node (null: the cluster's default)
    cpus_per_task: int | None = Field(default=None, gt=0)
    # node features the job needs, Slurm's constraint expression (null: any node)
    constraint: str | None = None
    # nodes the job must not run on, a Slurm node list (null: none)
    exclude: str | None = None
    # most jobs of one sweep (a Slurm array) running at once (null: as many as the cluster allows)
    array_parallelism: int | None = Field(default=None, gt=0)
    # more sbatch options, as on sbatch's command line: ["--mail-type=END", "--reservation=r1"]
    sbatch_args: tuple[str, ...] = ()
    # multi-node RL: first of the fixed ports of the Ray cluster the job brings up (GCS; node services from +10,
    # workers +100..+999), below Linux's ephemeral range
    ray_port_base: int = Field(default=24000, ge=1024, le=31768)
    # multi-node RL: seconds for every node and GPU to join the job's Ray cluster before the job fails
    ray_wait_s: float = Field(default=300.0, gt=0)
    # multi-node SFT/DPO: the port of torchrun's rendezvous on the first node (MASTER_PORT)
    master_port: int = Field(default=29500, ge=1024, le=65535)

    @field_validator("partition", "account", "qos", "constraint", "exclude")
    @classmethod
    def _plain(cls, value: str | None) -> str | None:
        if value is not None and not _SLURM_VALUE_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a plain Slurm value (no spaces, quotes or shell syntax)")
        return value

    @field_validator("time")
    @classmethod
    def _time(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            slurm_minutes(value)
        return value

    @field_validator("mem")
    @classmethod
    def _mem(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[1-9][0-9]*[KMGT]?", str(value)):
            raise ValueError(f"{value!r} is not a Slurm memory size like 64G or 500M")
        return None if value is None else str(value)

    @field_validator("sbatch_args")
    @classmethod
    def _sbatch_args(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arg in value:
            m = _SBATCH_ARG_RE.fullmatch(arg)
            if not m:
                raise ValueError(f"{arg!r} is not an sbatch option like --name=value or --flag")
            if m.group(1) in OWNED_SBATCH_OPTIONS:
                raise ValueError(f"{arg!r}: --{m.group(1)} is set by {OWNED_SBATCH_OPTIONS[m.group(1)]}")
        return value

    @property
    def time_minutes(self) -> int | None:
        """The time limit in minutes (None: the partition's, resolved at submit by launchers/slurm_time.py)."""
        return None if self.time is None else slurm_minutes(self.time)

    @property
    def extra_sbatch(self) -> dict[str, str | bool]:
        """sbatch_args as option name -> value (True for a flag)."""
        out: dict[str, str | bool] = {}
        for arg in self.sbatch_args:
            name, _, val = arg[2:].partition("=")
            out[name] = val if "=" in arg else True
        return out


def parse_options(model: type[LauncherOptions], raw: Mapping[str, Any]) -> LauncherOptions:
    """The `launcher:` block validated against a launcher's options; SpecError (key, problem, hint) otherwise."""
    # a required option left null in its yaml file counts as missing
    raw = {
        k: v
        for k, v in raw.items()
        if v is not None or k not in model.model_fields or not model.model_fields[k].is_required()
    }
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "launcher"
        key = f"launcher.{field}"
        name = raw.get("name", "?")
        if first["type"] == "extra_forbidden":
            known = sorted(model.model_fields)
            hint = did_you_mean(str(first["loc"][0]), known) or ""
            return_hint = f"{hint} options of launcher={name}: {', '.join(known)}".strip()
            raise SpecError(key, f"launcher {name!r} has no such option", return_hint) from None
        if first["type"] == "missing":
            raise SpecError(
                key, f"launcher={name} needs it", f"set it in conf/local/launcher/ or on the command line ({key}=...)"
            ) from None
        msg = str(first["msg"]).removeprefix("Value error, ")
        hint = value_hint(key, first["type"], first.get("input"))
        raise SpecError(key, f"{msg} (got {first.get('input')!r})", hint) from None
