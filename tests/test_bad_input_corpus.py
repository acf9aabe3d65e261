"""A corpus of bad input, table-driven: each case exits 2 with one message that names the culprit (key or file) and
gives a hint, prints no traceback, leaves no run dir, staging or dry-run folder behind and touches no existing run.

Runs train.py in-process (entry.main) to stay fast; `test_through_a_subprocess` runs a few exactly as a user would.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import run_train
from launchers.base import Handle
from launchers.local import LocalLauncher
from trainer_platform import entry, pipeline
from trainer_platform.compose import compose_config
from trainer_platform.runs import RunDir
from trainer_platform.spec import RunSpec


@dataclass(frozen=True)
class Case:
    id: str
    # train.py arguments; {tmp} is the test's folder (files made by `make_files` live there)
    args: tuple[str, ...]
    # text the message must contain: the culprit key or file
    culprit: str


def _write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if rows:
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        pq.write_table(pa.table({"messages": pa.array([], type=pa.list_(pa.struct([("role", pa.string())])))}), path)
    return path


def make_files(tmp: Path) -> None:
    """Everything the cases point at: broken data files, model dirs and run dirs."""
    turns = [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]
    _write_parquet(tmp / "empty.parquet", [])
    _write_parquet(tmp / "strings.parquet", [{"messages": ["hello", "world"]}] * 4)
    _write_parquet(tmp / "wrongcols.parquet", [{"a": 1, "b": "x"}] * 4)
    _write_parquet(tmp / "rl_noreward.parquet", [{"prompt": turns[:1], "data_source": "x"}] * 4)
    _write_parquet(tmp / "rl_nosource.parquet", [{"prompt": turns[:1], "reward_model": {"ground_truth": "2"}}] * 4)
    _write_parquet(tmp / "pref_norejected.parquet", [{"prompt": turns[:1], "chosen": "2"}] * 4)
    _write_parquet(tmp / "pref_strprompt.parquet", [{"prompt": 7, "chosen": "2", "rejected": "3"}] * 4)
    _write_parquet(tmp / "few.parquet", [{"messages": turns}] * 4)
    (tmp / "garbage.parquet").write_text("this is not parquet")
    good = json.dumps({"messages": turns})
    (tmp / "bad_line.jsonl").write_text(f"{good}\n{good}\n{{not json\n{good}\n")
    (tmp / "no_answer.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    (tmp / "dir.parquet").mkdir()
    (tmp / "a_file").write_text("x")
    for name, config in (("badjson", "{not json"), ("notype", "[]"), ("nomodeltype", '{"hidden_size": 8}')):
        (tmp / name).mkdir()
        (tmp / name / "config.json").write_text(config)
    (tmp / "noconfig").mkdir()
    (tmp / "reward.txt").write_text("not python")
    corrupt = {
        "garbage_status": {"status.json": "{{{ not json", "spec.yaml": "name: x\n"},
        "list_status": {"status.json": "[1, 2]", "spec.yaml": "name: x\n"},
        "state_status": {"status.json": '{"state": "exploded"}', "spec.yaml": "name: x\n"},
        "no_spec": {"status.json": '{"state": "failed"}'},
        "bad_spec": {"status.json": '{"state": "failed"}', "spec.yaml": "a: [unclosed\n  b: {"},
        "list_spec": {"status.json": '{"state": "failed"}', "spec.yaml": "- 1\n- 2\n"},
        "invalid_spec": {"status.json": '{"state": "failed"}', "spec.yaml": "algorithm: {kind: sft}\n"},
    }
    for name, files in corrupt.items():
        (tmp / "corrupt" / name).mkdir(parents=True)
        for rel, text in files.items():
            (tmp / "corrupt" / name / rel).write_text(text)


T = "{tmp}"
SFT = ("algorithm=sft", "data=tiny_sft")
DPO = ("algorithm=dpo", "data=tiny_pref")
GSM = ("algorithm=grpo", "data=gsm8k")
CASES = [
    # run names and run roots the filesystem rejects
    Case("name-dotdot", ("name=../../etc/x",), "name"),
    Case("name-slash", ("name=a/b",), "name"),
    Case("name-long", ("name=" + "n" * 300,), "name"),
    Case("name-hidden", ("name=.hidden",), "name"),
    Case("name-space", ("name='has space'",), "name"),
    Case("name-empty", ("name=''",), "name"),
    Case("run-root-file", (f"run_root={T}/a_file",), "run_root"),
    Case("run-root-under-file", (f"run_root={T}/a_file/sub",), "run_root"),
    Case("run-root-file-dry", (f"run_root={T}/a_file", "dry_run=true"), "run_root"),
    # group options and keys
    Case("algorithm-typo", ("algorithm=grpoo",), "algorithm"),
    Case("model-typo", ("model=qwen2_5_7",), "model"),
    Case("data-typo", ("data=tiny_sftt",), "data"),
    Case("compute-typo", ("compute=8xh10",), "compute"),
    Case("logger-typo", ("logger=wandbb",), "logger"),
    Case("group-null", ("model=null",), "model"),
    Case("group-empty", ("launcher=",), "allowed: local"),
    Case("diagnostics-null", ("diagnostics=null",), "diagnostics needs one of its options"),
    Case("diagnostics-typo", ("diagnostics=sfft",), "did you mean 'sft'"),
    Case("accelerator-without-count", ("compute.accelerator=h100",), "compute.gpus_per_node"),
    Case("key-typo", ("algorithm.klcoef=1",), "klcoef"),
    Case("top-key-typo", ("trian.steps=3",), "trian"),
    Case("not-key-value", ("foo",), "foo"),
    Case("grammar", ("algorithm.lr=1e-3)",), "algorithm.lr"),
    Case("launcher-typo", ("launcher.name=slurmm",), "launcher"),
    # values
    Case("lr-negative", ("algorithm.lr=-1",), "algorithm.lr"),
    Case("lr-text", ("algorithm.lr=abc",), "algorithm.lr"),
    Case("lr-infinite", ("algorithm.lr=inf",), "algorithm.lr"),
    Case("memory-infinite", ("compute.gpu_memory_gib=inf",), "compute.gpu_memory_gib"),
    Case("batch-zero", ("algorithm.batch_size=0",), "algorithm.batch_size"),
    Case("rollout-n-one", ("algorithm.rollout_n=1",), "algorithm.rollout_n"),
    Case("mini-batch-not-divisor", ("algorithm.mini_batch_size=3",), "algorithm.mini_batch_size"),
    Case("mini-batch-larger", ("algorithm.mini_batch_size=64",), "algorithm.mini_batch_size"),
    Case("estimator", ("algorithm.estimator=nope",), "algorithm.estimator"),
    Case("top-p", ("algorithm.top_p=2",), "algorithm.top_p"),
    Case("top-k", ("algorithm.top_k=-5",), "algorithm.top_k"),
    Case("kl-estimator", ("algorithm.kl_estimator=foo",), "algorithm.kl_estimator"),
    Case("loss-mode", ("algorithm.loss_mode=foo",), "algorithm.loss_mode"),
    Case("warmup", ("algorithm.warmup_ratio=1.5",), "algorithm.warmup_ratio"),
    Case("ppo-no-critic", ("algorithm=ppo", "algorithm.critic=null"), "algorithm.critic"),
    Case("micro-not-divisor", (*SFT, "algorithm.micro_batch_size_per_gpu=3"), "micro_batch_size_per_gpu"),
    Case("arch-layers", ("model.arch.layers=0",), "model.arch.layers"),
    Case("seed-text", ("train.seed=abc",), "train.seed"),
    Case("builtin-rows", ("data.builtin_rows.train=0",), "data.builtin_rows.train"),
    Case("wandb-mode", ("logger=wandb", "logger.wandb.mode=sometimes"), "logger.wandb.mode"),
    Case("wandb-project", ("logger=wandb", "logger.wandb.project=a/b"), "logger.wandb.project"),
    Case("wandb-entity", ("logger=wandb", "logger.wandb.entity='x#y'"), "logger.wandb.entity"),
    # algorithm vs data
    Case("sft-on-prompts", ("algorithm=sft", "data=tiny_math"), "data"),
    Case("dpo-on-messages", ("algorithm=dpo", "data=tiny_sft"), "data"),
    Case("rl-on-preference", ("algorithm=grpo", "data=tiny_pref"), "data"),
    # steps, epochs and batches
    Case("steps-zero", ("train.steps=0",), "train.steps"),
    Case("steps-negative", ("train.steps=-3",), "train.steps"),
    Case("save-every-zero", ("train.save_every=0",), "train.save_every"),
    Case("steps-vs-epochs", (*SFT, "train.steps=5", "algorithm.epochs=3"), "algorithm.epochs"),
    Case("steps-vs-epochs-dry", (*SFT, "train.steps=5", "algorithm.epochs=3", "dry_run=true"), "train.steps"),
    Case("batch-over-rows-rl", ("algorithm.batch_size=512", "algorithm.mini_batch_size=4"), "algorithm.batch_size"),
    Case("batch-over-rows-sft", (*SFT, "algorithm.batch_size=1024"), "algorithm.batch_size"),
    Case("batch-over-file-rows", (*SFT, f"data.train_files=[{T}/few.parquet]"), "algorithm.batch_size"),
    Case("cpu-ranks", (*SFT, "compute=cpu", "compute.gpus_per_node=4096"), "compute.gpus_per_node"),
    Case("cpu-ranks-dry", (*SFT, "compute=cpu", "compute.gpus_per_node=4096", "dry_run=true"), "gpus_per_node"),
    # settings the chosen algorithm or data never reads
    Case("rl-max-length", ("data.max_length=64",), "data.max_length"),
    Case("sft-prompt-length", (*SFT, "data.max_prompt_length=10"), "data.max_prompt_length"),
    Case("sft-val-before-train", (*SFT, "train.val_before_train=true"), "train.val_before_train"),
    Case("sft-reward", (*SFT, "+data.reward.path=builtin"), "data.reward"),
    Case("tiny-data-dir", ("data.dir=/somewhere",), "data.dir"),
    Case("tiny-val-only", (*SFT, f"data.val_files=[{T}/few.parquet]"), "data.val_files"),
    # data files
    Case("train-file-missing", (*SFT, "data.train_files=[/nonexistent.parquet]"), "/nonexistent.parquet"),
    Case("train-file-empty", (*SFT, f"data.train_files=[{T}/empty.parquet]"), "empty.parquet"),
    Case("train-file-empty-dry", (*SFT, f"data.train_files=[{T}/empty.parquet]", "dry_run=true"), "empty.parquet"),
    Case("messages-strings", (*SFT, f"data.train_files=[{T}/strings.parquet]"), "strings.parquet"),
    Case("messages-strings-dry", (*SFT, f"data.train_files=[{T}/strings.parquet]", "dry_run=true"), "messages"),
    Case("garbage-parquet", (*SFT, f"data.train_files=[{T}/garbage.parquet]"), "garbage.parquet"),
    Case("wrong-columns", (*SFT, f"data.train_files=[{T}/wrongcols.parquet]"), "wrongcols.parquet"),
    Case("jsonl-invalid-line", (*SFT, f"data.train_files=[{T}/bad_line.jsonl]"), "bad_line.jsonl:3"),
    Case("gsm8k-no-final-number", (*GSM, f"data.train_files=[{T}/no_answer.jsonl]"), "no_answer.jsonl:1"),
    Case("parquet-is-dir", (*SFT, f"data.train_files=[{T}/dir.parquet]"), "dir.parquet"),
    Case("gsm8k-missing", (*GSM, "data.dir=/nonexistent/gsm8k"), "GSM8K_DIR"),
    Case("rl-no-reward", (*GSM, f"data.train_files=[{T}/rl_noreward.parquet]", "data.val_files=null"), "reward_model"),
    Case(
        "rl-no-source",
        (
            *GSM,
            f"data.train_files=[{T}/rl_nosource.parquet]",
            "data.val_files=null",
            "data.fields.data_source_default=null",
        ),
        "data_source",
    ),
    Case("pref-no-rejected", (*DPO, f"data.train_files=[{T}/pref_norejected.parquet]"), "rejected"),
    Case("pref-str-prompt", (*DPO, f"data.train_files=[{T}/pref_strprompt.parquet]"), "prompt"),
    Case("val-file-missing", (*SFT, f"data.train_files=[{T}/few.parquet]", "data.val_files=[/no/val.parquet]"), "val"),
    Case("reward-missing", ("data.reward.path=/nonexistent/reward.py",), "data.reward.path"),
    # model directories
    Case("model-missing", ("model.path=/nonexistent/model",), "model.path"),
    Case("model-bad-json", (f"model.path={T}/badjson",), "config.json"),
    Case("model-bad-json-dry", (f"model.path={T}/badjson", "dry_run=true"), "config.json"),
    Case("model-json-list", (f"model.path={T}/notype",), "model_type"),
    Case("model-no-model-type", (f"model.path={T}/nomodeltype",), "model_type"),
    Case("model-no-config", (f"model.path={T}/noconfig",), "config.json"),
    Case("model-is-file", (f"model.path={T}/a_file",), "model.path"),
    # verl passthrough keys we model, and unknown ones
    Case("verl-batch", ("verl.data.train_batch_size=3",), "algorithm.batch_size"),
    Case("verl-lr", ("verl.actor_rollout_ref.actor.optim.lr=1",), "algorithm.lr"),
    Case("verl-steps", ("verl.trainer.total_training_steps=3",), "train.steps"),
    Case("verl-sft-model", (*SFT, "verl.model.path=/x"), "model.path"),
    Case("verl-rollout-n", ("verl.actor_rollout_ref.rollout.n=2",), "algorithm.rollout_n"),
    Case("verl-unknown", ("verl.trainer.no_such_key=1",), "no_such_key"),
    # flags, one parser everywhere
    Case("dry-run-word", ("dry_run=maybe",), "dry_run"),
    Case("resume-word", ("resume=maybe",), "resume"),
    Case("resume-one-no-target", ("resume=1",), "resume"),
    Case("resume-missing-dir", ("resume=true", "resume_dir=/nonexistent/run"), "/nonexistent/run"),
    Case("resume-not-a-run", ("resume=true", f"resume_dir={T}/noconfig"), "status.json"),
    Case("resume-dry-missing-dir", ("resume=1", "resume_dir=/nonexistent/run", "dry_run=1"), "/nonexistent/run"),
    # corrupt run dirs
    Case("resume-garbage-status", ("resume=true", f"resume_dir={T}/corrupt/garbage_status"), "status.json"),
    Case("resume-list-status", ("resume=true", f"resume_dir={T}/corrupt/list_status"), "status.json"),
    Case("resume-state-status", ("resume=true", f"resume_dir={T}/corrupt/state_status"), "status.json"),
    Case("resume-no-spec", ("resume=true", f"resume_dir={T}/corrupt/no_spec"), "spec.yaml"),
    Case("resume-bad-spec", ("resume=true", f"resume_dir={T}/corrupt/bad_spec"), "spec.yaml"),
    Case("resume-list-spec", ("resume=true", f"resume_dir={T}/corrupt/list_spec"), "spec.yaml"),
    Case("resume-invalid-spec", ("resume=true", f"resume_dir={T}/corrupt/invalid_spec"), "algorithm"),
    Case("resume-bad-override", ("resume=true", "resume_dir={existing}", "algorithm.lr=-1"), "algorithm.lr"),
    Case("resume-dry-bad-override", ("resume=true", "resume_dir={existing}", "train.steps=0", "dry_run=1"), "steps"),
    # local launcher options
    Case("gpus-repeated", ("launcher.gpus=[0,0]",), "launcher.gpus"),
    Case("gpus-negative", ("launcher.gpus=[-1]",), "launcher.gpus"),
    Case("gpus-empty", ("launcher.gpus=[]",), "launcher.gpus"),
    # launch targets
    Case("multi-node-local", (*SFT, "compute=2x8xh100", "algorithm.batch_size=256"), "launcher"),
]


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("corpus")
    make_files(tmp)
    run = RunDir.allocate(tmp / "runs", "existing")
    spec = RunSpec.from_config(compose_config(["name=existing"]))
    import yaml

    run.create({"spec.yaml": yaml.safe_dump(spec.to_config()), "job.json": json.dumps({"argv": []})})
    return tmp


class _NoLaunch(LocalLauncher):
    def submit(self, *_: object) -> list[Handle]:  # type: ignore[override]
        pytest.fail("a bad input reached the launcher")


_REAL_LOOKUP = pipeline._launcher_class


def _no_launch(name: str) -> type[_NoLaunch]:
    """A guard around the launcher lookup (which still refuses bad names): these cases must never launch."""
    _REAL_LOOKUP(name)
    return _NoLaunch


def _args(case: Case, tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)).replace("{existing}", str(tmp / "runs" / "existing")) for a in case.args]


def test_the_corpus_is_wide() -> None:
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(
    case: Case, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(corpus_dir)
    monkeypatch.delenv("GSM8K_DIR", raising=False)
    monkeypatch.setattr(pipeline, "_launcher_class", _no_launch)
    before = _snapshot(corpus_dir)
    code = entry.main(_args(case, corpus_dir))
    out, err = capsys.readouterr()
    assert code == 2, (code, out[-2000:], err[-2000:])
    assert err.startswith("error: ") and "Traceback" not in out + err, err
    assert case.culprit in err, err
    assert "hint: " in err, err
    assert _snapshot(corpus_dir) == before, "a bad input wrote or changed files"


def _check_clean(tmp: Path, before: dict[str, str]) -> None:
    assert _snapshot(tmp) == before


SUBPROCESS = ["name-dotdot", "run-root-file", "resume-list-status", "verl-batch", "model-bad-json-dry"]


@pytest.mark.parametrize("case_id", SUBPROCESS)
def test_through_a_subprocess(case_id: str, corpus_dir: Path) -> None:
    case = next(c for c in CASES if c.id == case_id)
    before = _snapshot(corpus_dir)
    res = run_train(*_args(case, corpus_dir), cwd=corpus_dir, timeout=300, check=False)
    assert res.returncode == 2 and res.stderr.startswith("error: "), res.stderr
    assert case.culprit in res.stderr and "hint: " in res.stderr and "Traceback" not in res.stderr
    _check_clean(corpus_dir, before)
