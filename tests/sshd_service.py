"""A throwaway OpenSSH server on 127.0.0.1 with a test user (password and key), all state in one folder.

Needs root (it creates the user) and /usr/sbin/sshd (`apt-get install openssh-server`; .ci/run installs it).
Stopped by its pid. The client side gets its own HOME (known_hosts, ~/.ssh/config) and password store.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
USER = "tptest"
PASSWORD = "tp-test-pw-1"
# the test user's interpreter: the system Python (the test session's venv may lie under root's home)
REMOTE_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class Sshd:
    host: str
    port: int
    user: str
    password: str
    # private key the test user accepts
    key_file: Path
    # known_hosts line(s) for this server
    known_hosts_line: str
    folder: Path
    pid: int


def unavailable() -> str | None:
    """Why an sshd cannot be started here, or None."""
    if not Path(SSHD).exists():
        return f"{SSHD} missing (apt-get install openssh-server)"
    if os.geteuid() != 0:
        return "starting a test sshd needs root (it creates the test user)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*argv: str, stdin: str | None = None) -> str:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True).stdout


def start(folder: Path) -> Sshd:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    for name in ("host_ed25519", "client_ed25519"):
        if not (folder / name).exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name))
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        _run("useradd", "-m", "-s", "/bin/bash", USER)
    _run("chpasswd", stdin=f"{USER}:{PASSWORD}\n")
    home = Path(f"/home/{USER}")
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(folder / "client_ed25519.pub", ssh_dir / "authorized_keys")
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    shutil.chown(ssh_dir, USER, USER)
    shutil.chown(ssh_dir / "authorized_keys", USER, USER)
    # root logs in with the key only, from a key file of this server (the user's own ~/.ssh is not touched):
    # the end-to-end run uses root's Python environment
    shutil.copy(folder / "client_ed25519.pub", folder / "root_keys")
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {folder}/host_ed25519\nPidFile {folder}/sshd.pid\n"
        "PasswordAuthentication yes\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        f"AuthorizedKeysFile .ssh/authorized_keys {folder}/root_keys\n"
        # the server's files lie under /tmp (world-writable): StrictModes would refuse them
        "StrictModes no\nPermitRootLogin prohibit-password\nUsePAM yes\nSubsystem sftp internal-sftp\n"
        "LogLevel VERBOSE\nMaxStartups 100\nMaxSessions 100\n"
    )
    _run(SSHD, "-t", "-f", str(config))
    _run(SSHD, "-f", str(config), "-E", str(folder / "sshd.log"))
    line = ""
    for _ in range(100):
        res = subprocess.run(
            ["ssh-keyscan", "-p", str(port), "-t", "ed25519", "127.0.0.1"], capture_output=True, text=True
        )
        if res.returncode == 0 and res.stdout.strip():
            line = res.stdout
            break
        time.sleep(0.1)
    if not line:
        raise RuntimeError(f"sshd on 127.0.0.1:{port} did not come up; see {folder}/sshd.log")
    pid = int((folder / "sshd.pid").read_text())
    return Sshd("127.0.0.1", port, USER, PASSWORD, folder / "client_ed25519", line, folder, pid)


def stop(server: Sshd) -> None:
    """Stop the listener by its pid (sessions still open end with their connections)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.pid, 15)
