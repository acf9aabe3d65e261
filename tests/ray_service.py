"""A real Ray head on loopback for the ray launcher tests (`ray start --head`), stopped by the pids it started.

Ray facts this relies on: it rewrites 127.0.0.1 to the eth0 address unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0;
token auth must be off explicitly (RAY_AUTH_MODE=disabled) for the head and every client; `ray stop` would kill
every Ray on the host, so it is never used: the head's processes carry a marker in their environment and are
stopped by pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLIENT_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass(frozen=True)
class RayHead:
    address: str
    marker: str
    temp_dir: Path


def _free_port(low: int = 20000) -> int:
    for port in range(low, low + 2000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def start(temp_dir: Path) -> RayHead:
    marker = f"tp-test-ray-{os.getpid()}"
    ports = [_free_port(low) for low in (21000, 23000, 25000, 27000)]
    dash = ports[1]
    env = {**os.environ, **CLIENT_ENV, "TP_RAY_MARKER": marker}
    ray = str(Path(sys.executable).parent / "ray")
    argv = [
        ray,
        "start",
        "--head",
        "--num-cpus=4",
        "--node-ip-address=127.0.0.1",
        f"--port={ports[0]}",
        f"--dashboard-port={dash}",
        "--dashboard-host=127.0.0.1",
        f"--ray-client-server-port={ports[2]}",
        f"--dashboard-agent-listen-port={ports[3]}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        "--include-log-monitor=false",
    ]
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=120)
    address = f"http://127.0.0.1:{dash}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{address}/api/version", timeout=1)  # noqa: S310 - loopback only
            return RayHead(address, marker, temp_dir)
        except OSError:
            time.sleep(0.5)
    stop(RayHead(address, marker, temp_dir))
    raise RuntimeError(f"the Ray Job API at {address} did not come up")


def _pids(marker: str) -> list[int]:
    roots = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"TP_RAY_MARKER={marker}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                roots.append(int(proc.name))
        except OSError:
            continue
    seen: list[int] = []
    queue = roots
    while queue:
        pid = queue.pop()
        if pid in seen:
            continue
        seen.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                queue += [int(c) for c in task.read_text().split()]
    return seen


def stop(head: RayHead) -> None:
    pids = _pids(head.marker)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.2)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
