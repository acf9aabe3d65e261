"""SSH connections for the ssh launcher (paramiko): target from options + ~/.ssh/config, host-key policy, auth, argv
commands and SFTP transfers.

Host keys are checked against known_hosts (~/.ssh/known_hosts, or ~/.ssh/config's UserKnownHostsFile): an unknown
host is refused with the command to trust it, unless trust-on-first-use was asked for (launcher.trust_new_host);
a changed key is always refused. Auth: launcher.key_file, ssh-agent and the default keys, or a password from the
encrypted store (launchers.passwords). Remote commands are built from argv with shlex.quote (the remote shell sees
one quoted word per argument), never from strings.
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import paramiko

from launchers import passwords
from trainer_platform.errors import SpecError


@dataclass(frozen=True)
class Target:
    """Where to connect, with ~/.ssh/config applied: plain data (kept in the run's handle)."""

    host: str
    port: int
    user: str
    key_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this host (OpenSSH and paramiko: `[host]:port` unless the port is 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def resolve_target(host: str, port: int | None, user: str | None, key_file: str | None) -> Target:
    """Apply ~/.ssh/config (HostName, Port, User, IdentityFile, UserKnownHostsFile) under the explicit options."""
    cfg: dict[str, object] = {}
    path = Path("~/.ssh/config").expanduser()
    if path.is_file():
        cfg = dict(paramiko.SSHConfig.from_path(str(path)).lookup(host))
    identity = cfg.get("identityfile")
    default_key = identity[0] if isinstance(identity, list) and identity else None
    known = str(cfg.get("userknownhostsfile") or "~/.ssh/known_hosts").split()[0]
    return Target(
        host=str(cfg.get("hostname") or host),
        port=int(port or int(str(cfg.get("port") or 22))),
        user=user or str(cfg.get("user") or os.environ.get("USER") or "root"),
        key_file=key_file or (default_key if default_key and Path(default_key).expanduser().exists() else None),
        known_hosts=known,
    )


class _Refuse(paramiko.MissingHostKeyPolicy):
    def __init__(self, target: Target) -> None:
        self.target = target

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        t = self.target
        known = t.known_hosts
        raise SpecError(
            "launcher.host",
            f"{t.known_hosts_name} is not in {known} (its {key.get_name()} key is {key.fingerprint})",
            f"check that fingerprint with the host's admin, then trust it: ssh-keyscan -p {t.port} {t.host} >> "
            f"{known}  (or once: launcher.trust_new_host=true)",
        )


def connect(target: Target, *, trust_new_host: bool = False, timeout_s: float = 15.0) -> paramiko.SSHClient:
    """An authenticated connection; SpecError (exit 2) for an unknown or changed host key or refused auth."""
    client = paramiko.SSHClient()
    known = Path(target.known_hosts).expanduser()
    if known.is_file():
        client.load_host_keys(str(known))
    elif trust_new_host:
        known.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        known.touch(mode=0o600)
        client.load_host_keys(str(known))
    # trust on first use saves the new key to known_hosts (paramiko's AutoAddPolicy writes the loaded file)
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy() if trust_new_host else _Refuse(target))
    password = passwords.password_for(target.host, target.port, target.user)
    try:
        client.connect(
            target.host,
            port=target.port,
            username=target.user,
            password=password,
            key_filename=str(Path(target.key_file).expanduser()) if target.key_file else None,
            allow_agent=True,
            look_for_keys=target.key_file is None,
            timeout=timeout_s,
            banner_timeout=timeout_s,
            auth_timeout=timeout_s,
        )
    except paramiko.BadHostKeyException as e:
        client.close()
        raise SpecError(
            "launcher.host",
            f"the host key of {target.known_hosts_name} CHANGED (now {e.key.get_name()} {e.key.fingerprint}, "
            f"expected {e.expected_key.fingerprint} from {target.known_hosts}): refused",
            "if the host was really reinstalled, remove the old key (ssh-keygen -R "
            f"'{target.known_hosts_name}' -f {target.known_hosts}) and trust the new one",
        ) from None
    except (paramiko.AuthenticationException, paramiko.SSHException) as e:
        client.close()
        if not isinstance(e, paramiko.AuthenticationException) and "authentication methods" not in str(e):
            from launchers.base import LaunchError

            raise LaunchError(f"cannot connect to {target.label}: {e}") from None
        raise SpecError(
            "launcher.user",
            f"authentication failed for {target.label}",
            "use a key (launcher.key_file or ssh-agent) or store the password: "
            f"trainer-platform ssh add-host {target.host} --port {target.port} --user {target.user}",
        ) from None
    except (TimeoutError, OSError) as e:
        client.close()
        from launchers.base import LaunchError

        raise LaunchError(f"cannot connect to {target.label}: {e}") from None
    return client


def run(client: paramiko.SSHClient, argv: Sequence[str], timeout_s: float = 60.0) -> tuple[int, str, str]:
    """Run `argv` on the remote host (each argument quoted); (exit code, stdout, stderr)."""
    _, stdout, stderr = client.exec_command(shlex.join(argv), timeout=timeout_s)
    out = stdout.read().decode("utf-8", errors="replace")
    err = stderr.read().decode("utf-8", errors="replace")
    return stdout.channel.recv_exit_status(), out, err


def mkdirs(sftp: paramiko.SFTPClient, path: str) -> None:
    """mkdir -p over SFTP."""
    current = PurePosixPath("/")
    for part in PurePosixPath(path).parts[1:]:
        current = current / part
        try:
            sftp.stat(str(current))
        except FileNotFoundError:
            sftp.mkdir(str(current))


def put_tree(sftp: paramiko.SFTPClient, local: Path, remote: str) -> int:
    """Upload a file or a folder (recursively) to `remote`; files already there with the same size are skipped.
    Returns the bytes sent."""
    sent = 0
    if local.is_file():
        try:
            if sftp.stat(remote).st_size == local.stat().st_size:
                return 0
        except FileNotFoundError:
            pass
        mkdirs(sftp, str(PurePosixPath(remote).parent))
        sftp.put(str(local), remote)
        sftp.chmod(remote, stat.S_IMODE(local.stat().st_mode))
        return local.stat().st_size
    for item in sorted(local.iterdir()):
        if item.name == "__pycache__":
            continue
        sent += put_tree(sftp, item, f"{remote}/{item.name}")
    mkdirs(sftp, remote)
    return sent


def read_file(sftp: paramiko.SFTPClient, path: str, offset: int = 0) -> bytes | None:
    """The remote file's bytes from `offset`; None when it does not exist."""
    try:
        with sftp.open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return None
