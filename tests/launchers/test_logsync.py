"""A run's files sent back through its job's output (launchers/logsync.py): the demultiplexer on its own (records
cut across reads, the whole log read again, lines that look like records but are not ours), the local copies it
feeds (launchers/jobstate.py: store_synced), and the rendered Ray entrypoint run by bash with its forwarder (no Ray:
the entrypoint's output is what Ray would hand back)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from launchers.jobstate import store_synced
from launchers.logsync import CHECKPOINT_POINTER, JOB_STATE, Demux, marker
from launchers.render import render_ray_entry
from trainer_platform.job import VerlJob

TAG = "0123abcd"
M = marker(TAG)


def _metric(step: int) -> str:
    return json.dumps({"step": step, "data": {"train/loss": 1.0 / step}})


# the job's output as Ray hands it back: its own lines, our records, a record that cut one of its lines in two, a
# line that looks like a record but carries another tag, and one that carries ours but is no record
LOG = (
    f"{M}where - " + json.dumps({"host": "node-1", "run_dir": "/tmp/ray/wd"}) + "\n"
    "epoch 1\n"
    f"{M}line metrics.jsonl {_metric(1)}\n"
    f"progress 50%{M}line metrics.jsonl {_metric(2)}\n"
    " and done\n"
    '[tp-sync ffff0000] line metrics.jsonl {"step": 99, "data": {}}\n'
    f"{M}bogus metrics.jsonl x\n"
    f"{M}file {CHECKPOINT_POINTER} " + json.dumps("2") + "\n"
    f"{M}line diagnostics.jsonl " + json.dumps({"rule": "non_finite", "step": 2}) + "\n"
    f"{M}file {JOB_STATE} " + json.dumps('{"state": "succeeded", "exit_code": 0}\n') + "\n"
    "tail without newline"
)
OUTPUT = (
    "epoch 1\nprogress 50% and done\n"
    '[tp-sync ffff0000] line metrics.jsonl {"step": 99, "data": {}}\n'
    f"{M}bogus metrics.jsonl x\n"
)


def test_records_are_taken_out_and_the_rest_is_the_jobs_output() -> None:
    synced = Demux(TAG).feed(LOG)
    assert synced.output == OUTPUT  # the unended last line waits for its newline
    assert synced.appended == {
        "metrics.jsonl": f"{_metric(1)}\n{_metric(2)}\n",
        "diagnostics.jsonl": json.dumps({"rule": "non_finite", "step": 2}) + "\n",
    }
    assert synced.replaced == {CHECKPOINT_POINTER: "2", JOB_STATE: '{"state": "succeeded", "exit_code": 0}\n'}
    assert synced.where == {"host": "node-1", "run_dir": "/tmp/ray/wd"}
    assert Demux(TAG).feed(LOG, final=True).output == OUTPUT + "tail without newline"


@pytest.mark.parametrize("size", [1, 2, 7, len(M) - 1, len(M) + 3, 64])
def test_records_cut_across_reads(size: int) -> None:
    demux = Demux(TAG)
    for at in range(0, len(LOG), size):
        demux.feed(LOG[at : at + size])
    assert demux.feed("", final=True) == Demux(TAG).feed(LOG, final=True)


def test_a_record_not_ended_yet_is_held_back_then_taken_whole() -> None:
    cut = LOG.index("progress 50%") + len("progress 50%") + len(M) + 10  # inside the record that cuts the line
    first = Demux(TAG).feed(LOG[:cut])
    assert first.output == "epoch 1\n" and first.appended == {"metrics.jsonl": f"{_metric(1)}\n"}
    again = Demux(TAG).feed(LOG)  # the next status reads the whole log again
    assert again.appended["metrics.jsonl"] == f"{_metric(1)}\n{_metric(2)}\n"


def test_without_a_tag_everything_is_output() -> None:
    assert Demux(None).feed(LOG, final=True).output == LOG
    assert Demux(None).feed(LOG).appended == {}


def test_an_appended_file_started_again() -> None:
    text = f"{M}line metrics.jsonl {_metric(1)}\n{M}restart metrics.jsonl -\n{M}line metrics.jsonl {_metric(5)}\n"
    assert Demux(TAG).feed(text).appended == {"metrics.jsonl": f"{_metric(5)}\n"}


def test_repeated_syncs_never_duplicate_and_keep_the_earlier_attempt(tmp_path: Path) -> None:
    path = tmp_path / "diagnostics.jsonl"
    path.write_bytes(b"earlier attempt\n")
    base = path.stat().st_size
    first = Demux(TAG).feed(LOG[: LOG.index("diagnostics.jsonl") + 30])  # the anomaly's line not ended yet
    assert not store_synced(path, first.appended.get("diagnostics.jsonl", "").encode(), base)
    whole = Demux(TAG).feed(LOG).appended["diagnostics.jsonl"].encode()
    inode = path.stat().st_ino
    assert store_synced(path, whole, base)
    assert path.stat().st_ino == inode  # appended: a reader following the file keeps its place
    for _ in range(3):  # read again after a restart, from another process
        assert not store_synced(path, whole, base)
    assert path.read_bytes() == b"earlier attempt\n" + whole
    assert store_synced(path, b"other\n", base)  # a copy that differs is replaced whole
    assert path.read_bytes() == b"earlier attempt\nother\n"
    assert not store_synced(tmp_path / "absent", b"")  # nothing sent: no empty file
    assert not (tmp_path / "absent").exists()
    assert store_synced(tmp_path / "checkpoints" / "p.txt", b"2")  # its folder is made
    assert (tmp_path / "checkpoints" / "p.txt").read_text() == "2"


# the job: metrics in pieces (a line is not whole until its newline), output cut mid-line, a checkpoint pointer, a
# line of its own that mimics a record, then an exit code
JOB = """
    import json, os, sys, time
    path = os.path.join(os.environ["TP_RUN_DIR"], "metrics.jsonl")
    for step in range(1, 5):
        line = json.dumps({"step": step, "data": {"train/loss": 1.0 / step}}) + "\\n"
        with open(path, "a") as f:
            f.write(line[:10]); f.flush(); time.sleep(0.1); f.write(line[10:])
        sys.stdout.write(f"step {step} "); sys.stdout.flush(); time.sleep(0.15); print("done")
    os.makedirs("checkpoints", exist_ok=True)
    with open("checkpoints/latest_checkpointed_iteration.txt", "w") as f:
        f.write("4")
    print("[tp-sync 0123abcd-not-ours] line metrics.jsonl {}")
    sys.exit(3)
