"""A real single-node Slurm on 127.0.0.1 for the slurm launcher tests: munged, MariaDB, slurmdbd, slurmctld and
slurmd, each started in the foreground from its own config in one folder, on free ports, and stopped by its pid.

Nothing is shared with a Slurm or munge the host may already run: munged has its own key and socket (slurm.conf's
AuthInfo points at it), MariaDB its own datadir, socket and port, every daemon its own ports, state and pid files.
Clients (sbatch, squeue, sacct, the launcher under test) find the cluster through SLURM_CONF (`Slurm.env`).

Slurm facts this relies on (Debian 12's slurm-wlm 22.05, no systemd, no cgroups): proctrack/linuxproc, task/none
and jobacct_gather/none work without cgroups; accounting (slurmdbd) is what makes `sacct` work, which a job's end
state needs once it has left the queue; a node line whose CPU count exceeds the hardware is accepted with
SlurmdParameters=config_overrides (so tiny test jobs run side by side on a small machine); a slurmd that cannot
reach its controller ignores SIGTERM (so stop() falls back to SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import netns_service

DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")
# CPUs the test node advertises (more than the machine has: tiny jobs share the cores)
NODE_CPUS = 16
PARTITION = "debug"
CLUSTER = "tpci"


@dataclass(frozen=True)
class Node:
    """One slurmd: its node name, the address it listens on and its port, and the network namespace it runs in
    (None: the host's network, slurmd's multiple-node mode on 127.0.0.1)."""

    name: str
    addr: str = "127.0.0.1"
    port: int = 0
    cpus: int = NODE_CPUS
    netns: netns_service.NodeNet | None = None


@dataclass
class Slurm:
    folder: Path
    conf: Path
    nodes: list[Node]
    partition: str = PARTITION
    # daemon name -> pid (processes this fixture started)
    pids: dict[str, int] = field(default_factory=dict)
    # the bridge and namespaces of a multi-node cluster (removed by stop())
    network: netns_service.Network | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a client needs in its environment to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}


def unavailable() -> str | None:
    """Why a test Slurm cannot be started here, or None."""
    missing = [d for d in (*DAEMONS, "sbatch", "sacctmgr", "mariadb-install-db") if shutil.which(d) is None]
    if missing:
        return f"{', '.join(missing)} missing (apt-get install slurm-wlm slurmdbd munge mariadb-server; .ci/run does)"
    if os.geteuid() != 0:
        return "a test Slurm needs root (slurmd runs jobs as their submitting user)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slurm_conf(
    folder: Path, nodes: list[Node], *, ctld_port: int, dbd_port: int, host: str, ctld_addr: str = "127.0.0.1"
) -> str:
    """slurm.conf for a cluster whose state, logs and pid files all live in `folder`."""
    node_lines = [
        f"NodeName={n.name} NodeHostname={host} NodeAddr={n.addr} Port={n.port} CPUs={n.cpus} "
        f"RealMemory={_memory_mb()} State=UNKNOWN"
        for n in nodes
    ]
    return "\n".join(
        [
            f"ClusterName={CLUSTER}",
            f"SlurmctldHost={host}({ctld_addr})",
            f"SlurmctldPort={ctld_port}",
            "SlurmUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={folder}/munge.sock",
            "MpiDefault=none",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1",
            f"AccountingStoragePort={dbd_port}",
            # for connections to slurmdbd, clients take the munge socket from here (not from AuthInfo)
            f"AccountingStoragePass={folder}/munge.sock",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=1,bf_interval=1",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SlurmdParameters=config_overrides",
            "ReturnToService=2",
            "JobRequeue=1",
            f"StateSaveLocation={folder}/state",
            f"SlurmdSpoolDir={folder}/spool/%n",
            f"SlurmctldPidFile={folder}/slurmctld.pid",
            f"SlurmdPidFile={folder}/slurmd-%n.pid",
            f"SlurmctldLogFile={folder}/log/slurmctld.log",
            f"SlurmdLogFile={folder}/log/slurmd-%n.log",
            "MinJobAge=300",
            "KillWait=5",
            "InactiveLimit=0",
            "MessageTimeout=20",
            *node_lines,
            f"PartitionName={PARTITION} Nodes={','.join(n.name for n in nodes)} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _memory_mb() -> int:
    """The machine's memory in MiB, less 1 GiB of headroom (what the node advertises)."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kb = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal:")))
    return max(1024, total_kb // 1024 - 1024)


def _spawn(slurm: Slurm, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> None:
    log = open(slurm.folder / "log" / f"{name}.out", "ab")  # noqa: SIM115 - the daemon owns it
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env
    )
    log.close()
    slurm.pids[name] = proc.pid


def _until(what: str, check: object, slurm: Slurm, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        dead = [n for n, p in slurm.pids.items() if not _alive(p)]
        if dead:
            break
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in (slurm.folder / "log").glob("*"))
    stop(slurm)
    raise RuntimeError(f"test Slurm: {what} did not come up\n{logs}")


def _ok(*argv: str, env: Mapping[str, str] | None = None) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=5, env=env).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours counts as gone
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def start_multinode(folder: Path, count: int = 2) -> Slurm:
    """A cluster of `count` nodes on this machine, each slurmd in a network namespace of its own with its own
    address (tests/netns_service.py), slurmctld on the bridge's host address: jobs on different nodes reach each
    other over the network, on the same fixed ports, as on a real cluster (slurmd's multiple-node mode, which
    Debian's build also supports, gives every node 127.0.0.1 and one set of ports). Nodes are tpn0, tpn1, ..."""
    network = netns_service.create(count)
    nodes = [Node(f"tpn{i}", net.addr, 6818, NODE_CPUS, net) for i, net in enumerate(network.nodes)]
    try:
        slurm = start(folder, nodes, ctld_addr=network.gateway)
    except BaseException:
        netns_service.remove(network)
        raise
    slurm.network = network
    return slurm


