"""Preparing a request on whole columns (data/columns.py): map, split, length filter, write, as arrow tables.

The same steps, decisions, counts and output bytes as the per-row build in data/build.py, which still prepares every
request whose sources or mapping the columnar path does not cover (`build_columnar` returns False for those).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_platform.data.build import (
    BAD_ROW_HINT,
    EXAMPLES,
    Counts,
    bad_row_problem,
    check_bad_fraction,
    no_rows_left,
    request_sources,
)
from trainer_platform.data.columns import NotColumnar, map_columns, needed_columns, read_columns
from trainer_platform.data.mapping import row_mapper
from trainer_platform.errors import SpecError

if TYPE_CHECKING:
    from trainer_platform.data.build import DataRequest


@dataclass
class Part:
    """Prepared verl rows (an arrow table) and, per row, where it came from (for the too-long examples)."""

    table: Any
    # per row: its source (index into `labels`) and its row there
    source: Any
    row: Any
    labels: list[Callable[[int], str]]

    def take(self, picked: Any, table: Any = None) -> Part:
        table = self.table.take(picked) if table is None else table
        return Part(table, self.source[picked], self.row[picked], self.labels)

    def label(self, i: int) -> str:
        return self.labels[int(self.source[i])](int(self.row[i]))


def build_columnar(req: DataRequest, folder: Path, counts: Counts) -> bool:
    """Prepare `req` into `folder` on the columnar path; False (nothing written) when it does not cover it."""
    names = needed_columns(req.fmt, req.fields)
    if names is None:
        return False
    try:
        parts = {"train": [], "val": []}  # type: dict[str, list[Part]]
        for key, sources, split in request_sources(req):
            for source in sources:
                parts["train" if key == "data.train_files" else "val"].append(
                    _map_source(req, key, Path(source), split, names, counts)
                )
    except NotColumnar:
        return False
    check_bad_fraction(req, counts)
    train, val = _concat(parts["train"]), _concat(parts["val"])
    if not val.table.num_rows and req.split.val_fraction > 0 and train.table.num_rows > 1:
        train, val = _hold_out(train, req)
    train, val = _drop_too_long(req, train, counts), _drop_too_long(req, val, counts)
    if not train.table.num_rows:
        raise no_rows_left(counts, val.table.num_rows)
    _write(folder / "train.parquet", train.table)
    if val.table.num_rows:
        _write(folder / "val.parquet", val.table)
    counts.train, counts.val = train.table.num_rows, val.table.num_rows
    return True


def _map_source(req: DataRequest, key: str, path: Path, split: str, names: list[str], counts: Counts) -> Part:
    source = read_columns(path, split, key, names)
    mapper = row_mapper(req.fmt, req.fields, name=req.name)
    table, kept, bad = map_columns(source, req.fmt, req.fields, req.name, split, mapper)
    counts.read += source.table.num_rows
    for i, problem in bad:
        label = source.label(i)
        if req.bad_rows.policy == "fail":
            raise SpecError(label, bad_row_problem(problem), BAD_ROW_HINT)
        counts.bad += 1
        if len(counts.bad_examples) < EXAMPLES:
            counts.bad_examples.append(f"{label}: {bad_row_problem(problem)}")
    import numpy as np

    return Part(table, np.zeros(len(kept), dtype=np.int64), kept, [source.label])


def _concat(parts: list[Part]) -> Part:
    import numpy as np
    import pyarrow as pa

    if not parts:
        return Part(pa.table({}), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [])
    if len(parts) == 1:
        return parts[0]
    table = pa.concat_tables([p.table for p in parts]).combine_chunks()
    source = np.concatenate([np.full(len(p.row), i, dtype=np.int64) for i, p in enumerate(parts)])
    return Part(table, source, np.concatenate([p.row for p in parts]), [p.labels[0] for p in parts])


def _hold_out(rows: Part, req: DataRequest) -> tuple[Part, Part]:
    """The seeded held-out split of data/build.py's `_hold_out`, on a table."""
    import numpy as np

    n = rows.table.num_rows
    order = list(range(n))
    random.Random(req.split.seed).shuffle(order)
    n_val = min(n - 1, max(1, round(n * req.split.val_fraction)))
    held = np.zeros(n, dtype=bool)
    held[order[:n_val]] = True
    out = []
    for name, picked in (("train", np.flatnonzero(~held)), ("val", np.flatnonzero(held))):
        table = rows.table.take(picked)
        if "extra_info" in table.column_names:
            table = table.set_column(table.column_names.index("extra_info"), "extra_info", _extra(name, len(picked)))
        out.append(rows.take(picked, table))
    return out[0], out[1]


def _extra(split: str, n: int) -> Any:
    import pyarrow as pa

    values = [pa.repeat(split, n).cast(pa.string()), pa.array(range(n), type=pa.int64())]
    return pa.StructArray.from_arrays(values, ["split", "index"])


def _drop_too_long(req: DataRequest, rows: Part, counts: Counts) -> Part:
    import numpy as np

    if not rows.table.num_rows:
        return rows
    from trainer_platform.data.lengths import load_tokenizer, over_limit_table

    measured = over_limit_table(load_tokenizer(req.tokenizer), req.fmt, rows.table, req.max_tokens)
    over = sorted(i for i, n in measured.items() if n > req.max_tokens)
    if not over:
        return rows
    for i in over:
        counts.too_long += 1
        if len(counts.too_long_examples) < EXAMPLES:
            counts.too_long_examples.append(f"{rows.label(i)}: {measured[i]} tokens")
    keep = np.ones(rows.table.num_rows, dtype=bool)
    keep[over] = False
    picked = np.flatnonzero(keep)
    return rows.take(picked)


def _write(path: Path, table: Any) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table.combine_chunks(), path)
