"""launcher.time=null is the partition's time limit (launchers/slurm_time.py): scontrol's partition lines parsed
(the lines below are real output of `scontrol -o show partition` on the test Slurm 22.05), the limit chosen
(DefaultTime, else MaxTime, else 0 = none), a dry run's sbatch saying where it will come from, and against the real
Slurm (tests/slurm_service.py): the job's TimeLimit is the partition's, never submitit's 5 minutes."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import slurm_service
from launcher_contract import new_run, python_job
from launchers.options import SlurmOptions
from launchers.render import SBATCH, TIME_FROM_PARTITION, render_sbatch, runner_command, sbatch_parameters
from launchers.slurm import SlurmLauncher
from launchers.slurm_time import (
    NO_LIMIT,
    choose_partition,
    parse_partitions,
    partition_minutes,
    partition_time,
    resolve_time_min,
)
from trainer_platform.errors import SpecError

_TAIL = (
    "DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED {max} MinNodes=0 LLN=NO "
    "MaxCPUsPerNode=UNLIMITED Nodes=vm PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO "
    "OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=16 TotalNodes=1 SelectTypeParameters=NONE "
    "JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED TRES=cpu=16,mem=23081M,node=1,billing=16 "
)


def _line(name: str, default: str, default_time: str, max_time: str) -> str:
    head = (
        f"PartitionName={name} AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default={default} "
        f"QoS=N/A DefaultTime={default_time} "
    )
    return head + _TAIL.format(max=f"MaxTime={max_time}")


SCONTROL = "\n".join(
    [
        _line("debug", "YES", "NONE", "UNLIMITED"),
        _line("timed", "NO", "00:30:00", "1-00:00:00"),
        _line("maxonly", "NO", "NONE", "01:30:00"),
        _line("long", "NO", "2-12:31:00", "UNLIMITED"),
        "",
    ]
)


def test_partition_lines_parse_into_their_limits() -> None:
    parts = parse_partitions(SCONTROL)
    assert [p["PartitionName"] for p in parts] == ["debug", "timed", "maxonly", "long"]
    assert parts[0]["TRES"] == "cpu=16,mem=23081M,node=1,billing=16"  # a value holding '=' stays whole
    limits = {p["PartitionName"]: partition_time(p) for p in parts}
    assert (limits["debug"].default_min, limits["debug"].max_min, limits["debug"].limit_min) == (None, None, NO_LIMIT)
    assert (limits["timed"].default_min, limits["timed"].max_min, limits["timed"].limit_min) == (30, 1440, 30)
    assert limits["maxonly"].limit_min == 90  # no DefaultTime: MaxTime
    assert limits["long"].limit_min == 2 * 1440 + 12 * 60 + 31


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        ("UNLIMITED", None),
        ("INFINITE", None),
        ("NONE", None),
        ("1-00:00:00", 1440),
        ("00:30:00", 30),
        ("30:00", 30),  # Slurm's MM:SS
        ("2-12", 2 * 1440 + 12 * 60),
        ("45", 45),
        ("00:00:30", 1),  # rounded up to whole minutes
    ],
)
def test_partition_time_formats(value: str, minutes: int | None) -> None:
    assert partition_minutes(value) == minutes


def test_an_unreadable_limit_names_launcher_time() -> None:
    with pytest.raises(ValueError):
        partition_minutes("soon")
    with pytest.raises(SpecError) as err:
        partition_time({"PartitionName": "odd", "DefaultTime": "soon", "MaxTime": "UNLIMITED"})
    assert err.value.key == "launcher.time" and "'odd'" in str(err.value)


def test_the_partition_is_the_named_one_or_the_default() -> None:
    parts = parse_partitions(SCONTROL)
    assert choose_partition(parts, None)["PartitionName"] == "debug"
    assert choose_partition(parts, "maxonly")["PartitionName"] == "maxonly"
    with pytest.raises(SpecError) as err:
        choose_partition(parts, "timd")
    assert err.value.key == "launcher.partition" and "did you mean 'timed'" in str(err.value)
    with pytest.raises(SpecError) as err:
        choose_partition(parts[1:], None)
    assert err.value.key == "launcher.partition" and "no default partition" in str(err.value)


def test_an_explicit_time_is_not_asked_of_slurm() -> None:
    assert resolve_time_min(90, "nosuchpartition", env={"PATH": "/nonexistent"}) == 90


def test_a_slurm_that_cannot_be_asked_is_one_clear_error() -> None:
    with pytest.raises(SpecError) as err:
        resolve_time_min(None, None, env={"PATH": "/nonexistent"})
    assert err.value.key == "launcher.time" and "set launcher.time" in err.value.hint


def test_sbatch_time_lines() -> None:
    """A dry run (nothing resolved) has no --time line, never submitit's 5, and says where the limit comes from;
    a resolved limit is written as is, 0 (an UNLIMITED partition) too."""
    folder = "/shared/runs/x/.slurm"

    def text(time_min: int | None) -> list[str]:
        params = sbatch_parameters(job_name="x", nnodes=1, gpus_per_node=0, time_min=time_min)
        return render_sbatch(params, folder=folder, command=runner_command("python", "/code", folder)).splitlines()

    dry = text(None)
    assert not [line for line in dry if line.startswith("#SBATCH --time")] and TIME_FROM_PARTITION in dry
    assert "#SBATCH --time=0" in text(0) and TIME_FROM_PARTITION not in text(0)
    assert "#SBATCH --time=90" in text(90)


# ---- against the real Slurm -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _partitions(slurm: slurm_service.Slurm, **limits: str) -> Iterator[None]:
    """Extra partitions over the test node for the duration (name -> scontrol's DefaultTime/MaxTime words)."""
    node = slurm.nodes[0].name
    try:
        for name, words in limits.items():
            subprocess.run(["scontrol", "create", f"PartitionName={name}", f"Nodes={node}", *words.split()], check=True)
        yield
    finally:
        for name in limits:
            subprocess.run(["scancel", f"--partition={name}"], capture_output=True)
            subprocess.run(["scontrol", "delete", f"PartitionName={name}"], capture_output=True)


def _time_limit(job_id: str) -> str:
    info = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True).stdout
    return next(w.removeprefix("TimeLimit=") for w in info.split() if w.startswith("TimeLimit="))


