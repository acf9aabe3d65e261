"""Fixtures for the launcher tests: a real sshd on 127.0.0.1 (started once per session) and a client side of its
own (HOME with known_hosts, password store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import sshd_service


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sshd_service.Sshd]:
    reason = sshd_service.unavailable()
    if reason:
        pytest.skip(reason)
    server = sshd_service.start(tmp_path_factory.mktemp("sshd"))
    yield server
    sshd_service.stop(server)


@pytest.fixture
def ssh_client_home(sshd: sshd_service.Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME that trusts the test sshd's host key, and an empty password store."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TRAINER_PLATFORM_CONFIG", str(home / ".config" / "trainer_platform"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


# the test user's interpreter: the system Python (this session's venv lies under root's home)
REMOTE_PYTHON = "/usr/bin/python3"
