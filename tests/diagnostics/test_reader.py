"""The one metrics reader: incremental (nothing read twice), across attempts archived by a resume, and through a
file replaced by a grown copy (how the SSH launcher syncs metrics back)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from trainer_platform.runs.metrics import MetricsReader, archive


def _line(step: int) -> str:
    return json.dumps({"step": step, "data": {"loss": 1.0 / step}}) + "\n"


def test_reads_only_what_was_added(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    assert reader.read() == []
    path.write_text(_line(1) + _line(2))
    assert [r["step"] for r in reader.read()] == [1, 2]
    with path.open("a") as f:
        f.write(_line(3) + _line(4)[:10])  # a line the job is still writing
    assert [r["step"] for r in reader.read()] == [3]
    with path.open("a") as f:
        f.write(_line(4)[10:])
    assert [r["step"] for r in reader.read()] == [4]
    assert reader.read() == []
    assert reader.bytes_read == path.stat().st_size


def test_follows_a_resume_and_a_replaced_copy(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    path.write_text(_line(1) + _line(2))
    assert [r["step"] for r in reader.read()] == [1, 2]
    with path.open("a") as f:
        f.write(_line(3))
    archive(path)  # a resume: the attempt is renamed, the new one starts empty
    path.write_text(_line(3))
    assert [r["step"] for r in reader.read()] == [3, 3]  # the rest of attempt 1, then attempt 2
    copy = tmp_path / "copy.tmp"
    copy.write_text(path.read_text() + _line(4))
    os.replace(copy, path)  # a grown copy (ssh sync): read on from the old offset
    assert [r["step"] for r in reader.read()] == [4]
    path.write_text(_line(9))  # truncated in place: a new stream
    assert [r["step"] for r in reader.read()] == [9]
