"""SSH passwords stored encrypted at rest (Fernet, from `cryptography`).

The key lies in `<config dir>/ssh.key` (mode 0600), the encrypted passwords in `<config dir>/ssh_hosts.json`
(0600), keyed by `user@host:port`. The config dir is `$TRAINER_PLATFORM_CONFIG`, else
`$XDG_CONFIG_HOME/trainer_platform`, else `~/.config/trainer_platform`. Passwords only ever pass through memory:
never argv, run dirs, logs or W&B. Managed with `trainer-platform ssh add-host|list-hosts|remove-host`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

_KEY = "ssh.key"
_STORE = "ssh_hosts.json"


class PasswordStoreError(RuntimeError):
    """The store cannot be read (wrong key, corrupt file); the message says which file."""


def config_dir() -> Path:
    if os.environ.get("TRAINER_PLATFORM_CONFIG"):
        return Path(os.environ["TRAINER_PLATFORM_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "trainer_platform"


def host_id(host: str, port: int, user: str) -> str:
    return f"{user}@{host}:{port}"


def _private_write(path: Path, data: str | bytes) -> None:
    """Replace `path` atomically with a file only its owner can read (mkstemp creates it 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fernet(create: bool) -> Fernet | None:
    path = config_dir() / _KEY
    if not path.exists():
        if not create:
            return None
        _private_write(path, Fernet.generate_key())
    if path.stat().st_mode & 0o077:
        raise PasswordStoreError(f"{path} is readable by others; run: chmod 600 {path}")
    return Fernet(path.read_bytes().strip())


def _load() -> dict[str, dict[str, str]]:
    path = config_dir() / _STORE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise PasswordStoreError(f"{path} is not valid JSON ({e}); remove it and add the hosts again") from None
    return data if isinstance(data, dict) else {}


def add_host(host: str, port: int, user: str, password: str) -> str:
    """Store (or replace) the password for user@host:port; returns that id."""
    fernet = _fernet(create=True)
    assert fernet is not None
    hosts = _load()
    key = host_id(host, port, user)
    hosts[key] = {"password": fernet.encrypt(password.encode()).decode()}
    _private_write(config_dir() / _STORE, json.dumps(hosts, indent=2, sort_keys=True) + "\n")
    return key


def list_hosts() -> list[str]:
    return sorted(_load())


def remove_host(host: str, port: int, user: str) -> bool:
    hosts = _load()
    if hosts.pop(host_id(host, port, user), None) is None:
        return False
    _private_write(config_dir() / _STORE, json.dumps(hosts, indent=2, sort_keys=True) + "\n")
    return True


def password_for(host: str, port: int, user: str) -> str | None:
    """The stored password for user@host:port, or None."""
    entry = _load().get(host_id(host, port, user))
    fernet = _fernet(create=False)
    if entry is None or fernet is None:
        return None
    try:
        return fernet.decrypt(entry["password"].encode()).decode()
    except (InvalidToken, KeyError) as e:
        raise PasswordStoreError(
            f"{config_dir() / _STORE}: the password of {host_id(host, port, user)} cannot be decrypted with "
            f"{config_dir() / _KEY} ({type(e).__name__}); add the host again"
        ) from None
