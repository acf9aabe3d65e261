"""The ssh launcher against a real sshd on 127.0.0.1: the shared contract, host-key policy, auth, injection attempts,
a dropped connection, and the encrypted password store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sshd_service
from launcher_contract import REPO_ROOT, LauncherContract, MakeLauncher, new_run, python_job
from launchers import passwords, sshconn
from launchers.base import Handle, handle_of, launcher_for
from launchers.options import SshOptions, parse_options
from launchers.ssh import SshLauncher, drop_connections
from trainer_platform.errors import SpecError
from trainer_platform.runs import RUNNING, SUCCEEDED, RunDir


def options(server: sshd_service.Sshd, **kw: object) -> SshOptions:
    base: dict[str, object] = {
        "name": "ssh",
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "key_file": str(server.key_file),
        "remote_dir": "~/tp",
        "setup": ("export TP_SETUP_RAN=1",),
        "python": sshd_service.REMOTE_PYTHON,
    }
    return SshOptions.model_validate({**base, **kw})


@pytest.fixture(autouse=True)
def _fresh_connections() -> None:
    drop_connections()


@pytest.mark.usefixtures("ssh_client_home")
class TestSshLauncher(LauncherContract):
    streams_to_console = False

    @pytest.fixture
    def make_launcher(self, sshd: sshd_service.Sshd) -> MakeLauncher:
        opts = options(sshd)
        return lambda console: SshLauncher(opts, forward_env=("TP_CONTRACT_SECRET",))

    def job_cwd(self, handle: Handle) -> str | None:
        return str(handle.data["remote_run"])


def _connect(server: sshd_service.Sshd, **kw: object) -> None:
    opts = options(server, **kw)
    target = sshconn.resolve_target(opts.host, opts.port, opts.user, opts.key_file)
    sshconn.connect(target, trust_new_host=opts.trust_new_host).close()


def test_unknown_host_refused_with_the_command_to_trust_it(sshd: sshd_service.Sshd, ssh_client_home: Path) -> None:
    (ssh_client_home / ".ssh" / "known_hosts").unlink()
    with pytest.raises(SpecError) as err:
        _connect(sshd)
    assert err.value.key == "launcher.host" and f"ssh-keyscan -p {sshd.port} 127.0.0.1" in err.value.hint
    _connect(sshd, trust_new_host=True)  # trust on first use, only when asked: the key is saved
    assert f"[127.0.0.1]:{sshd.port}" in (ssh_client_home / ".ssh" / "known_hosts").read_text()
    _connect(sshd)


def test_changed_host_key_always_refused(sshd: sshd_service.Sshd, ssh_client_home: Path, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().split()[:2]
    (ssh_client_home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{sshd.port} {' '.join(other)}\n")
    for trust in (False, True):
        with pytest.raises(SpecError, match="CHANGED"):
            _connect(sshd, trust_new_host=trust)


@pytest.mark.usefixtures("ssh_client_home")
def test_password_auth_from_the_encrypted_store(sshd: sshd_service.Sshd) -> None:
    with pytest.raises(SpecError, match="authentication failed"):
        _connect(sshd, key_file=None)  # no key, no agent, no stored password
    passwords.add_host(sshd.host, sshd.port, sshd.user, "wrong-password")
    with pytest.raises(SpecError, match="authentication failed"):
        _connect(sshd, key_file=None)
    passwords.add_host(sshd.host, sshd.port, sshd.user, sshd.password)
    _connect(sshd, key_file=None)
    store = passwords.config_dir()
    assert (store / "ssh.key").stat().st_mode & 0o777 == 0o600
    assert (store / "ssh_hosts.json").stat().st_mode & 0o777 == 0o600
    assert sshd.password not in (store / "ssh_hosts.json").read_text()
    assert passwords.list_hosts() == [f"{sshd.user}@{sshd.host}:{sshd.port}"]
    assert passwords.remove_host(sshd.host, sshd.port, sshd.user) and passwords.list_hosts() == []


@pytest.mark.parametrize(
    "key,value",
    [
        ("host", "127.0.0.1;touch /tmp/tp-pwned"),
        ("host", "-oProxyCommand=touch /tmp/tp-pwned"),
        ("remote_dir", "~/tp;touch /tmp/tp-pwned"),
        ("remote_dir", "~/../../tmp"),
        ("remote_dir", "$(touch /tmp/tp-pwned)"),
        ("user", "x$(touch /tmp/tp-pwned)"),
    ],
)
def test_unsafe_options_refused_before_anything_runs(key: str, value: str) -> None:
    raw = {"name": "ssh", "host": "127.0.0.1", key: value}
    with pytest.raises(SpecError) as err:
        parse_options(SshOptions, raw)
    assert err.value.key == f"launcher.{key}"
    assert not Path("/tmp/tp-pwned").exists()


def test_unknown_option_did_you_mean() -> None:
    with pytest.raises(SpecError, match="did you mean 'host'") as err:
        parse_options(SshOptions, {"name": "ssh", "hots": "x", "host": "y"})
    assert err.value.key == "launcher.hots"


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("ssh_client_home")
def test_injection_in_run_names_and_arguments_never_executes(sshd: sshd_service.Sshd, tmp_path: Path) -> None:
    marker = Path("/tmp/tp-injected")
    marker.unlink(missing_ok=True)
    evil = f"$(touch {marker}); `touch {marker}` ' \" ; touch {marker}"
    job = python_job("import json, os, sys; print(json.dumps([*sys.argv[1:], os.environ['EVIL']]))")
    job = type(job)(entry_point="t", argv=(*job.argv, evil, f"trainer.x={evil}"), env={"EVIL": evil})
    run = new_run(tmp_path, job, name="x $(touch tp-injected) ;touch tp-injected`touch tp-injected`")
    launcher = SshLauncher(options(sshd))
    handle = launcher.submit([job], [run])[0]
    assert launcher.wait(handle) == 0
    assert json.loads(run.log_path.read_text()) == [evil, f"trainer.x={evil}", evil] and not marker.exists()
    remote_run = Path(handle.data["remote_run"])
    assert remote_run.parent == Path(f"/home/{sshd.user}/tp/runs") and " " not in remote_run.name
    for where in (Path(f"/home/{sshd.user}"), remote_run, remote_run.parent, Path.cwd()):
        assert not (where / "tp-injected").exists()


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("ssh_client_home")
def test_connection_dropped_mid_run_job_keeps_running(sshd: sshd_service.Sshd, tmp_path: Path) -> None:
    job = python_job("import time\nprint('a', flush=True)\ntime.sleep(4)\nprint('b')")
    run = new_run(tmp_path, job)
    handle = SshLauncher(options(sshd)).submit([job], [run])[0]
    assert run.read_status().state == RUNNING
    for client in list(__import__("launchers.ssh", fromlist=["_clients"])._clients.values()):
        transport = client.get_transport()
        assert transport is not None
        transport.sock.close()  # the connection drops under the launcher's feet
    drop_connections()
    time.sleep(1)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    code = (
        "import sys; from launchers.base import handle_of, launcher_for; from trainer_platform.runs import RunDir\n"
        "h = handle_of(RunDir.open(sys.argv[1])); sys.exit(launcher_for(h).wait(h))"
    )
    subprocess.run([sys.executable, "-c", code, str(run.path)], env=env, timeout=100, check=True)
    assert RunDir.open(run.path).read_status().state == SUCCEEDED
    assert run.log_path.read_text() == "a\nb\n"
    fresh = handle_of(RunDir.open(run.path))
    assert launcher_for(fresh).status(fresh) == SUCCEEDED and fresh.data == handle.data


def test_ssh_cli_add_list_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINER_PLATFORM_CONFIG", str(tmp_path / "cfg"))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trainer_platform.cli", "ssh", *args],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        )

    added = cli("add-host", "gpu1", "--port", "2222", "--user", "me", "--password-stdin", stdin="pw-s3cret\n")
    assert added.returncode == 0, added.stderr
    assert "pw-s3cret" not in (tmp_path / "cfg" / "ssh_hosts.json").read_text()
    assert passwords.password_for("gpu1", 2222, "me") == "pw-s3cret"
    assert cli("list-hosts").stdout.strip() == "me@gpu1:2222"
    bad = cli("add-host", "gpu1;rm -rf /", "--user", "me", "--password-stdin", stdin="x\n")
    assert bad.returncode == 2 and "launcher.host" in bad.stderr
    assert cli("remove-host", "gpu1", "--port", "2222", "--user", "me").returncode == 0
    assert cli("list-hosts").stdout.startswith("no stored passwords")
