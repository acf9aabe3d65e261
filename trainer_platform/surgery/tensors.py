"""Streaming safetensors: read tensors one at a time from memory-mapped shards, write shards tensor by tensor.

A `Checkpoint` parses the shard headers only; `tensor(name)` maps just that tensor's bytes (zero-copy, released
when the tensor is dropped). `write_checkpoint` knows every output tensor's name, shape and dtype up front, so it
writes each shard's header first and then streams the data chunk by chunk: peak memory is a few chunks plus the
tensors an operation holds, never a whole model.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer_platform.errors import SpecError

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
INDEX_NAME = "model.safetensors.index.json"
# elements per chunk streamed through an operation: 1 MiB of float32, so that a chunk and its temporaries
# stay in the CPU caches
CHUNK_ELEMENTS = 256 * 1024


@dataclass(frozen=True)
class TensorInfo:
    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    # absolute byte range of the data in `file`
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def read_header(path: Path) -> dict[str, TensorInfo]:
    """The tensors of one safetensors file, from its header alone."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SpecError(str(path), "is not a safetensors file (too short)", "re-create or re-download it")
        (size,) = struct.unpack("<Q", raw)
        try:
            header = json.loads(f.read(size))
        except ValueError:
            raise SpecError(str(path), "has a corrupt safetensors header", "re-create or re-download it") from None
    base = 8 + size
    out = {}
    for name, item in header.items():
        if name == "__metadata__":
            continue
        if item["dtype"] not in DTYPES:
            raise SpecError(str(path), f"tensor {name} has unsupported dtype {item['dtype']}", "convert it first")
        begin, end = item["data_offsets"]
        out[name] = TensorInfo(path, DTYPES[item["dtype"]], tuple(item["shape"]), base + begin, base + end)
    return out


class Checkpoint:
    """An HF model directory's weights (one safetensors file or shards with an index), read lazily."""

    def __init__(self, path: Path) -> None:
        self.path = path
        index = path / INDEX_NAME
        if index.is_file():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        else:
            files = sorted(p.name for p in path.glob("*.safetensors"))
        if not files:
            hint = "point at a folder with *.safetensors (a .bin checkpoint must be converted first)"
            raise SpecError(str(path), "holds no safetensors weights", hint)
        self.infos: dict[str, TensorInfo] = {}
        for name in files:
            if not (path / name).is_file():
                raise SpecError(str(path / name), "is listed in the index but missing", "re-copy the checkpoint")
            self.infos.update(read_header(path / name))

    @property
    def names(self) -> list[str]:
        return list(self.infos)

    @property
    def files(self) -> list[Path]:
        return sorted({info.file for info in self.infos.values()})

    def tensor(self, name: str) -> torch.Tensor:
        """The tensor `name`, backed by a private memory map of its bytes only (nothing is copied)."""
        info = self.infos[name]
        return _mapped(info.file, info.start, info.end, info.dtype, info.shape)

    def rows(self, name: str, rows: slice) -> torch.Tensor:
        """Rows `rows` of tensor `name`, backed by a memory map of just those rows (released with the tensor)."""
        info = self.infos[name]
        if not info.shape:
            return self.tensor(name)
        r0, r1, _ = rows.indices(info.shape[0])
        row_bytes = info.nbytes // max(1, info.shape[0])
        shape = (max(0, r1 - r0), *info.shape[1:])
        return _mapped(info.file, info.start + r0 * row_bytes, info.start + r1 * row_bytes, info.dtype, shape)


def _mapped(file: Path, start: int, end: int, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    if end <= start:
        return torch.empty(shape, dtype=dtype)
    offset = start - start % mmap.ALLOCATIONGRANULARITY
    with open(file, "rb") as f:
        mapped = mmap.mmap(f.fileno(), end - offset, access=mmap.ACCESS_COPY, offset=offset)
    return torch.frombuffer(mapped, dtype=dtype, offset=start - offset, count=_numel(shape)).view(shape)


class Lazy:
    """A checkpoint tensor read by row ranges, each through its own short-lived memory map: an operation streaming
    a big tensor holds only the chunk it works on (`t[rows]`), never the whole mapping."""

    def __init__(self, ck: Checkpoint, name: str) -> None:
        self.ck, self.name = ck, name
        self.shape = ck.infos[name].shape
        self.dtype = ck.infos[name].dtype

    def dim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return _numel(self.shape)

    def __getitem__(self, rows: slice) -> torch.Tensor:
        return self.ck.rows(self.name, rows)

    def reshape(self, *shape: int) -> torch.Tensor:
        return self.ck.tensor(self.name).reshape(*shape)


# what the streaming merges read: an in-memory tensor or a checkpoint tensor read by rows
Source = torch.Tensor | Lazy


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@dataclass(frozen=True)
class OutTensor:
    """One tensor of the output: its shape and dtype, and a function streaming its data as row chunks."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    chunks: Callable[[], Iterator[torch.Tensor]]

    @property
    def nbytes(self) -> int:
        return _numel(self.shape) * torch.empty((), dtype=self.dtype).element_size()


def row_chunks(shape: tuple[int, ...]) -> list[slice]:
    """Slices over the first dimension with about CHUNK_ELEMENTS elements each (one slice for 0-d tensors)."""
    if not shape:
        return [slice(None)]
    row = max(1, _numel(shape[1:]))
    step = max(1, CHUNK_ELEMENTS // row)
    return [slice(i, min(i + step, shape[0])) for i in range(0, max(shape[0], 1), step)]


def plan_shards(tensors: list[OutTensor], max_shard_bytes: int) -> list[list[OutTensor]]:
    """Group tensors in order into shards of at most `max_shard_bytes` (a bigger tensor gets a shard of its own)."""
    shards: list[list[OutTensor]] = [[]]
    size = 0
    for t in tensors:
        if shards[-1] and size + t.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return shards


def shard_names(n: int) -> list[str]:
    return [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]


def write_checkpoint(out_dir: Path, tensors: list[OutTensor], max_shard_bytes: int) -> int:
    """Write `tensors` as sharded safetensors plus the index into `out_dir`; returns the bytes of tensor data."""
    shards = plan_shards(tensors, max_shard_bytes)
    names = shard_names(len(shards))
    weight_map: dict[str, str] = {}
    total = 0
    for shard, fname in zip(shards, names, strict=False):
        total += _write_shard(out_dir / fname, shard)
        weight_map.update({t.name: fname for t in shard})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return total


def _write_shard(path: Path, tensors: list[OutTensor]) -> int:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for t in tensors:
        header[t.name] = {
            "dtype": DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + t.nbytes],
        }
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for t in tensors:
            written = 0
            for chunk in t.chunks():
                data = chunk.to(t.dtype).contiguous().reshape(-1).view(torch.uint8).numpy()
                f.write(data.data)
                written += data.nbytes
                del chunk, data
            if written != t.nbytes:
                raise RuntimeError(f"{t.name}: wrote {written} bytes, expected {t.nbytes} (shape {t.shape})")
        f.flush()
        os.fsync(f.fileno())
    return offset


def passthrough(name: str, source: Checkpoint, dtype: torch.dtype | None = None) -> OutTensor:
    """An output tensor copied from `source` (cast to `dtype` if given), streamed in row chunks."""
    info = source.infos[name]

    def chunks() -> Iterator[torch.Tensor]:
        if not info.shape:
            yield source.tensor(name)
            return
        for rows in row_chunks(info.shape):
            yield source.rows(name, rows)

    return OutTensor(name, info.shape, dtype or info.dtype, chunks)


def total_bytes(tensors: Iterable[OutTensor]) -> int:
    return sum(t.nbytes for t in tensors)
