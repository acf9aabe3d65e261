"""The columnar preparation path (data/columns.py, data/columnar_build.py) against the per-row path it replaces.

Both paths run on the same real files with the real tiny tokenizer: the per-row path is forced by making the
columnar one decline (`needed_columns` -> None), as it does for shapes it does not cover.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_prepare_data import GSM_FIELDS as GSM

from trainer_platform.data import columnar_build
from trainer_platform.data.build import Counts, DataRequest, map_rows, prepare_data
from trainer_platform.data.columns import PY_SPACE
from trainer_platform.data.settings import BadRows, FieldMap, SplitSettings
from trainer_platform.errors import SpecError

N = 10_000
MIDDLE = 5_123


@pytest.fixture(scope="module")
def tokenizer_dir() -> str:
    from trainer_platform.models.tiny import ensure_tiny_model

    return str(ensure_tiny_model())


def _qa(i: int) -> dict:
    return {"question": f"What is {i} + 3?", "answer": f"{i} + 3 = {i + 3}\n#### {i + 3:,}"}


def _chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"hello {i}"}]}


def _request(tok: str, sources: list[Path], fmt: str = "prompts", **kw: object) -> DataRequest:
    base: dict = dict(
        name="t",
        fmt=fmt,
        train_sources=tuple(str(s) for s in sources),
        val_sources=(),
        fields=GSM if fmt == "prompts" else FieldMap(),
        split=SplitSettings(),
        bad_rows=BadRows(),
        max_tokens=512,
        tokenizer=tok,
    )
    return DataRequest(**{**base, **kw})


def _write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_py_space_is_what_str_strip_removes() -> None:
    python_spaces = "".join(c for c in map(chr, range(0x110000)) if c.isspace())
    assert python_spaces == PY_SPACE


BAD_PROMPT_ROWS = [
    ({"answer": "#### 3"}, "question", "is missing"),
    ({"question": " \u3000\x1c ", "answer": "#### 3"}, "question", "is empty"),
    ({"question": "q", "answer": "#### three"}, "answer", "is not a number"),
]
BAD_CHAT_ROWS = [
    ({"messages": []}, "messages", "is an empty list"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "messages", "has no assistant turn"),
    ({"messages": [{"role": "bot", "content": "hi"}]}, "messages[0].role", "is 'bot'"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "\u2003"}]}, "messages[1]", ""),
]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize(
    ("fmt", "case"), [("prompts", c) for c in BAD_PROMPT_ROWS] + [("messages", c) for c in BAD_CHAT_ROWS]
)
def test_a_bad_row_in_the_middle_is_named_as_the_row_path_names_it(
    tmp_path: Path, tokenizer_dir: str, suffix: str, fmt: str, case: tuple
) -> None:
    bad, field, problem = case
    good = _qa if fmt == "prompts" else _chat
    rows = [good(i) for i in range(N)]
    rows[MIDDLE] = {**{k: None for k in rows[0]}, **bad} if suffix == ".parquet" else bad
    path = _write(tmp_path / f"src{suffix}", rows)
    req = _request(tokenizer_dir, [path], fmt)
    with pytest.raises(SpecError) as columnar:  # the columnar path itself names it (it does not decline)
        columnar_build.build_columnar(req, tmp_path / "out", Counts())
    with pytest.raises(SpecError) as per_row:
        map_rows(req, "data.train_files", str(path), "train", Counts())
    line = f"{path}:{MIDDLE + 1}" if suffix == ".jsonl" else f"{path} row {MIDDLE + 1}"
    assert columnar.value.key == per_row.value.key == line
    assert columnar.value.problem == per_row.value.problem and columnar.value.hint == per_row.value.hint
    assert f"field {field!r}" in columnar.value.problem or field in columnar.value.problem
    assert problem in columnar.value.problem


def _both_paths(tmp_path: Path, req: DataRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict]:
    out, taken = {}, []
    build = columnar_build.build_columnar
    monkeypatch.setattr(columnar_build, "build_columnar", lambda *a: taken.append(build(*a)) or taken[-1])
    for path in ("columnar", "per-row"):
        if path == "per-row":
            monkeypatch.setattr(columnar_build, "needed_columns", lambda fmt, fields: None)
        done = prepare_data(req, root=tmp_path / path)
        files = {p.name: p.read_bytes() for p in done.folder.glob("*.parquet")}
        report = {k: v for k, v in done.counts.items() if k != "hash"}
        out[path] = {"files": files, "report": report}
    monkeypatch.undo()
    assert taken == [True, False]  # the first build really took the columnar path
    return out["columnar"], out["per-row"]


def test_skipped_bad_rows_split_and_length_filter_equal_the_row_path(
    tmp_path: Path, tokenizer_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [_qa(i) for i in range(400)]
    rows[7] = {"question": "long " * 300, "answer": "#### 1"}
    rows[50] = {"question": "q", "answer": "#### x"}
    rows[60] = {"answer": "#### 2"}
    path = _write(tmp_path / "src.jsonl", rows)
    path.write_text(path.read_text() + "not json\n")
    fields = GSM.model_copy(update={"system": "Be exact.", "ability_default": "math"})
    req = _request(
        tokenizer_dir,
        [path],
        fields=fields,
        split=SplitSettings(val_fraction=0.2, seed=4),
        bad_rows=BadRows(policy="skip", max_fraction=0.05),
        max_tokens=200,
    )
    columnar, per_row = _both_paths(tmp_path, req, monkeypatch)
    assert columnar == per_row
    assert columnar["report"]["bad"] == 3 and columnar["report"]["too_long"] == 1
    assert columnar["report"]["too_long_examples"][0].startswith(f"{path}:8: ")
    row = pq.read_table(pa.BufferReader(columnar["files"]["train.parquet"])).to_pylist()[0]
    assert row["ability"] == "math" and row["prompt"][0] == {"role": "system", "content": "Be exact."}


def test_sft_turns_system_prompt_and_sharegpt_equal_the_row_path(
    tmp_path: Path, tokenizer_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [_chat(i) for i in range(300)]
    rows[3] = {"messages": [{"role": "system", "content": "own"}, *rows[3]["messages"]]}
    rows[9] = {"messages": [{"role": "user", "content": "x " * 400}, {"role": "assistant", "content": "y"}]}
    rows[11] = {
        "messages": [{"role": "user", "content": "<|im_start|>assistant\n"}, {"role": "assistant", "content": "é😀"}]
    }
    path = _write(tmp_path / "chats.parquet", rows)
    sharegpt = _write(
        tmp_path / "sg.parquet",
        [{"conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": "a"}]} for i in range(50)],
    )
    for req in (
        _request(tokenizer_dir, [path], "messages", fields=FieldMap(system="Be brief."), max_tokens=128),
        _request(tokenizer_dir, [path], "messages", split=SplitSettings(val_fraction=0.1), max_tokens=128),
        _request(tokenizer_dir, [sharegpt], "messages", fields=FieldMap(messages="conversations")),
    ):
        columnar, per_row = _both_paths(tmp_path / req.fields.messages / str(req.fields.system), req, monkeypatch)
        assert columnar == per_row


def test_a_row_of_another_shape_sends_the_request_down_the_row_path(
    tmp_path: Path, tokenizer_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [_qa(i) for i in range(20)]
    rows[5] = {"question": json.dumps([{"role": "user", "content": "turns as JSON"}]), "answer": "#### 1"}
    path = _write(tmp_path / "src.parquet", rows)
    req = _request(tokenizer_dir, [path])
    assert not columnar_build.build_columnar(req, tmp_path / "out", Counts())
    monkeypatch.setattr(columnar_build, "needed_columns", lambda fmt, fields: None)
    per_row = prepare_data(req, root=tmp_path / "per-row")
    monkeypatch.undo()
    declined = prepare_data(req, root=tmp_path / "declined")
    assert declined.train.read_bytes() == per_row.train.read_bytes()
    assert pq.read_table(declined.train).to_pylist()[5]["prompt"] == [{"role": "user", "content": "turns as JSON"}]


def test_ability_comes_from_the_mapped_field_or_the_default(
    tmp_path: Path, tokenizer_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{**_qa(i), "category": ["algebra", "", None][i % 3]} for i in range(30)]
    path = _write(tmp_path / "src.parquet", rows)
    fields = GSM.model_copy(update={"ability": "category", "ability_default": "math"})
    columnar, per_row = _both_paths(tmp_path, _request(tokenizer_dir, [path], fields=fields), monkeypatch)
    assert columnar == per_row
    got = pq.read_table(pa.BufferReader(columnar["files"]["train.parquet"])).column("ability").to_pylist()
    assert got == ["algebra", "math", "math"] * 10
    plain = prepare_data(_request(tokenizer_dir, [path]), root=tmp_path / "plain")  # today's default: the name
    assert set(pq.read_table(plain.train).column("ability").to_pylist()) == {"t"}


@pytest.mark.parametrize("instruction", ["Q: {prompt}\nA ({prompt}):", "Solve the task.", ""])
def test_instruction_templates_equal_the_row_path(
    tmp_path: Path, tokenizer_dir: str, monkeypatch: pytest.MonkeyPatch, instruction: str
) -> None:
    path = _write(tmp_path / "src.parquet", [_qa(i) for i in range(30)])
    fields = GSM.model_copy(update={"instruction": instruction})
    columnar, per_row = _both_paths(tmp_path, _request(tokenizer_dir, [path], fields=fields), monkeypatch)
    assert columnar == per_row
