"""The `data.reward` setting: bad values fail at validation (exit 2, naming the key, with a hint; nothing written),
good ones reach verl's overrides. Runs train.py in-process as a dry run (nothing can launch); one case runs as a
subprocess exactly as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_train
from trainer_platform import entry
from trainer_platform.compose import compose_config
from trainer_platform.errors import SpecError
from trainer_platform.rewards import reward_kwargs, user_files
from trainer_platform.spec import RunSpec

GOOD = "def my_reward(data_source, solution_str, ground_truth, extra_info=None, bonus=0.0):\n    return 1.0 + bonus\n"
USER_FILES = {
    "good.py": GOOD,
    "kwargs_only.py": "def my_reward(**kwargs):\n    return 0.0\n",
    "star.py": "from os.path import *\n",
    "nofn.py": "def other_reward(data_source, solution_str, ground_truth, extra_info=None):\n    return 0.0\n",
    "syntax.py": "def my_reward(:\n    return 0\n",
    "badsig.py": "def my_reward(response, truth):\n    return 0.0\n",
    "posonly.py": "def my_reward(data_source, solution_str, ground_truth, extra_info, /):\n    return 0.0\n",
    "notes.txt": "not python",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reward_files")
    for name, text in USER_FILES.items():
        (folder / name).write_text(text)
    return folder


T = "{tmp}"
BAD = [
    # unknown names: scorer, option, term scorer
    ("scorer-typo", ["data.reward.scorer=maths"], "data.reward.scorer", "did you mean 'math'"),
    ("option-typo", ["+data.reward.options.format_scor=0.1"], "data.reward.options.format_scor", "format_score"),
    ("option-type", ["+data.reward.options.strict=maybe"], "data.reward.options.strict", "default"),
    ("option-choice", ["+data.reward.options.several_answers=first"], "several_answers", "reject"),
    ("regex-missing", ["data.reward.scorer=regex"], "data.reward.options.pattern", "set it"),
    ("regex-bad", ["data.reward.scorer=regex", "+data.reward.options.pattern='(x'"], "options.pattern", "re"),
    ("options-on-verl", ["data.reward.scorer=verl", "+data.reward.options.strict=true"], "data.reward.options", ""),
    ("terms-not-composite", ["data.reward.terms=[{scorer:math}]"], "data.reward.terms", "composite"),
    ("composite-empty", ["data.reward.scorer=composite"], "data.reward.terms", "add"),
    ("term-typo", ["data.reward.scorer=composite", "data.reward.terms=[{scorer:lenght}]"], "terms.0.scorer", "length"),
    ("term-nested", ["data.reward.scorer=composite", "data.reward.terms=[{scorer:composite}]"], "terms.0.scorer", ""),
    (
        "term-option",
        ["data.reward.scorer=composite", "data.reward.terms=[{scorer:length,options:{max:3}}]"],
        "data.reward.terms.0.options.max",
        "max_len",
    ),
    # bad weights
    (
        "weight-nan",
        ["data.reward.scorer=composite", "data.reward.terms=[{scorer:math,weight:nan}]"],
        "data.reward.terms.0.weight",
        "",
    ),
    (
        "weight-inf",
        ["data.reward.scorer=composite", "data.reward.terms=[{scorer:math,weight:inf}]"],
        "data.reward.terms.0.weight",
        "",
    ),
    (
        "weight-text",
        ["data.reward.scorer=composite", "data.reward.terms=[{scorer:math,weight:heavy}]"],
        "data.reward.terms.0.weight",
        "",
    ),
    (
        "weights-zero",
        ["data.reward.scorer=composite", "data.reward.terms=[{scorer:math,weight:0},{scorer:tags,weight:0}]"],
        "data.reward.terms",
        "weight",
    ),
    # the user's file and function
    ("file-missing", ["data.reward.scorer=custom", "data.reward.path=/nonexistent/reward.py"], "data.reward.path", ""),
    ("file-not-python", ["data.reward.scorer=custom", f"data.reward.path={T}/notes.txt"], "notes.txt", "fix"),
    (
        "file-syntax",
        ["data.reward.scorer=custom", f"data.reward.path={T}/syntax.py", "data.reward.name=my_reward"],
        "syntax.py:1",
        "fix",
    ),
    (
        "fn-missing",
        ["data.reward.scorer=custom", f"data.reward.path={T}/nofn.py", "data.reward.name=my_reward"],
        "data.reward.name",
        "did you mean 'other_reward'",
    ),
    (
        "fn-signature",
        ["data.reward.scorer=custom", f"data.reward.path={T}/badsig.py", "data.reward.name=my_reward"],
        "data.reward.name",
        "def my_reward(data_source",
    ),
    (
        "fn-positional-only",
        [f"data.reward.path={T}/posonly.py", "data.reward.scorer=null", "data.reward.name=my_reward"],
        "data.reward.name",
        "",
    ),
    (
        "fn-option-unknown",
        [
            "data.reward.scorer=custom",
            f"data.reward.path={T}/good.py",
            "data.reward.name=my_reward",
            "+data.reward.options.malus=1",
        ],
        "malus",
        "",
    ),
    (
        "term-file-missing",
        ["data.reward.scorer=composite", "data.reward.terms=[{scorer:custom,path:/no/r.py}]"],
        "data.reward.terms.0.path",
        "",
    ),
    # settings the chosen scorer never reads
    ("path-with-math", [f"data.reward.path={T}/good.py"], "data.reward.path", "scorer=custom"),
    ("name-with-math", ["data.reward.name=my_reward"], "data.reward.name", "custom"),
    (
        "term-path-builtin",
        ["data.reward.scorer=composite", f"data.reward.terms=[{{scorer:math,path:{T}/good.py}}]"],
        "data.reward.terms.0.path",
        "",
    ),
]


def _args(args: list[str], folder: Path) -> list[str]:
    return ["algorithm=grpo", "data=tiny_math", "dry_run=true", *(a.replace(T, str(folder)) for a in args)]


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")}


@pytest.mark.parametrize(("case", "args", "culprit", "hint"), BAD, ids=[b[0] for b in BAD])
def test_bad_reward_settings_exit_2(
    case: str,
    args: list[str],
    culprit: str,
    hint: str,
    files: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(files)
    before = _snapshot(files)
    code = entry.main(_args(args, files))
    out, err = capsys.readouterr()
    assert code == 2, (out[-1500:], err[-1500:])
    assert err.startswith("error: ") and "Traceback" not in out + err, err
    assert culprit in err and "hint: " in err and hint in err, err
    assert _snapshot(files) == before


def test_through_a_subprocess(files: Path) -> None:
    args = ["data.reward.scorer=custom", f"data.reward.path={files}/nofn.py", "data.reward.name=my_reward"]
    res = run_train(*_args(args, files), cwd=files, timeout=300, check=False)
    assert res.returncode == 2 and res.stderr.startswith("error: data.reward.name"), res.stderr
    assert "Traceback" not in res.stderr


def _spec(*overrides: str) -> RunSpec:
    return RunSpec.from_config(compose_config(["algorithm=grpo", "data=tiny_math", *overrides]))


def test_good_settings_validate(files: Path) -> None:
    custom = _spec(
        "data.reward.scorer=custom",
        f"data.reward.path={files}/good.py",
        "data.reward.name=my_reward",
        "+data.reward.options.bonus=0.5",
    )
    assert reward_kwargs(custom.data.reward) == {"bonus": 0.5}  # type: ignore[arg-type]
    assert user_files(custom.data.reward) == [str(files / "good.py")]
    # a null scorer with a file is custom; **kwargs takes any option; a star import may define the name
    _spec(
        f"data.reward.path={files}/kwargs_only.py",
        "data.reward.scorer=null",
        "data.reward.name=my_reward",
        "+data.reward.options.anything=1",
    )
    _spec("data.reward.scorer=custom", f"data.reward.path={files}/star.py", "data.reward.name=join")
    composite = _spec(
        "data.reward.scorer=composite",
        f"data.reward.terms=[{{scorer:math,weight:1.0}},{{scorer:custom,path:{files}/good.py,name:my_reward,weight:-0.5}}]",
    )
    kwargs = reward_kwargs(composite.data.reward)  # type: ignore[arg-type]
    assert kwargs["scorer"] == "composite" and kwargs["terms"][1]["path"] == str(files / "good.py")
    assert json.dumps(kwargs)  # plain data


def test_relative_user_path_becomes_absolute(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(files)
    spec = _spec("data.reward.scorer=custom", "data.reward.path=good.py", "data.reward.name=my_reward")
    assert spec.data.reward is not None and spec.data.reward.path == str(files / "good.py")


def test_sft_refuses_a_reward() -> None:
    with pytest.raises(SpecError) as err:
        RunSpec.from_config(compose_config(["algorithm=sft", "data=tiny_sft", "+data.reward.scorer=math"]))
    assert err.value.key == "data.reward"