"""


@pytest.mark.timeout(60)
def test_the_ray_entrypoint_sends_the_runs_files_and_its_end_through_its_output(tmp_path: Path) -> None:
    job = VerlJob(entry_point="x", argv=("python", "-c", textwrap.dedent(JOB)), env={"TP_RUN_DIR": "${TP_RUN_DIR}"})
    work = tmp_path / "working_dir"  # what Ray would upload and run the entrypoint in
    work.mkdir()
    for name, text in render_ray_entry(job, run_name="r", run_dir=None, sync_back=True, python=sys.executable).items():
        (work / name).write_text(text)
    res = subprocess.run(
        ["bash", "tp_ray_entry.sh", TAG], cwd=work, capture_output=True, text=True, timeout=50, check=False
    )
    assert res.returncode == 3 and res.stderr == "", res.stderr
    synced = Demux(TAG).feed(res.stdout, final=True)
    assert synced.output == "".join(f"step {s} done\n" for s in range(1, 5)) + (
        "[tp-sync 0123abcd-not-ours] line metrics.jsonl {}\n"
    )
    assert synced.appended == {"metrics.jsonl": (work / "metrics.jsonl").read_text()}
    assert [json.loads(line)["step"] for line in synced.appended["metrics.jsonl"].splitlines()] == [1, 2, 3, 4]
    assert synced.replaced[CHECKPOINT_POINTER] == "4"
    record = json.loads(synced.replaced[JOB_STATE])
    assert (record["state"], record["exit_code"]) == ("failed", 3) and record["finished"]
    assert synced.where == {"host": record["host"], "run_dir": str(work.resolve())}
    assert res.stdout.rstrip("\n").splitlines()[-1].startswith(f"{M}file {JOB_STATE} ")  # its end comes last


def test_without_sync_back_nothing_is_shipped_or_forwarded() -> None:
    job = replace(VerlJob(entry_point="x", argv=("python", "-c", "pass")))
    files = render_ray_entry(job, run_name="r", run_dir="/shared/runs/r", sync_back=False)
    assert list(files) == ["tp_ray_entry.sh"]
    assert "tp_logsync" not in files["tp_ray_entry.sh"] and "TP_RUN_DIR=/shared/runs/r" in files["tp_ray_entry.sh"]
