"""The columnar path of data preparation: whole arrow columns mapped and checked at once (data/build.py).

It covers the common shapes: RL prompts from a text column (instruction template, ground truth, data source,
ability) and SFT chat turns from a list-of-{role, content} (or ShareGPT {from, value}) column, read from parquet,
arrow (datasets folders), JSONL, JSON or CSV. Vectorised checks flag every row that might not map the way the column
formulas do (null, blank by Python's str.strip, a prompt that is a JSON list, an unknown role, ...); each flagged row
then goes through the per-row mapper (data/mapping.py), which either raises its precise BadRow (so the message names
file, row/line and field exactly as the per-row path does) or maps it: then the source is not of a covered shape and
`None` sends the whole request down the per-row path. The ground truth is extracted by the same Python function as
the per-row path (the pattern is a Python regex), run over the column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_platform.data.mapping import _SHAREGPT_ROLES, ROLES, BadRow, compile_pattern, ground_truth_text
from trainer_platform.data.settings import FieldMap
from trainer_platform.data.sources import RowProblem, _kind, read_source, read_table, source_files

# the characters Python's str.strip() removes (str.isspace); tests/data/test_columns.py checks the list
PY_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
SPACE_CLASS = "".join(f"\\x{{{ord(c):x}}}" for c in PY_SPACE)
# a text that is not blank by str.strip(); one whose str.lstrip() starts with "[" (read as JSON chat turns)
_NOT_BLANK = f"[^{SPACE_CLASS}]"
_JSON_LIST = f"^[{SPACE_CLASS}]*\\["


class NotColumnar(Exception):
    """The source is not of a shape the columnar path covers: the per-row path prepares the request."""


@dataclass
class ColumnSource:
    """One source's needed columns, and how to name and re-read any of its rows for the per-row path."""

    table: Any
    label: Callable[[int], str]
    # row i as the per-row path reads it (all its fields)
    row: Callable[[int], Any]
    # a column's values as the per-row path sees them (Python objects)
    values: Callable[[str], list[Any]]
    problems: dict[int, RowProblem] = field(default_factory=dict)


def read_columns(path: Path, split: str, key: str, names: list[str]) -> ColumnSource:
    """The columns `names` (those present) of a source; NotColumnar when they cannot be columns."""
    import pyarrow as pa

    files = source_files(path, split, key=key)
    if all(_kind(f) in ("parquet", "arrow") for f in files):
        tables = [read_table(f, key) for f in files]
        try:
            full = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise NotColumnar from None
        table = full.select([n for n in names if n in full.column_names]).combine_chunks()
        sizes = [(f, t.num_rows) for f, t in zip(files, tables, strict=True)]
        return ColumnSource(
            table, lambda i: _table_label(sizes, i), lambda i: _row(full, i), lambda n: table.column(n).to_pylist()
        )
    rows = read_source(path, split, key=key)
    problems = {i: r for i, r in enumerate(rows.rows) if isinstance(r, RowProblem)}
    raw = {name: [None if isinstance(r, RowProblem) else r.get(name) for r in rows.rows] for name in names}
    columns = {}
    for name, values in raw.items():
        if any(v is not None for v in values):
            try:
                columns[name] = pa.array(values)
            except (pa.ArrowException, UnicodeError, ValueError, TypeError, OverflowError):
                raise NotColumnar from None
    table = pa.table(columns) if columns else pa.table({"_": pa.nulls(len(rows.rows))}).drop(["_"])
    return ColumnSource(table, rows.labels.__getitem__, rows.rows.__getitem__, raw.__getitem__, problems)


def _table_label(sizes: list[tuple[Path, int]], i: int) -> str:
    for file, n in sizes:
        if i < n:
            return f"{file} row {i + 1}"
        i -= n
    raise IndexError(i)


def _row(table: Any, i: int) -> dict[str, Any]:
    return table.slice(i, 1).to_pylist()[0]


def needed_columns(fmt: str, fields: FieldMap) -> list[str] | None:
    """The source columns a format's columnar mapping reads; None when the mapping has no columnar form."""
    if fmt == "prompts":
        names = [fields.prompt, fields.ground_truth, fields.data_source, fields.ability, "extra_info"]
    elif fmt == "messages":
        names = [fields.messages]
    else:
        return None
    return None if any("." in n for n in names) else list(dict.fromkeys(names))


