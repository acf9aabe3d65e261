"""Sources -> verl parquet (trainer_platform/data): real files of every supported kind, the real tiny tokenizer."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from trainer_platform.data.build import DataRequest, prepare_data
from trainer_platform.data.settings import BadRows, FieldMap, SplitSettings
from trainer_platform.errors import SpecError

GSM_FIELDS = FieldMap(
    prompt="question",
    ground_truth="answer",
    ground_truth_pattern=r"####\s*(.+?)\s*$",
    ground_truth_numeric=True,
    data_source_default="openai/gsm8k",
    instruction="{prompt} Answer after ####.",
)
QA = [{"question": f"What is {i} + 3?", "answer": f"{i} + 3 = {i + 3}\n#### {i + 3:,}"} for i in range(998, 1018)]


@pytest.fixture(scope="module")
def tokenizer_dir() -> str:
    from trainer_platform.models.tiny import ensure_tiny_model

    return str(ensure_tiny_model())


def _request(tok: str, sources: list[Path], **kw: object) -> DataRequest:
    base: dict = dict(
        name="t",
        fmt="prompts",
        train_sources=tuple(str(s) for s in sources),
        val_sources=(),
        fields=GSM_FIELDS,
        split=SplitSettings(),
        bad_rows=BadRows(),
        max_tokens=512,
        tokenizer=tok,
    )
    return DataRequest(**{**base, **kw})


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def _write_all_kinds(folder: Path) -> dict[str, Path]:
    """The same 20 GSM8K-style rows as JSONL, JSON, CSV, parquet and two datasets.save_to_disk folders."""
    import datasets
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    out = {"jsonl": folder / "d.jsonl", "json": folder / "d.json", "csv": folder / "d.csv", "parquet": folder / "d.pq"}
    out["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in QA))
    out["json"].write_text(json.dumps(QA))
    with out["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["question", "answer"])
        writer.writeheader()
        writer.writerows(QA)
    out["parquet"] = folder / "d.parquet"
    pd.DataFrame(QA).to_parquet(out["parquet"])
    datasets.Dataset.from_list(QA).save_to_disk(str(folder / "hf"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(QA)}).save_to_disk(str(folder / "hfdict"))
    out["hf"], out["hfdict"] = folder / "hf", folder / "hfdict"
    return out


def test_every_source_kind_gives_the_same_verl_rows(tmp_path: Path, tokenizer_dir: str) -> None:
    sources = _write_all_kinds(tmp_path / "src")
    results = {}
    for kind, path in sources.items():
        done = prepare_data(_request(tokenizer_dir, [path]), root=tmp_path / "cache")
        results[kind] = _rows(done.train)
        assert done.counts["read"] == 20 and done.counts["train"] == 20 and done.val is None
    first = results["jsonl"]
    for kind, rows in results.items():
        assert [r["prompt"] for r in rows] == [r["prompt"] for r in first], kind
        assert [r["reward_model"] for r in rows] == [r["reward_model"] for r in first], kind
    row = first[0]
    assert row["prompt"] == [{"role": "user", "content": "What is 998 + 3? Answer after ####."}]
    assert row["reward_model"] == {"style": "rule", "ground_truth": "1001"}  # "1,001": the comma is dropped
    assert row["data_source"] == "openai/gsm8k"


def test_a_malformed_jsonl_line_is_named_by_file_and_line(tmp_path: Path, tokenizer_dir: str) -> None:
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(r) for r in QA[:5]] + ['{"question": "x", "answer": ', json.dumps(QA[5])]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError) as err:
        prepare_data(_request(tokenizer_dir, [path]), root=tmp_path / "cache")
    assert err.value.key == f"{path}:6" and "invalid JSON" in err.value.problem
    assert not (tmp_path / "cache" / "data" / "prepared").exists() or not any(
        p for p in (tmp_path / "cache" / "data" / "prepared").iterdir() if not p.name.startswith(".")
    )


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({"answer": "#### 3"}, "question", "is missing"),
        ({"question": "  ", "answer": "#### 3"}, "question", "is empty"),
        ({"question": ["a"], "answer": "#### 3"}, "question[0]", "must be a {role, content} mapping"),
        ({"question": "q", "answer": "3"}, "answer", "does not match the ground-truth pattern"),
        ({"question": "q", "answer": "#### three"}, "answer", "is not a number"),
        ({"question": "q", "answer": {"x": 1}}, "answer", "must be text or a number"),
    ],
)
def test_bad_rows_name_file_line_and_field(
    tmp_path: Path, tokenizer_dir: str, row: dict, field: str, problem: str
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(QA[0]) + "\n\n" + json.dumps(row) + "\n")
    with pytest.raises(SpecError) as err:
        prepare_data(_request(tokenizer_dir, [path]), root=tmp_path / "cache")
    assert err.value.key == f"{path}:3" and f"field {field!r}" in err.value.problem and problem in err.value.problem


def test_skip_policy_counts_bad_rows_and_fails_over_the_threshold(tmp_path: Path, tokenizer_dir: str) -> None:
    path = tmp_path / "some_bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in QA) + "not json\n" + '{"question": "q"}\n')
    done = prepare_data(
        _request(tokenizer_dir, [path], bad_rows=BadRows(policy="skip", max_fraction=0.1)), root=tmp_path / "c"
    )
    assert done.counts["bad"] == 2 and done.counts["train"] == 20 and done.counts["read"] == 22
    assert done.counts["bad_examples"][0].startswith(f"{path}:21")
    with pytest.raises(SpecError) as err:
        prepare_data(_request(tokenizer_dir, [path], bad_rows=BadRows(policy="skip", max_fraction=0.05)))
    assert err.value.key == "data.bad_rows" and "2 of 22" in err.value.problem


def test_prepared_data_is_cached_by_content(tmp_path: Path, tokenizer_dir: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in QA))
    first = prepare_data(_request(tokenizer_dir, [path]), root=tmp_path / "c")
    stamp = first.train.stat().st_mtime_ns
    start = time.perf_counter()
    again = prepare_data(_request(tokenizer_dir, [path]), root=tmp_path / "c")
    assert time.perf_counter() - start < 1.0 and again.folder == first.folder
    assert again.train.stat().st_mtime_ns == stamp and again.hash == first.hash
    other_mapping = prepare_data(_request(tokenizer_dir, [path], max_tokens=511), root=tmp_path / "c")
    assert other_mapping.hash != first.hash
    path.write_text("".join(json.dumps(r) + "\n" for r in QA[:-1]))  # the content changed: a new hash
    assert prepare_data(_request(tokenizer_dir, [path]), root=tmp_path / "c").hash != first.hash


def test_seeded_validation_split(tmp_path: Path, tokenizer_dir: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in QA))
    split = SplitSettings(val_fraction=0.25, seed=3)
    done = prepare_data(_request(tokenizer_dir, [path], split=split), root=tmp_path / "a")
    again = prepare_data(_request(tokenizer_dir, [path], split=split), root=tmp_path / "b")
    assert done.val is not None and again.val is not None
    train, val = _rows(done.train), _rows(done.val)
    assert len(train) == 15 and len(val) == 5 and _rows(again.val) == val
    assert (done.counts["train"], done.counts["val"]) == (15, 5)  # the training rows a run's step count uses
    assert not {r["prompt"][0]["content"] for r in train} & {r["prompt"][0]["content"] for r in val}
    assert [r["extra_info"]["index"] for r in val] == list(range(5))


def test_prompts_over_the_limit_are_dropped_and_counted(tmp_path: Path, tokenizer_dir: str) -> None:
    from trainer_platform.data.lengths import exact_lengths, load_tokenizer

    rows = [*QA[:10], {"question": "What is 1 + 3? " * 40, "answer": "#### 4"}]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = prepare_data(_request(tokenizer_dir, [path], max_tokens=64), root=tmp_path / "c")
    assert done.counts["too_long"] == 1 and done.counts["train"] == 10
    assert done.counts["too_long_examples"][0].startswith(f"{path}:11: ")
    kept = _rows(done.train)
    exact = exact_lengths(load_tokenizer(tokenizer_dir), [r["prompt"] for r in kept], True)
    assert max(exact) <= 64


def test_sft_rows_from_prompt_response_and_sharegpt(tmp_path: Path, tokenizer_dir: str) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "1+1?", "response": "2"}) + "\n")
    sharegpt = tmp_path / "sharegpt.json"
    turns = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}, {"from": "human", "value": "1+1?"}]
    sharegpt.write_text(json.dumps([{"conversations": [*turns, {"from": "gpt", "value": "2"}]}]))
    req = _request(tokenizer_dir, [pairs], fmt="messages", fields=FieldMap(system="Be brief."), max_tokens=128)
    rows = _rows(prepare_data(req, root=tmp_path / "c").train)
    assert rows == [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "1+1?"},
                {"role": "assistant", "content": "2"},
            ]
        }
    ]
    req = _request(tokenizer_dir, [sharegpt], fmt="messages", fields=FieldMap(messages="conversations"), max_tokens=128)
    (row,) = _rows(prepare_data(req, root=tmp_path / "c").train)
    assert [t["role"] for t in row["messages"]] == ["user", "assistant", "user", "assistant"]


def test_dpo_rows_from_text_and_from_paired_conversations(tmp_path: Path, tokenizer_dir: str) -> None:
    text = tmp_path / "text.jsonl"
    text.write_text(json.dumps({"prompt": "1+1?", "chosen": "2", "rejected": "3"}) + "\n")
    paired = tmp_path / "paired.jsonl"
    user = {"role": "user", "content": "1+1?"}
    chosen = [user, {"role": "assistant", "content": "2"}]
    rejected = [user, {"role": "assistant", "content": "3"}]
    paired.write_text(json.dumps({"chosen": chosen, "rejected": rejected}) + "\n")
    want = [{"prompt": [user], "chosen": "2", "rejected": "3"}]
    for path in (text, paired):
        req = _request(tokenizer_dir, [path], fmt="preference", fields=FieldMap(), max_tokens=128)
        assert _rows(prepare_data(req, root=tmp_path / "c").train) == want
    mismatched = tmp_path / "mismatched.jsonl"
    other = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]
    mismatched.write_text(json.dumps({"chosen": chosen, "rejected": other}) + "\n")
    with pytest.raises(SpecError, match="does not share the prompt"):
        prepare_data(_request(tokenizer_dir, [mismatched], fmt="preference", fields=FieldMap()), root=tmp_path / "c")


def test_fast_token_lengths_equal_the_rendered_chat_template(tokenizer_dir: str) -> None:
    from trainer_platform.data.lengths import exact_lengths, load_tokenizer, token_lengths

    tok = load_tokenizer(tokenizer_dir)
    rows = [
        {"messages": [{"role": "user", "content": f"What is {i} * 7?"}, {"role": "assistant", "content": f"#### {i}"}]}
        for i in range(200)
    ]
    fast, _ = token_lengths(tok, "messages", rows)
    assert fast == exact_lengths(tok, [r["messages"] for r in rows], False)


def test_the_byte_bound_keeps_exactly_the_rows_measuring_would(tokenizer_dir: str) -> None:
    from trainer_platform.data.lengths import _bytes_bound_tokens, load_tokenizer, over_limit, token_lengths

    tok = load_tokenizer(tokenizer_dir)
    assert _bytes_bound_tokens(tok)  # NFC + ByteLevel: the bound applies, so this test exercises it
    rows = [{"prompt": [{"role": "user", "content": "What is 3 + 4? " * n + "é€😀" * (n % 3)}]} for n in range(40)]
    exact, _ = token_lengths(tok, "prompts", rows)
    for limit in (16, 40, 100, 300):
        decided = over_limit(tok, "prompts", rows, limit)
        assert [n is not None and n > limit for n in decided] == [n > limit for n in exact], limit


@pytest.mark.parametrize(
    "template",
    [
        # every content rendered twice: the byte bound of one copy is wrong for every row
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{{ m['content'] }}{% endfor %}",
        # only a content holding the template's own marker is repeated 12 times: a row far from the first ones
        "{% for m in messages %}{% if '<x>' in m['content'] %}{{ m['content'] * 12 }}{% else %}{{ m['content'] }}"
        "{% endif %}{% endfor %}",
    ],
)
def test_the_length_filter_checks_the_template_splice_and_falls_back_to_rendering(
    tokenizer_dir: str, template: str
) -> None:
    import pyarrow as pa
    from transformers import AutoTokenizer

    from trainer_platform.data.lengths import exact_lengths, over_limit, over_limit_table

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.chat_template = template
    rows = [{"prompt": [{"role": "user", "content": f"What is {i} + 4? " * (1 + i % 5)}]} for i in range(120)]
    rows[100] = {"prompt": [{"role": "user", "content": "<x> 7 + 4"}]}  # short: its byte bound fits
    exact = exact_lengths(tok, [r["prompt"] for r in rows], True)
    limit = sorted(exact)[60]
    want = [n > limit for n in exact]
    listed = over_limit(tok, "prompts", rows, limit)
    assert [n is not None and n > limit for n in listed] == want
    tabled = over_limit_table(tok, "prompts", pa.Table.from_pylist(rows), limit)
    assert [tabled.get(i, 0) > limit for i in range(len(rows))] == want


def test_the_columnar_check_for_contents_that_may_steer_the_template_equals_the_row_check(tokenizer_dir: str) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from trainer_platform.data.lengths import _interacts, _touch_pattern, load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    texts = ["a", " a", "a\u3000", "x<|im_start|>y", "assistant\n", "b\n", "plain", "é", "a\x1c", "<|im_end|>", "\\n"]
    found = pc.match_substring_regex(pa.array(texts), _touch_pattern(tok)).to_pylist()
    assert found == [_interacts(tok, t) for t in texts] and any(found) and not all(found)


def test_jsonl_lines_split_only_at_newlines(tmp_path: Path, tokenizer_dir: str) -> None:
    # json.dumps(ensure_ascii=False) writes U+2028, U+2029 and NEL unescaped; str.splitlines() would cut rows there
    rows = [{"question": f"Line one\u2028line two\x85{q['question']}\u2029", "answer": q["answer"]} for q in QA[:4]]
    path = tmp_path / "web.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows), encoding="utf-8")
    done = prepare_data(_request(tokenizer_dir, [path]), root=tmp_path / "cache")
    assert done.counts["read"] == 4 and done.counts["train"] == 4
    assert _rows(done.train)[0]["prompt"][0]["content"].startswith("Line one\u2028line two\x85What is 998")


def test_a_json_file_holding_json_lines_is_read_as_jsonl(tmp_path: Path, tokenizer_dir: str) -> None:
    path = tmp_path / "named.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in QA[:3]) + "\n" + '{"question": "q", \n')
    with pytest.raises(SpecError) as err:
        prepare_data(_request(tokenizer_dir, [path]), root=tmp_path / "cache")
    assert err.value.key == f"{path}:5" and "invalid JSON" in err.value.problem
    path.write_text("".join(json.dumps(r) + "\n" for r in QA[:3]))
    done = prepare_data(_request(tokenizer_dir, [path]), root=tmp_path / "cache")
    assert done.counts["read"] == 3 and _rows(done.train)[0]["reward_model"]["ground_truth"] == "1001"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("null", "is JSON null, not an object of fields"),
        ('"text"', "is a JSON string, not an object of fields"),
        ('{"question": "q", "answer": "#### 1", "x": 1} 7', "invalid JSON"),
        ('{"question": [], "answer": "#### 1"}', "field 'question' is an empty list: it needs chat turns"),
    ],
)
def test_a_row_that_is_not_an_object_of_fields_says_what_it_is(
    tmp_path: Path, tokenizer_dir: str, line: str, problem: str
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(QA[0]) + "\n" + line + "\n")
    with pytest.raises(SpecError) as err:
        prepare_data(_request(tokenizer_dir, [path]), root=tmp_path / "cache")
    assert err.value.key == f"{path}:2" and problem in err.value.problem


def test_a_missing_split_of_a_dataset_dict_names_the_setting(tmp_path: Path, tokenizer_dir: str) -> None:
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(QA)}).save_to_disk(str(tmp_path / "hf"))
    request = _request(tokenizer_dir, [tmp_path / "hf"], split=SplitSettings(train_name="train_prefs"))
    with pytest.raises(SpecError) as err:
        prepare_data(request, root=tmp_path / "cache")
    assert "has no split 'train_prefs' (splits: train)" in err.value.problem
    assert err.value.hint == "set data.split.train_name to one of: train"


def test_a_csv_field_over_128_kib_is_read(tmp_path: Path, tokenizer_dir: str) -> None:
    # Python's csv module refuses fields over 131072 characters unless told otherwise: long documents are real rows
    path = tmp_path / "long.csv"
    long_question = "How many apples? " * 10000
    path.write_text(f'question,answer\n"{long_question}","#### 3"\nq,#### 4\n')
    done = prepare_data(_request(tokenizer_dir, [path], max_tokens=200_000), root=tmp_path / "cache")
    assert done.counts["read"] == 2 and done.counts["train"] == 2


def test_a_folder_skips_hidden_folders_and_refuses_one_split_twice(tmp_path: Path, tokenizer_dir: str) -> None:
    import pandas as pd

    folder = tmp_path / "gsm8k"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    for where in (folder / "train.jsonl", folder / ".ipynb_checkpoints" / "train-checkpoint.jsonl"):
        where.write_text("".join(json.dumps(r) + "\n" for r in QA))
    done = prepare_data(_request(tokenizer_dir, [folder]), root=tmp_path / "cache")
    assert done.counts["read"] == 20
    pd.DataFrame(QA).to_parquet(folder / "train.parquet")  # the same split again, converted in place
    with pytest.raises(SpecError) as err:
        prepare_data(_request(tokenizer_dir, [folder]), root=tmp_path / "cache")
    assert "train.jsonl" in err.value.problem and "train.parquet" in err.value.problem
    assert "data.train_files" in err.value.hint


@pytest.mark.parametrize("question", ["[1, 2, 3]: what is their sum?", "[1, 2, 3]", "[Geometry] A square has side 2."])
def test_a_text_prompt_starting_with_a_bracket_is_text(tmp_path: Path, tokenizer_dir: str, question: str) -> None:
    path = tmp_path / "qa.jsonl"
    rows = [{"question": question, "answer": "#### 6"}, QA[0]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = prepare_data(_request(tokenizer_dir, [path]), root=tmp_path / "cache")
    first = _rows(done.train)[0]
    assert first["prompt"] == [{"role": "user", "content": f"{question} Answer after ####."}]
    assert done.counts["train"] == 2


def test_a_chat_template_that_refuses_a_conversation_is_a_spec_error(tmp_path: Path, tokenizer_dir: str) -> None:
    import shutil

    # Gemma's template raises on a system turn; Mistral's when roles do not alternate
    model = tmp_path / "model"
    shutil.copytree(tokenizer_dir, model)
    (model / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    )
    path = tmp_path / "chat.jsonl"
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    path.write_text(json.dumps({"messages": [*turns, {"role": "assistant", "content": "hello"}]}) + "\n")
    request = _request(str(model), [path], fmt="messages", fields=FieldMap())
    with pytest.raises(SpecError) as err:
        prepare_data(request, root=tmp_path / "cache")
    assert "System role not supported" in err.value.problem and "system, user, assistant" in err.value.problem


def test_an_unknown_sharegpt_speaker_is_named_as_written(tmp_path: Path, tokenizer_dir: str) -> None:
    path = tmp_path / "glaive.jsonl"
    turns = [{"from": "human", "value": "q"}, {"from": "function_call", "value": "{}"}, {"from": "gpt", "value": "a"}]
    path.write_text(json.dumps({"conversations": turns}) + "\n")
    request = _request(tokenizer_dir, [path], fmt="messages", fields=FieldMap(messages="conversations"))
    with pytest.raises(SpecError) as err:
        prepare_data(request, root=tmp_path / "cache")
    assert err.value.key == f"{path}:1"
    assert "field 'conversations[1].from' is 'function_call'; expected one of human, gpt" in err.value.problem


@pytest.mark.parametrize("columnar", [True, False])
def test_no_training_rows_left_says_where_the_rows_went(
    tmp_path: Path, tokenizer_dir: str, columnar: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two prompts over the limit and one that fits, which the seeded split holds out for validation: the message
    accounts for all three rows (it left out the validation one, and 'check the length limits' misled)."""
    from trainer_platform.data import columnar_build

    if not columnar:  # the per-row path, which the columnar one falls back to
        monkeypatch.setattr(columnar_build, "build_columnar", lambda *a: False)
    long = {"question": "What is 1 + 3? " * 40, "answer": "#### 4"}
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [long, long, QA[0]]))
    split = SplitSettings(val_fraction=0.34, seed=4)  # seed 4 holds out the third row
    with pytest.raises(SpecError) as err:
        prepare_data(_request(tokenizer_dir, [path], max_tokens=64, split=split), root=tmp_path / "c")
    assert "(3 read, 0 bad, 2 over the length limit, 1 for validation)" in err.value.problem
    assert "data.split" in err.value.hint
