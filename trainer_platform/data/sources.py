"""Reading the files users have: JSONL, JSON, CSV, parquet and local Hugging Face `datasets` folders.

`source_files(path, split)` says which files a source is (cheap: no parsing, used for the content hash);
`read_source(path, split)` parses them into plain rows, each with a label naming where it came from (`file:line` for
JSONL and CSV, `file row N` otherwise); a .json file holding JSON Lines is read as JSONL. A row that cannot be
parsed (invalid JSON, a JSON value that is not an object) is kept as a `RowProblem`, so the bad-row policy decides
about it like any other malformed row. Nothing is downloaded: a hub name is refused with how to fetch the files.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_platform.errors import SpecError

# file name endings read as data, by reader
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# the longest CSV field read (the csv module's default is 131072 characters)
_CSV_FIELD_LIMIT = 2**31 - 1
_HINT = "use JSONL, JSON, CSV, parquet or a folder written by datasets' save_to_disk"


@dataclass(frozen=True)
class RowProblem:
    """A source row that could not be parsed: which field (or '' for the whole row) and why."""

    field: str
    problem: str
    # how to fix the source at that row
    hint: str = "fix that line: every line of a JSONL file is one JSON object"


@dataclass
class SourceRows:
    """The parsed rows of one source, with where each came from."""

    path: Path
    rows: list[dict[str, Any] | RowProblem] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def source_files(path: Path, split: str = "train", *, key: str = "data.train_files") -> list[Path]:
    """The data files of a source (a file, a dataset dir or a folder of data files); SpecError when unusable."""
    if not path.exists():
        raise SpecError(key, f"{path} does not exist", f"fix the path ({_HINT})")
    if path.is_file():
        if _kind(path) is None:
            raise SpecError(key, f"{path}: unknown data file type {path.suffix!r}", _HINT)
        return [path]
    dict_file = path / "dataset_dict.json"
    if dict_file.is_file():  # DatasetDict.save_to_disk: one folder per split
        splits = _json_file(dict_file, key).get("splits", [])
        if split not in splits:
            setting = "data.split.train_name" if key == "data.train_files" else "data.split.val_name"
            found = ", ".join(splits)
            raise SpecError(
                key, f"{path} has no split {split!r} (splits: {found})", f"set {setting} to one of: {found}"
            )
        return source_files(path / split, split, key=key)
    state = path / "state.json"
    if state.is_file():  # Dataset.save_to_disk: arrow stream files listed in state.json
        names = [f["filename"] for f in _json_file(state, key).get("_data_files", [])]
        if not names:
            raise SpecError(key, f"{state} lists no data files", "save the dataset again with save_to_disk")
        return [path / name for name in names]
    files = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) and not _hidden(p.relative_to(path)))
    picked = [p for p in files if split in p.stem] or (files if split == "train" else [])
    if not picked:
        raise SpecError(key, f"{path} holds no {split} data files", f"put *{split}*.jsonl/.parquet/... there; {_HINT}")
    formats = Counter(p.with_suffix("") for p in picked)  # one count per file name without its format suffix
    twice = [p for p in picked if formats[p.with_suffix("")] > 1]
    if twice:  # e.g. train.jsonl next to the train.parquet converted from it: the rows would be read twice
        copies = ", ".join(p.name for p in twice)
        raise SpecError(
            key,
            f"{path} holds the same {split} data file in several formats ({copies})",
            "remove the copies, or name the files in data.train_files / data.val_files",
        )
    parents = {p.parent for p in picked}
    if len(parents) > 1:
        where = ", ".join(sorted(str(p) for p in parents))
        raise SpecError(key, f"{path} holds {split} files in several folders ({where})", "point at one of them")
    return picked


def _hidden(relative: Path) -> bool:
    """A file or folder name starting with '.' (.ipynb_checkpoints, .cache, .git) anywhere in a relative path."""
    return any(part.startswith(".") for part in relative.parts)


def read_source(path: Path, split: str = "train", *, key: str = "data.train_files") -> SourceRows:
    """All rows of a source, in file order."""
    out = SourceRows(path)
    for file in source_files(path, split, key=key):
        kind = _kind(file) or "arrow"
        reader = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "parquet": _read_parquet}
        reader.get(kind, _read_arrow)(file, out, key)
    return out


def _kind(path: Path) -> str | None:
    if path.suffix == ".arrow":
        return "arrow"
    return SUFFIXES.get(path.suffix.lower())


def _json_file(path: Path, key: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SpecError(key, f"{path} is not valid JSON ({exc})", "save the dataset again with save_to_disk") from None
    return data if isinstance(data, dict) else {}


# what a parsed JSON value that is not an object is, in JSON's words
_JSON_KINDS = {list: "a JSON list", str: "a JSON string", int: "a JSON number", float: "a JSON number"}
_JSON_KINDS.update({bool: "JSON true/false", type(None): "JSON null"})


def _add(out: SourceRows, value: Any, label: str, hint: str = RowProblem.hint) -> None:
    out.labels.append(label)
    if isinstance(value, dict):
        out.rows.append(value)
    else:
        kind = _JSON_KINDS.get(type(value), "a JSON value")
        out.rows.append(RowProblem("", f"is {kind}, not an object of fields", hint))


def _read_jsonl(path: Path, out: SourceRows, key: str, text: str | None = None) -> None:
    decode = json.JSONDecoder().decode
    # lines end at "\n" only: JSON text may hold U+2028, NEL and the other breaks str.splitlines() would cut at
    for number, line in enumerate((_text(path, key) if text is None else text).split("\n"), start=1):
        if line.strip():
            add_jsonl_line(out, line, f"{path}:{number}", decode)


def add_jsonl_line(out: SourceRows, line: str, label: str, decode: Any = json.loads) -> None:
    """One non-blank JSONL line as a row (or a RowProblem when it is not a JSON object)."""
    try:
        value = decode(line)
    except ValueError as exc:
        out.labels.append(label)
        out.rows.append(RowProblem("", f"invalid JSON ({exc})"))
        return
    _add(out, value, label)


def _read_json(path: Path, out: SourceRows, key: str) -> None:
    text = _text(path, key)
    try:
        data = json.loads(text)
    except ValueError as exc:
        if getattr(exc, "msg", "") == "Extra data":  # JSON Lines in a .json file, as many datasets ship them
            _read_jsonl(path, out, key, text)
            return
        raise SpecError(
            key, f"{path} is not valid JSON ({exc})", "fix it, or write one object per line (JSONL)"
        ) from None
    if isinstance(data, dict):  # {"data": [...]} or {"train": [...], ...}
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise SpecError(key, f"{path} holds an object, not a list of rows", "write a JSON list of row objects")
        data = lists[0]
    if not isinstance(data, list):
        raise SpecError(key, f"{path} holds a JSON {type(data).__name__}, not a list of rows", "write a JSON list")
    for index, value in enumerate(data, start=1):
        _add(out, value, f"{path} row {index}", "make every item of the JSON list an object of fields")


def _read_csv(path: Path, out: SourceRows, key: str) -> None:
    import io

    # long documents are real rows: lift the csv module's 131072-character field limit (a process-wide setting)
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    reader = csv.DictReader(io.StringIO(_text(path, key), newline=""))
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise SpecError(f"{path}:1", f"is not a readable CSV header ({exc})", "fix the first line") from None
    if not fieldnames:
        raise SpecError(key, f"{path} has no header row", "put the field names on the first line")
    line = reader.line_num
    for row in _csv_rows(reader, path):
        out.labels.append(f"{path}:{line + 1}")
        line = reader.line_num
        if None in row:
            problem = f"has more values than the {len(fieldnames)} header fields"
            out.rows.append(RowProblem("", problem, 'quote values holding commas or newlines ("a, b")'))
        else:
            out.rows.append(dict(row))


def _csv_rows(reader: csv.DictReader, path: Path) -> Any:
    """The rows of a CSV reader; SpecError naming the line where the csv module cannot go on."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise SpecError(f"{path}:{reader.line_num}", f"is not readable CSV ({exc})", "fix that line") from None
        yield row


def read_table(path: Path, key: str) -> Any:
    """A parquet file or a datasets arrow stream file as one pyarrow Table; SpecError when unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    kind = "arrow" if path.suffix == ".arrow" else "parquet"
    try:
        if kind == "parquet":
            return pq.read_table(path)
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_stream(source).read_all()
    except Exception as exc:  # pyarrow raises several types for a corrupt or non-parquet/arrow file
        raise SpecError(key, f"{path} is not a readable {kind} file ({exc.__class__.__name__})", _HINT) from None


def _read_parquet(path: Path, out: SourceRows, key: str) -> None:
    _add_table(out, read_table(path, key), path)


_read_arrow = _read_parquet


def _add_table(out: SourceRows, table: Any, path: Path) -> None:
    start = len(out.rows)
    out.rows.extend(table.to_pylist())
    out.labels.extend(f"{path} row {i}" for i in range(1, len(out.rows) - start + 1))


def _text(path: Path, key: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(key, f"{path} is not UTF-8 text (byte {exc.start})", "save it as UTF-8") from None
    except OSError as exc:
        raise SpecError(key, f"{path} cannot be read ({exc.strerror})", "check the path and its permissions") from None