def start(folder: Path, nodes: list[Node] | None = None, *, ctld_addr: str = "127.0.0.1") -> Slurm:
    """Bring the cluster up in `folder` (fresh or empty): munge -> MariaDB -> slurmdbd -> slurmctld -> slurmd.
    `ctld_addr` is where slurmctld is reached (the bridge's address when nodes run in namespaces)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)  # munged's socket must be reachable by every job's user
    for sub in ("state", "spool", "log", "mysql"):
        (folder / sub).mkdir(exist_ok=True)
    host = socket.gethostname().split(".")[0]
    nodes = [Node(n.name, n.addr, n.port or free_port(), n.cpus, n.netns) for n in (nodes or [Node(host)])]
    for n in nodes:
        (folder / "spool" / n.name).mkdir(exist_ok=True)
    ctld_port, dbd_port, db_port = free_port(), free_port(), free_port()
    slurm = Slurm(folder=folder, conf=folder / "slurm.conf", nodes=nodes)
    conf = slurm_conf(folder, nodes, ctld_port=ctld_port, dbd_port=dbd_port, host=host, ctld_addr=ctld_addr)
    slurm.conf.write_text(conf)
    env = {**os.environ, **slurm.env}

    key = folder / "munge.key"
    subprocess.run(["mungekey", "-c", "-f", "-k", str(key)], check=True, capture_output=True)
    sock = str(folder / "munge.sock")
    _spawn(
        slurm,
        "munged",
        ["munged", "-F", "--force", f"--socket={sock}", f"--key-file={key}", f"--pid-file={folder}/munged.pid",
         f"--log-file={folder}/log/munged.log", f"--seed-file={folder}/munged.seed"],
    )  # fmt: skip
    _until("munged", lambda: _ok("munge", "-S", sock, "-n"), slurm, 20)

    db = folder / "mysql"
    subprocess.run(
        ["mariadb-install-db", "--user=root", f"--datadir={db}", "--auth-root-authentication-method=socket",
         "--skip-test-db", "--innodb-log-file-size=16M"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    db_sock = str(folder / "mysqld.sock")
    _spawn(
        slurm,
        "mariadbd",
        ["mariadbd", "--user=root", f"--datadir={db}", f"--socket={db_sock}", f"--pid-file={folder}/mysqld.pid",
         "--bind-address=127.0.0.1", f"--port={db_port}", f"--log-error={folder}/log/mariadb.err",
         "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--skip-log-bin",
         "--performance-schema=OFF", "--innodb-lock-wait-timeout=900"],
    )  # fmt: skip
    _until("MariaDB", lambda: _ok("mariadb", f"--socket={db_sock}", "-e", "select 1"), slurm, 60)
    grants = (
        "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw'; "
        "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
    )
    subprocess.run(["mariadb", f"--socket={db_sock}", "-e", grants], check=True, capture_output=True, timeout=30)
    dbd_conf = folder / "slurmdbd.conf"  # slurmdbd reads it beside SLURM_CONF, and refuses it unless 0600
    dbd_conf.touch(mode=0o600)
    dbd_conf.write_text(
        "\n".join(
            [
                "AuthType=auth/munge",
                f"AuthInfo=socket={sock}",
                f"DbdHost={host}",
                "DbdAddr=127.0.0.1",
                f"DbdPort={dbd_port}",
                "SlurmUser=root",
                f"PidFile={folder}/slurmdbd.pid",
                f"LogFile={folder}/log/slurmdbd.log",
                "StorageType=accounting_storage/mysql",
                "StorageHost=127.0.0.1",
                f"StoragePort={db_port}",
                "StorageUser=slurm",
                "StoragePass=slurmpw",
                "StorageLoc=slurm_acct_db",
                "",
            ]
        )
    )
    _spawn(slurm, "slurmdbd", ["slurmdbd", "-D"], env)
    _until("slurmdbd", lambda: _ok("timeout", "5", "sacctmgr", "-n", "list", "cluster", env=env), slurm, 180)
    subprocess.run(["sacctmgr", "-i", "add", "cluster", CLUSTER], capture_output=True, env=env, timeout=30)

    _spawn(slurm, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(slurm.conf)], env)
    _until("slurmctld", lambda: _ok("timeout", "5", "scontrol", "ping", env=env), slurm, 60)
    for n in nodes:
        # in a namespace through nsenter --net (ip netns exec remounts /sys: slurmd then finds no cgroup mount)
        prefix = netns_service.enter(n.netns) if n.netns else []
        _spawn(slurm, f"slurmd-{n.name}", [*prefix, "slurmd", "-D", "-f", str(slurm.conf), "-N", n.name], env)

    def idle() -> bool:
        out = subprocess.run(
            ["timeout", "5", "sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=env
        ).stdout.split()
        return len(out) == len(nodes) and all(s == "idle" for s in out)

    _until("slurmd", idle, slurm, 60)
    return slurm


def stop(slurm: Slurm) -> None:
    """Cancel the jobs still there (a job step outlives a slurmd that is stopped under it, Ray processes and all),
    then stop every daemon this fixture started, by pid, in reverse start order (SIGKILL after 10 s), and remove a
    multi-node cluster's namespaces."""
    if "slurmctld" in slurm.pids:
        _cancel_all(slurm)
    for name, pid in reversed(list(slurm.pids.items())):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        slurm.pids.pop(name, None)
    if slurm.network is not None:
        netns_service.remove(slurm.network)
        slurm.network = None


