"""Read what W&B logged in offline mode back from its run file (`offline-run-*/run-<id>.wandb`).

The file is a LevelDB-style log (32 KiB blocks of checksummed chunks) after a 7-byte W&B header; each record is a
`wandb.proto.wandb_internal_pb2.Record`. wandb 0.31 ships no Python reader any more (its core is in Go), so the tests
read it here, to check the history really reached W&B.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

_HEADER = 7  # b":W&B" + magic (2 bytes) + version (1 byte)
_BLOCK = 32 * 1024
_CHUNK_HEADER = 7  # crc32 (4) + length (2) + type (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def records(path: Path) -> list[Any]:
    """All protobuf records of an offline run file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out: list[Any] = []
    pos, pending = _HEADER, b""
    while pos + _CHUNK_HEADER <= len(data):
        left_in_block = _BLOCK - (pos % _BLOCK)
        if left_in_block < _CHUNK_HEADER:  # block trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _CHUNK_HEADER])
        chunk = data[pos + _CHUNK_HEADER : pos + _CHUNK_HEADER + length]
        pos += _CHUNK_HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def history(path: Path) -> list[dict[str, Any]]:
    """The logged history rows ({key: value, ..., '_step': N}) of an offline run file."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") != "history":
            continue
        row = {}
        for item in record.history.item:
            key = item.key or "/".join(item.nested_key)
            row[key] = json.loads(item.value_json)
        rows.append(row)
    return rows


def run_ids(path: Path) -> set[str]:
    """The run ids a run file's `run` records name."""
    return {r.run.run_id for r in records(path) if r.WhichOneof("record_type") == "run"}


def config_text(path: Path) -> str:
    """Everything the run file's config records hold, as text (to check no secret reached W&B)."""
    return "\n".join(str(r.config) for r in records(path) if r.WhichOneof("record_type") == "config")
