"""`trainer-platform surgery`: composition, dry run, and bad input as one clear message with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer_platform.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["surgery", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_slerp_writes_output(models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, text = _run(
        capsys,
        "surgery=slerp",
        f"surgery.models=[{models['a']},{models['b']}]",
        "surgery.t=0.3",
        f"surgery.output={out}",
    )
    assert code == 0, text
    assert (out / "lineage.json").is_file() and (out / "model.safetensors.index.json").is_file()
    code, text = _run(capsys, "surgery=slerp", f"surgery.models=[{models['a']},{models['b']}]", f"surgery.output={out}")
    assert code == 2 and "already exists" in text


def test_dry_run_prints_reads_writes_size(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dry"
    code, text = _run(
        capsys,
        "surgery=ties",
        f"surgery.base={models['c']}",
        f"surgery.models=[{models['a']},{models['b']}]",
        f"surgery.output={out}",
        "dry_run=true",
    )
    assert code == 0, text
    assert "reads" in text and str(models["c"]) in text and "KiB in 1 shard" in text
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["surgery=slerp", "surgery.models=[{a},{b}]", "surgery.t=1.5"], "error: surgery.t: "),
        (["surgery=slerp", "surgery.models=[{a},{b}]", "surgery.steps=[{{op:slerp,t:2}}]"], "surgery.steps.0.t: "),
        (["surgery=linear", "surgery.models=[{a},{b}]", "surgery.weights=[1,abc]"], "error: surgery.weights.1: "),
        (["surgery=ties", "surgery.base={c}", "surgery.models=[{a}]", "surgery.density=0"], "density"),
        (["surgery=slerp", "surgery.models=[{a},{untied}]"], "lm_head.weight"),
        (["surgery=slerp", "surgery.models=[{a},/nonexistent/model]"], "no such file"),
        (["surgery=drop_layers", "surgery.model={a}", "surgery.layers=[9]"], "out of range"),
        (
            ["surgery=linear", "surgery.models=[{a},{b}]", "surgery.weights=[0.2,0.2]", "surgery.normalize=false"],
            "sum to 0.4",
        ),
        (["surgery=linear", "surgery.models=[{a},{b}]", "surgery.weights=[1,0,1]"], "3 weights for 2 models"),
        (["surgery=slerp", "surgery.models=[{a},{b}]", "+surgery.density=0.5"], "no step of this surgery takes"),
        (["surgery=slerpp"], "did you mean 'slerp'"),
        (["surgery=slerp", "surgery.models=[{a},{b}]"], "surgery.output: is required"),
        (["surgery=lora_merge", "surgery.adapter={tmp}"], "adapter_config.json"),
    ],
)
def test_bad_input_exit_2(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    names = {k: str(v) for k, v in models.items()}
    filled = [a.format(tmp=tmp_path, **names) for a in args]
    if "surgery.output" not in needle:
        filled.append(f"surgery.output={tmp_path / 'never'}")
    code, text = _run(capsys, *filled)
    assert code == 2, text
    assert needle in text, text
    assert "Traceback" not in text
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("option", __import__("trainer_platform.compose", fromlist=["x"]).group_options("surgery"))
def test_every_surgery_preset_composes(option: str) -> None:
    """Presets compose; those that need inputs (models, tokens...) refuse to validate without them, clearly."""
    from trainer_platform.compose import compose_config
    from trainer_platform.errors import SpecError
    from trainer_platform.spec import RunSpec

    cfg = compose_config([f"surgery={option}"])
    try:
        RunSpec.from_config(cfg)
    except SpecError as exc:
        assert str(exc).startswith("surgery."), str(exc)