def _cancel_all(slurm: Slurm, timeout_s: float = 30.0) -> None:
    env = {**os.environ, **slurm.env}
    jobs = subprocess.run(
        ["timeout", "5", "squeue", "-h", "-o", "%A"], capture_output=True, text=True, env=env
    ).stdout.split()
    if not jobs:
        return
    subprocess.run(["timeout", "10", "scancel", *jobs], capture_output=True, env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = subprocess.run(["timeout", "5", "squeue", "-h", "-o", "%A"], capture_output=True, text=True, env=env)
        if left.returncode == 0 and not left.stdout.split():
            return
        time.sleep(0.5)


# ---- what tests ask the cluster (through SLURM_CONF in their environment) ----


def sacct(job_id: str) -> tuple[str, str]:
    """(State, ExitCode) of a job as Slurm's accounting records them."""
    deadline = time.monotonic() + 30  # slurmctld hands records to slurmdbd asynchronously: a moment's lag
    while True:
        out = subprocess.run(
            ["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State,ExitCode"], capture_output=True, text=True
        ).stdout
        rows = [line.split("|") for line in out.splitlines() if line.split("|")[0] == job_id]
        if rows:
            return rows[0][1], rows[0][2]
        if time.monotonic() > deadline:
            raise AssertionError(f"sacct does not know {job_id}: {out!r}")
        time.sleep(0.5)


def release_requeued(job_id: str, timeout_s: float = 60) -> None:
    """Slurm holds a requeued job for two minutes (EligibleTime) before it may start again; an admin's
    `scontrol update StartTime=now` a moment later lets it start at once, which keeps a test short."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True).stdout
        if "Restarts=0 " not in info and "JobState=PENDING" in info:
            # not at once: slurmd refuses to start a job in the second its last attempt's credential was revoked,
            # and the killed attempt's processes (its W&B service among them: "run ID ... is in use") need a moment
            # to exit, which Slurm's own two-minute hold always gives them
            time.sleep(10)
            subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], check=True)
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} was not requeued: {info}")
