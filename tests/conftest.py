"""Shared fixtures: real data files in verl's formats, an isolated cache, the repo root."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import netns_service
import pytest
import ray_service

import slurm_service
import sshd_service

REPO_ROOT = Path(__file__).resolve().parent.parent

# A suite started as a background job of a non-interactive shell (`bash .ci/run &`, some CI runners) inherits SIGINT
# ignored, and so would every train.py it starts: the Ctrl-C tests (Slurm follow, local launcher) need the default
# disposition a terminal gives.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _test_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    """W&B never goes online from a test; the platform cache is shared across the session (built once)."""
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.pop("WANDB_API_KEY", None)
    os.environ.setdefault("TRAINER_PLATFORM_CACHE", str(Path.home() / ".cache" / "trainer_platform"))


def run_train(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`python train.py ARGS` as a user runs it, in `cwd`, with os.environ plus `env`; fails the test on a non-zero
    exit unless `check` is False."""
    res = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check:
        assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-4000:]
    return res


def run_dir_of(res: subprocess.CompletedProcess[str]) -> Path:
    """The run directory train.py names on its last line."""
    return Path(res.stdout.strip().splitlines()[-1].removeprefix("run dir: "))


def write_gsm8k_like(folder: Path, rows: int = 8) -> Path:
    """Parquet files in verl's RL format, shaped like verl's examples/data_preprocess/gsm8k.py output."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        records = [
            {
                "data_source": "openai/gsm8k",
                "prompt": [
                    {
                        "role": "user",
                        "content": f"Tom has {i} apples and buys 3 more. How many? "
                        'Let\'s think step by step and output the final answer after "####".',
                    }
                ],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": str(i + 3)},
                "extra_info": {"split": split, "index": i},
            }
            for i in range(rows)
        ]
        pd.DataFrame(records).to_parquet(folder / f"{split}.parquet")
    return folder


@pytest.fixture(scope="session")
def gsm8k_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GSM8K-shaped files with enough rows for the presets' largest batch (dry runs check rows against batches)."""
    return write_gsm8k_like(tmp_path_factory.mktemp("gsm8k"), rows=1024)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The built-in tiny model, materialised once per session (offline, seconds)."""
    from trainer_platform.models.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def sft_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny SFT run (verl's engine trainer: 2 steps, checkpointed), trained once per session. Read it,
    never change it: tests that need to modify a run copy it first."""
    cwd = tmp_path_factory.mktemp("sft_run")
    return run_dir_of(run_train("algorithm=sft", "data=tiny_sft", "name=sft", "train.steps=2", cwd=cwd))


@pytest.fixture(scope="session")
def grpo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the default job exactly as `python train.py` runs it (GRPO through verl's main_ppo, its
    DEFAULT_JOB_STEPS steps, checkpointed), trained once per session. Read it, never change it: tests that need to
    modify a run copy it first."""
    cwd = tmp_path_factory.mktemp("grpo_run")
    return run_dir_of(run_train("name=grpo", cwd=cwd))


DEFAULT_JOB_STEPS = 20  # the default job's length: train.steps in conf/data/tiny_math.yaml


# ---- a real sshd on 127.0.0.1 for the ssh launcher (tests/sshd_service.py), started once per session ----


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


# ---- a real Ray head on loopback for the ray launcher (tests/ray_service.py), started once per session ----


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ray_service.RayHead]:
    for key, value in ray_service.CLIENT_ENV.items():
        os.environ[key] = value
    head = ray_service.start(Path(tempfile.mkdtemp(prefix="tpray", dir="/tmp")))
    yield head
    ray_service.stop(head)


# ---- a real Slurm on 127.0.0.1 for the slurm launcher (tests/slurm_service.py), started once per session ----


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[slurm_service.Slurm]:
    """munged, MariaDB, slurmdbd, slurmctld and slurmd from their own configs in a temp folder; SLURM_CONF points
    every client of this session (tests, launchers, subprocesses) at it."""
    reason = slurm_service.unavailable()
    if reason:
        pytest.skip(reason)
    cluster = slurm_service.start(Path(tempfile.mkdtemp(prefix="tpslurm", dir="/tmp")))
    old = os.environ.get("SLURM_CONF")
    os.environ.update(cluster.env)
    yield cluster
    slurm_service.stop(cluster)
    shutil.rmtree(cluster.folder, ignore_errors=True)
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old


@pytest.fixture(scope="module")
def slurm_two_nodes() -> Iterator[slurm_service.Slurm]:
    """A real two-node Slurm on this machine: each slurmd in a network namespace of its own, with its own address
    (tests/netns_service.py). Module-scoped: SLURM_CONF points at it during the multi-node tests only, and is
    restored after them (the single-node `slurm_cluster` of other tests may be up meanwhile)."""
    reason = slurm_service.unavailable() or netns_service.unavailable()
    if reason:
        pytest.skip(reason)
    cluster = slurm_service.start_multinode(Path(tempfile.mkdtemp(prefix="tpslurm2n", dir="/tmp")))
    old = os.environ.get("SLURM_CONF")
    os.environ.update(cluster.env)
    yield cluster
    slurm_service.stop(cluster)
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old