def map_columns(
    source: ColumnSource, fmt: str, fields: FieldMap, name: str, split: str, mapper: Callable[..., Any]
) -> tuple[Any, Any, list[tuple[int, BadRow]]]:
    """(verl rows as a table, the source row index of each, the bad rows in order); NotColumnar when not covered."""
    import numpy as np

    table = source.table
    n = table.num_rows
    suspect = np.zeros(n, dtype=bool)
    suspect[list(source.problems)] = True
    build = _prompts(source, fields, name, split, suspect) if fmt == "prompts" else _messages(table, fields, suspect)
    bad: list[tuple[int, BadRow]] = []
    for i in np.flatnonzero(suspect).tolist():
        problem = source.problems.get(i)
        try:
            if problem is not None:
                raise BadRow(problem.field, problem.problem)
            mapper(source.row(i), split, 0)
        except BadRow as exc:
            bad.append((i, exc))
            continue
        raise NotColumnar  # a row of another shape (e.g. JSON-encoded turns): the per-row path maps it
    kept = np.flatnonzero(~suspect)
    return build(kept), kept, bad


def _bool(mask: Any) -> Any:
    import pyarrow.compute as pc

    return pc.fill_null(mask, True).to_numpy(zero_copy_only=False)


def _string(table: Any, column: str) -> Any:
    import pyarrow as pa

    values = table.column(column).combine_chunks() if column in table.column_names else None
    if values is not None and pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    return values


