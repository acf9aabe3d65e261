"""A user's data -> verl parquet in the cache, keyed by a content hash and reused across runs.

The key covers the bytes of every source file, the mapping, split and bad-row settings, the length limit and the
tokenizer (its files, chat template included). Building: read the sources, map every row (bad rows fail or are
skipped and counted, per data.bad_rows), split off validation rows, measure token lengths with the model's
tokenizer and chat template and drop the rows over the limit (counted, never truncated), write train.parquet,
val.parquet and report.json (the hash and every count) into `<cache>/data/prepared/<name>-<hash>/`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer_platform.cache import build_once
from trainer_platform.data.mapping import BadRow, row_mapper
from trainer_platform.data.settings import BadRows, FieldMap, SplitSettings
from trainer_platform.data.sources import RowProblem, read_source, source_files
from trainer_platform.errors import SpecError
from trainer_platform.paths import cache_dir

# bump when the output for the same inputs changes: part of the cache key
PREPARE_VERSION = 1
# tokenizer files that decide token lengths
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)
EXAMPLES = 5


@dataclass(frozen=True)
class DataRequest:
    """Everything that decides the prepared files."""

    name: str
    fmt: str
    train_sources: tuple[str, ...]
    val_sources: tuple[str, ...]
    fields: FieldMap
    split: SplitSettings
    bad_rows: BadRows
    # longest prompt (RL) or sequence (SFT/DPO) kept, in tokens
    max_tokens: int
    # model directory (or hub id) whose tokenizer measures the rows
    tokenizer: str


@dataclass
class Counts:
    """What happened to the rows (report.json)."""

    read: int = 0
    bad: int = 0
    too_long: int = 0
    train: int = 0
    val: int = 0
    bad_examples: list[str] = field(default_factory=list)
    too_long_examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PreparedData:
    folder: Path
    train: Path
    val: Path | None
    hash: str
    counts: dict[str, Any]


def request_hash(req: DataRequest) -> str:
    """The content hash of a request (reads the source and tokenizer files; SpecError when a source is unusable)."""
    digest = hashlib.blake2b(digest_size=16)
    settings = {
        "version": PREPARE_VERSION,
        "fmt": req.fmt,
        "name": req.name,
        "fields": req.fields.model_dump(),
        "split": req.split.model_dump(),
        "bad_rows": req.bad_rows.model_dump(),
        "max_tokens": req.max_tokens,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for key, sources, split in request_sources(req):
        for source in sources:
            for file in source_files(Path(source), split, key=key):
                digest.update(f"\0{key}\0{file.name}\0".encode())
                _hash_file(digest, file)
    digest.update(f"\0tokenizer\0{tokenizer_identity(req.tokenizer)}".encode())
    return digest.hexdigest()


def request_sources(req: DataRequest) -> list[tuple[str, tuple[str, ...], str]]:
    out = [("data.train_files", req.train_sources, req.split.train_name)]
    if req.val_sources:
        out.append(("data.val_files", req.val_sources, req.split.val_name or "test"))
    elif req.split.val_name:
        out.append(("data.split.val_name", _dirs(req.train_sources), req.split.val_name))
    return out


def _dirs(sources: tuple[str, ...]) -> tuple[str, ...]:
    """The dataset folders among sources: the ones a split name (data.split.val_name) picks files from."""
    return tuple(s for s in sources if Path(s).is_dir())


def _hash_file(digest: Any, path: Path) -> None:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)


def tokenizer_identity(model: str) -> str:
    """A hash of the tokenizer files of a model dir, or the name itself for a hub id / a dir not built yet."""
    folder = Path(model)
    if not folder.is_dir():
        return model
    digest = hashlib.blake2b(digest_size=16)
    for name in _TOKENIZER_FILES:
        if (folder / name).is_file():
            digest.update(name.encode())
            _hash_file(digest, folder / name)
    return digest.hexdigest()


def prepared_folder(req: DataRequest, digest: str | None = None, root: Path | None = None) -> Path:
    return (root or cache_dir()) / "data" / "prepared" / f"{req.name}-{(digest or request_hash(req))[:16]}"


def prepare_data(req: DataRequest, root: Path | None = None) -> PreparedData:
    """Build (or reuse) the verl parquet files of a request."""
    digest = request_hash(req)
    folder = prepared_folder(req, digest, root)
    build_once(folder, lambda tmp: _build(req, digest, tmp))
    return load_prepared(folder)


def load_prepared(folder: Path) -> PreparedData:
    report = json.loads((folder / "report.json").read_text())
    val = folder / "val.parquet"
    return PreparedData(folder, folder / "train.parquet", val if val.is_file() else None, report["hash"], report)


def map_rows(req: DataRequest, key: str, source: str, split: str, counts: Counts) -> list[tuple[str, dict]]:
    """(label, verl row) for every good row of one source; bad rows fail or are counted (data.bad_rows)."""
    rows = read_source(Path(source), split, key=key)
    mapper = row_mapper(req.fmt, req.fields, name=req.name)
    out: list[tuple[str, dict]] = []
    for label, row in zip(rows.labels, rows.rows, strict=True):
        counts.read += 1
        try:
            if isinstance(row, RowProblem):
                raise BadRow(row.field, row.problem)
            out.append((label, mapper(row, split, len(out))))
        except BadRow as bad:
            message = f"{label}: " + (f"field {bad.field!r} {bad.problem}" if bad.field else bad.problem)
            if req.bad_rows.policy == "fail":
                raise SpecError(label, bad_row_problem(bad), BAD_ROW_HINT) from None
            counts.bad += 1
            if len(counts.bad_examples) < EXAMPLES:
                counts.bad_examples.append(message)
    return out


BAD_ROW_HINT = "fix the row, map the field with data.fields.<name>=..., or set data.bad_rows.policy=skip"


def bad_row_problem(bad: BadRow) -> str:
    return f"field {bad.field!r} {bad.problem}" if bad.field else bad.problem


def _build(req: DataRequest, digest: str, folder: Path) -> None:
    from trainer_platform.data.columnar_build import build_columnar

    counts = Counts()
    if build_columnar(req, folder, counts):
        _write_report(req, digest, folder, counts)
        return
    counts = Counts()
    train: list[tuple[str, dict]] = []
    for source in req.train_sources:
        train += map_rows(req, "data.train_files", source, req.split.train_name, counts)
    val: list[tuple[str, dict]] = []
    if req.val_sources:
        for source in req.val_sources:
            val += map_rows(req, "data.val_files", source, req.split.val_name or "test", counts)
    elif req.split.val_name:
        for source in _dirs(req.train_sources):
            val += map_rows(req, "data.split.val_name", source, req.split.val_name, counts)
    check_bad_fraction(req, counts)
    if not val and req.split.val_fraction > 0 and len(train) > 1:
        train, val = _hold_out(train, req.split)
    train, val = _drop_too_long(req, train, counts), _drop_too_long(req, val, counts)
    if not train:
        raise no_rows_left(counts, len(val))
    _write(folder / "train.parquet", [row for _, row in train], "train")
    if val:
        _write(folder / "val.parquet", [row for _, row in val], "val")
    counts.train, counts.val = len(train), len(val)
    _write_report(req, digest, folder, counts)


def _write_report(req: DataRequest, digest: str, folder: Path, counts: Counts) -> None:
    report = {"hash": digest, "format": req.fmt, "name": req.name, "tokenizer": req.tokenizer, **asdict(counts)}
    report["sources"] = {"train": list(req.train_sources), "val": list(req.val_sources)}
    (folder / "report.json").write_text(json.dumps(report, indent=2))


def no_rows_left(counts: Counts, val_rows: int) -> SpecError:
    """No training row survived: where the rows that were read went (`val_rows`: kept for validation)."""
    went = f"{counts.read} read, {counts.bad} bad, {counts.too_long} over the length limit, {val_rows} for validation"
    return SpecError(
        "data.train_files",
        f"no training rows left ({went})",
        "check the mapping (trainer-platform data inspect), the length limits and the split (data.split)",
    )


def check_bad_fraction(req: DataRequest, counts: Counts) -> None:
    if counts.read and counts.bad / counts.read > req.bad_rows.max_fraction:
        shown = "\n    ".join(counts.bad_examples)
        raise SpecError(
            "data.bad_rows",
            f"{counts.bad} of {counts.read} rows are malformed, over max_fraction={req.bad_rows.max_fraction}; "
            f"first ones:\n    {shown}",
            "fix the source or the mapping (data.fields), or raise data.bad_rows.max_fraction",
        )


def _hold_out(rows: list[tuple[str, dict]], split: SplitSettings) -> tuple[list, list]:
    order = list(range(len(rows)))
    random.Random(split.seed).shuffle(order)
    n_val = min(len(rows) - 1, max(1, round(len(rows) * split.val_fraction)))
    held = set(order[:n_val])
    train = [r for i, r in enumerate(rows) if i not in held]
    val = [r for i, r in enumerate(rows) if i in held]
    for part, name in ((train, "train"), (val, "val")):
        for index, (_, row) in enumerate(part):
            if "extra_info" in row:
                row["extra_info"] = {**row["extra_info"], "split": name, "index": index}
    return train, val


def _drop_too_long(req: DataRequest, rows: list[tuple[str, dict]], counts: Counts) -> list[tuple[str, dict]]:
    if not rows:
        return rows
    from trainer_platform.data.lengths import load_tokenizer, over_limit

    lengths = over_limit(load_tokenizer(req.tokenizer), req.fmt, [row for _, row in rows], req.max_tokens)
    kept = []
    for (label, row), n in zip(rows, lengths, strict=True):
        if n is None or n <= req.max_tokens:
            kept.append((label, row))
            continue
        counts.too_long += 1
        if len(counts.too_long_examples) < EXAMPLES:
            counts.too_long_examples.append(f"{label}: {n} tokens")
    return kept


def _write(path: Path, rows: list[dict[str, Any]], split: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
