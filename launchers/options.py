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

from trainer_platform.errors import SpecError, did_you_mean

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
    # working directory, which Ray removes after the job (the log stays in Ray's job logs)
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
        if not re.fullmatch(r"https?://[A-Za-z0-9_.:\[\]-]+(/[A-Za-z0-9_./-]*)?", value):
            raise ValueError(f"{value!r} is not a Job Submission address like http://HEAD:8265")
        return value


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
        raise SpecError(key, f"{msg} (got {first.get('input')!r})", "fix the value") from None