@pytest.mark.timeout(120)
def test_null_time_submits_the_partitions_limit(slurm_cluster: slurm_service.Slurm, tmp_path: Path) -> None:
    """What Slurm gave each job, as scontrol shows it right after submit (the jobs are not run: the limit is the
    request's, and a --time=0 job's run is covered by test_slurm_launcher's USR2 test)."""
    job = python_job("print('ok')")
    limits = {"tptimed": "DefaultTime=00:20:00 MaxTime=1-00:00:00", "tpmax": "MaxTime=45 Hidden=YES"}
    with _partitions(slurm_cluster, **limits):
        cases = {None: ("UNLIMITED", 0), "tptimed": ("00:20:00", 20), "tpmax": ("00:45:00", 45)}
        for partition, (shown, minutes) in cases.items():
            run = new_run(tmp_path, job, name=f"t-{partition}")
            handle = SlurmLauncher(SlurmOptions(name="slurm", partition=partition)).submit([job], [run])[0]
            job_id = str(handle.data["job_id"])
            subprocess.run(["scontrol", "hold", job_id], capture_output=True)  # it need not run
            assert _time_limit(job_id) == shown, (partition, _time_limit(job_id))
            assert f"#SBATCH --time={minutes}" in (run.path / SBATCH).read_text().splitlines()
            subprocess.run(["scancel", job_id], check=True)
        bad = new_run(tmp_path, job, name="bad")
        with pytest.raises(SpecError) as err:
            SlurmLauncher(SlurmOptions(name="slurm", partition="tptime")).submit([job], [bad])
        assert err.value.key == "launcher.partition" and "did you mean 'tptimed'" in str(err.value)
        assert bad.load_handle() is None


def test_dry_run_and_bad_values_through_train_py(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dry run asks nothing of Slurm: its tp_sbatch.sh says where the limit will come from; a bad launcher.time
    exits 2 naming the key, writing nothing."""
    from trainer_platform import entry

    monkeypatch.chdir(tmp_path)
    sft = ["algorithm=sft", "data=tiny_sft", "launcher=slurm"]
    assert entry.main([*sft, "dry_run=true"]) == 0
    out = capsys.readouterr().out
    folder = Path(next(ln for ln in out.splitlines() if ln.startswith("dry run files: ")).split(": ", 1)[1])
    sbatch = (folder / SBATCH).read_text().splitlines()
    assert TIME_FROM_PARTITION in sbatch and not [ln for ln in sbatch if ln.startswith("#SBATCH --time")]
    before = sorted(p for p in tmp_path.rglob("*"))
    for bad in ("1h", "0"):
        assert entry.main([*sft, f"launcher.time={bad}"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: launcher.time: ") and "Traceback" not in err, err
    assert sorted(p for p in tmp_path.rglob("*")) == before