def _prompts(source: ColumnSource, fields: FieldMap, name: str, split: str, suspect: Any) -> Callable[[Any], Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    table = source.table
    if "extra_info" in table.column_names or fields.ground_truth not in table.column_names:
        raise NotColumnar
    prompt = _string(table, fields.prompt)
    if prompt is None or not pa.types.is_string(prompt.type):
        raise NotColumnar
    suspect |= _bool(pc.invert(pc.match_substring_regex(prompt, _NOT_BLANK)))
    suspect |= _bool(pc.match_substring_regex(prompt, _JSON_LIST))
    pattern = compile_pattern(fields.ground_truth_pattern)
    truths: list[str | None] = []
    for i, value in enumerate(source.values(fields.ground_truth)):
        try:
            truths.append(None if value is None else ground_truth_text(value, fields, pattern))
        except BadRow:
            truths.append(None)
        if truths[-1] is None:
            suspect[i] = True
    sources = _with_default(source, fields.data_source, fields.data_source_default, suspect)
    abilities = _with_default(source, fields.ability, fields.ability_default or name, None)

    def build(kept: Any) -> Any:
        idx = pa.array(kept, type=pa.int64())
        text = prompt.take(idx)
        if fields.instruction and "{prompt}" not in fields.instruction:
            text = pa.array([fields.instruction] * len(kept), type=pa.string())
        elif fields.instruction:
            parts = fields.instruction.split("{prompt}")
            pieces = [p for part in parts[1:] for p in (text, part)]
            text = pc.binary_join_element_wise(parts[0], *pieces, "")
        turns = _chat([text], ["user"], fields.system)
        truth = pa.array([truths[i] for i in kept.tolist()], type=pa.string())
        reward = pa.StructArray.from_arrays(
            [pa.repeat("rule", len(kept)).cast(pa.string()), truth], ["style", "ground_truth"]
        )
        extra = pa.StructArray.from_arrays(
            [pa.repeat(split, len(kept)).cast(pa.string()), pa.array(range(len(kept)), type=pa.int64())],
            ["split", "index"],
        )
        columns = [sources.take(idx), turns, abilities.take(idx), reward, extra]
        return pa.table(columns, names=["data_source", "prompt", "ability", "reward_model", "extra_info"])

    return build


def _with_default(source: ColumnSource, column: str, default: str | None, suspect: Any) -> Any:
    """`column or default` (verl's data_source / ability); with `suspect`, rows left without a text are flagged."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = source.table
    values = _string(table, column)
    n = table.num_rows
    if values is None or pa.types.is_null(values.type):
        values = pa.nulls(n, pa.string())
    if pa.types.is_string(values.type):
        have = _bool(pc.greater(pc.binary_length(values), 0)) & ~_bool(pc.is_null(values))
        if suspect is None:  # ability: `value or default`
            out = values if have.all() else pc.if_else(pa.array(have), values, pa.scalar(default, pa.string()))
            return out
        out = pc.coalesce(values, pa.scalar(default, pa.string())) if default is not None else values
        suspect |= _bool(pc.invert(pc.greater(pc.binary_length(out), 0)))
        return out
    if suspect is None:
        return pa.array([str(v or default) for v in source.values(column)], type=pa.string())
    raise NotColumnar  # a non-text data source column: the per-row path names its rows


def _chat(contents: list[Any], roles: list[str], system: str | None) -> Any:
    """Chat turns of equal-length rows: row i is [(system), roles[0]: contents[0][i], roles[1]: ...]."""
    import numpy as np
    import pyarrow as pa

    n = len(contents[0])
    if system:
        contents = [pa.repeat(system, n).cast(pa.string()), *contents]
        roles = ["system", *roles]
    k = len(roles)
    flat = pa.concat_arrays([c.cast(pa.string()) for c in contents])
    order = (np.arange(k)[None, :] * n + np.arange(n)[:, None]).ravel()
    content = flat.take(pa.array(order))
    role = pa.array(np.tile(np.array(roles, dtype=object), n), type=pa.string())
    return _turn_lists(np.arange(0, (n + 1) * k, k, dtype=np.int32), role, content)


def _turn_lists(offsets: Any, role: Any, content: Any) -> Any:
    import pyarrow as pa

    turns = pa.StructArray.from_arrays([role, content], ["role", "content"])
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), turns)


def _messages(table: Any, fields: FieldMap, suspect: Any) -> Callable[[Any], Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if fields.messages not in table.column_names:
        raise NotColumnar
    column = table.column(fields.messages).combine_chunks()
    kind = column.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not pa.types.is_struct(kind.value_type):
        raise NotColumnar
    names = [kind.value_type.field(i).name for i in range(kind.value_type.num_fields)]
    role_name = "role" if "role" in names else "from" if "from" in names else None
    content_name = "content" if "content" in names else "value" if "value" in names else None
    if role_name is None or content_name is None:
        raise NotColumnar
    n = len(column)
    counts = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    suspect |= _bool(pc.is_null(column)) | (counts == 0)
    turns = pc.list_flatten(column)
    parent = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
    role = _string_field(turns, role_name)
    content = _string_field(turns, content_name)
    if role_name == "from":
        sharegpt = list(_SHAREGPT_ROLES)
        role = pc.take(pa.array([_SHAREGPT_ROLES[r] for r in sharegpt]), pc.index_in(role, pa.array(sharegpt)))
    turn_bad = _bool(pc.is_null(turns)) | ~_bool(pc.is_in(role, pa.array(ROLES)).fill_null(False))
    turn_bad |= _bool(pc.is_null(content))
    assistant = _bool(pc.equal(role, "assistant")) & ~_bool(pc.is_null(role))
    blank = ~_bool(pc.match_substring_regex(content, _NOT_BLANK).fill_null(False))
    turn_bad |= assistant & blank
    suspect |= np.bincount(parent, weights=turn_bad, minlength=n) > 0
    suspect |= np.bincount(parent, weights=assistant, minlength=n) == 0

    plain = names == ["role", "content"] and not fields.system and pa.types.is_list(kind)

    def build(kept: Any) -> Any:
        if plain:  # already verl's turns: the kept rows as they are, typed as verl's rows are
            turn = pa.struct([("role", pa.string()), ("content", pa.string())])
            return pa.table([column.take(pa.array(kept, type=pa.int64())).cast(pa.list_(turn))], names=["messages"])
        starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
        take_counts = counts[kept]
        old = np.repeat(starts[kept], take_counts) + _ramp(take_counts)
        prepend = np.zeros(len(kept), dtype=np.int64)
        if fields.system:
            first = role.take(pa.array(starts[kept])).to_numpy(zero_copy_only=False)
            prepend = (first != "system").astype(np.int64)
        new_counts = take_counts + prepend
        offsets = np.concatenate([[0], np.cumsum(new_counts)]).astype(np.int32)
        system_at = len(role)
        index = np.full(int(offsets[-1]), system_at, dtype=np.int64)
        index[np.repeat(offsets[:-1] + prepend, take_counts) + _ramp(take_counts)] = old
        roles = pa.concat_arrays([role.cast(pa.string()), pa.array(["system"], type=pa.string())])
        texts = pa.concat_arrays([content.cast(pa.string()), pa.array([fields.system or ""], type=pa.string())])
        take = pa.array(index)
        return pa.table([_turn_lists(offsets, roles.take(take), texts.take(take))], names=["messages"])

    return build


def _ramp(counts: Any) -> Any:
    """0..c-1 for each count c, concatenated."""
    import numpy as np

    total = int(counts.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def _string_field(turns: Any, name: str) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pc.struct_field(turns, name)
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    if not pa.types.is_string(values.type) and not pa.types.is_null(values.type):
        raise NotColumnar  # e.g. numbers as contents: the per-row path names the rows
    return values.cast(pa.string())
