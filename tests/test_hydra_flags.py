"""train.py and Hydra's own flags: --cfg/--package/--resolve/--info/--shell-completion behave as in any Hydra app,
hydra.* settings that would mean nothing are refused, --help lists every option, and a sweep checks each value."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT
from trainer_platform.compose import GROUPS, file_description, group_options
from trainer_platform.entry import main


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test in an empty folder; the root logger as it was (Hydra's main configures logging in this process,
    with handlers on the captured stderr of the test that ran it)."""
    monkeypatch.chdir(tmp_path)
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    logging.root.handlers[:], logging.root.level = handlers, level


def _nothing_written(tmp_path: Path) -> bool:
    return list(tmp_path.iterdir()) == []


def test_cfg_prints_the_composed_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cfg", "job", "algorithm=sft", "data=tiny_sft", "train.steps=7"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["algorithm"]["name"] == "sft" and cfg["train"]["steps"] == 7 and "hydra" not in cfg
    assert main(["-c", "job", "--package", "algorithm", "--resolve"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# @package algorithm") and yaml.safe_load(out)["name"] == "grpo"
    assert main(["--cfg", "hydra", "hydra.job.name=probe"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["hydra"]["job"]["name"] == "probe"
    assert main(["--info", "defaults"]) == 0
    assert "algorithm/grpo" in capsys.readouterr().out
    assert logging.raiseExceptions  # restored after Hydra printed
    assert _nothing_written(tmp_path)


def test_cfg_with_a_bad_override_gets_our_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cfg", "job", "algorithm=grpoo"]) == 2
    assert "did you mean 'grpo'" in capsys.readouterr().err


def test_shell_completion(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-sc", "install=bash"]) == 0
    assert "complete -o nospace -o default -F hydra_bash_completion" in capsys.readouterr().out
    monkeypatch.setenv("COMP_LINE", "python train.py algorithm=g")
    assert main(["--shell-completion", "query=bash"]) == 0
    assert capsys.readouterr().out.split() == ["algorithm=grpo", "algorithm=gspo"]
    monkeypatch.setenv("COMP_LINE", "python train.py train.st")
    assert main(["-sc", "query=bash"]) == 0
    assert "train.steps=" in capsys.readouterr().out.split()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["hydra.run.dir=/tmp/elsewhere"], "set run_root=DIR and name=NAME"),
        (["hydra.verbose=true"], "train.log"),
        (["hydra.job.chdir=true"], "run_root"),
        (["hydra/launcher=basic"], "launcher=NAME"),
        (["++hydra.output_subdir=.hydra"], "run_root"),
        (["-m", "hydra.sweep.dir=/tmp/x", "algorithm.lr=1e-6,2e-6"], "run_root"),
        (["--resolve"], "add --cfg job"),
        (["--cfg", "job", "-m", "algorithm.lr=1e-6,2e-6"], "drop -m"),
        (["-cn", "other"], "+experiment=NAME"),
        (["--frobnicate"], "is not an option of train.py"),
        (["-m", "algorithm=grpo,grpoo", "dry_run=true"], "in the sweep run: algorithm=grpoo"),
        (["-m", "algorithm.lr=1e-6,abc", "dry_run=true"], "unable to parse string as a number"),
        (["-m", "algorithm.klcoef=1,2", "dry_run=true"], "unknown key"),
        (["-m", "algorithm=[grpo", "dry_run=true"], "quote values"),
    ],
)
def test_refused_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and "Traceback" not in err, err
    assert _nothing_written(tmp_path)


def test_help_lists_every_option_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for group in GROUPS:
        assert f"  {group}" in out
        for option in group_options(group):
            description = file_description(REPO_ROOT / "conf" / group / f"{option}.yaml")
            assert description, f"conf/{group}/{option}.yaml has no leading comment"
            assert any(line.split()[:1] == [option] and description in line for line in out.splitlines()), option
    assert "algorithm (default: grpo)" in out


def test_first_sentence_of_the_leading_comment(tmp_path: Path) -> None:
    conf = tmp_path / "x.yaml"
    conf.write_text("# @package _global_\n# One sentence that runs\n# onto a second line. And more.\n# field\nkey: 1\n")
    assert file_description(conf) == "One sentence that runs onto a second line."


def test_a_sweep_with_a_bad_value_launches_none_of_it(tmp_path: Path) -> None:
    """Through the real command: exit 2 (not Hydra's 1), nothing created."""
    res = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), "-m", "train.steps=2,0", "dry_run=true"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "train.steps" in res.stderr and "Traceback" not in res.stderr
    assert _nothing_written(tmp_path)
