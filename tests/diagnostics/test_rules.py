"""The rules on recorded metric streams: real curves from this project's own runs (the default GRPO job's 20 steps,
recorded here; the console's SFT, DPO and GRPO fixtures) raise no false alarm, and each anomaly planted into a real
curve is caught by its rule at the step it was planted."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO_ROOT
from trainer_platform.cli.app import main
from trainer_platform.diagnostics import ConfigError, config_from_dict, evaluate
from trainer_platform.runs.metrics import read_jsonl

CURVES = Path(__file__).parent / "curves"
GRPO = read_jsonl(CURVES / "grpo_default_job.jsonl")


def _conf(kind: str, **rules: dict[str, Any]) -> Any:
    data = yaml.safe_load((REPO_ROOT / "conf" / "diagnostics" / f"{kind}.yaml").read_text())
    for name, settings in rules.items():
        data["rules"][name].update(settings)
    return config_from_dict(data)


@pytest.mark.parametrize(
    ("curve", "kind"),
    [
        (CURVES / "grpo_default_job.jsonl", "rl"),
        (REPO_ROOT / "tests/console/runs/grpo/metrics.jsonl", "rl"),
        (REPO_ROOT / "tests/console/runs/sft/metrics.jsonl", "sft"),
        (REPO_ROOT / "tests/console/runs/dpo/metrics.jsonl", "dpo"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.parent.name + "/" + v.name,
)
def test_healthy_curves_raise_no_alarm(curve: Path, kind: str) -> None:
    assert evaluate(read_jsonl(curve), _conf(kind)) == []


def _planted(changes: dict[int, dict[str, float]]) -> list[dict[str, Any]]:
    records = copy.deepcopy(GRPO)
    for record in records:
        record["data"].update(changes.get(record["step"], {}))
    return records


def _scaled(key: str, start: int, factor: float) -> dict[int, dict[str, float]]:
    return {r["step"]: {key: r["data"][key] * factor} for r in GRPO if r["step"] >= start}


PLANTED = {
    "non_finite": (_planted({9: {"actor/pg_loss": float("nan")}}), 9, "actor/pg_loss"),
    "kl_spike": (_planted({12: {"actor/kl_loss": 4.0}}), 12, "actor/kl_loss"),
    "grad_norm_explosion": (_planted({15: {"actor/grad_norm": 40.0}}), 15, "actor/grad_norm"),
    "entropy_collapse": (_planted(_scaled("actor/entropy", 14, 0.05)), 14, "actor/entropy"),
    # zero reward from step 13: the 5-step mean falls more than 0.2 below its best at step 16 (4 zeros in it)
    "reward_collapse": (_planted({s: {"critic/score/mean": 0.0} for s in range(13, 21)}), 16, "critic/score/mean"),
    # responses 6x longer from step 11: the 5-step mean length is over 2x its first at once, with the reward up
    "reward_hacking": (_planted(_scaled("response_length/mean", 11, 6.0)), 11, "response_length/mean"),
    "prob_mismatch": (_planted({6: {"training/rollout_probs_diff_max": 0.9}}), 6, "training/rollout_probs_diff_max"),
}


@pytest.mark.parametrize("rule", sorted(PLANTED))
def test_a_planted_anomaly_is_caught_at_its_step(rule: str) -> None:
    records, step, metric = PLANTED[rule]
    found = [(a.rule, a.step, a.metric) for a in evaluate(records, _conf("rl"))]
    assert found == [(rule, step, metric)]


def test_validation_reward_falling_while_the_reward_rises() -> None:
    records = copy.deepcopy(GRPO)
    for step, val in ((5, 0.3), (10, 0.32), (15, 0.2)):
        records[step - 1]["data"]["val-core/tiny_math/reward/mean@1"] = val
    found = [(a.rule, a.step, a.metric) for a in evaluate(records, _conf("rl"))]
    assert found == [("reward_hacking", 15, "val-core/tiny_math/reward/mean@1")]


def test_loss_plateau_on_sft() -> None:
    records = [{"step": s, "data": {"train/loss": 2.0 / s if s <= 30 else 0.0667}} for s in range(1, 61)]
    found = [(a.rule, a.step) for a in evaluate(records, _conf("sft", loss_plateau={"window": 20}))]
    # flat from step 31: the last 10 steps' mean is under 1% below the 10 before it from step 48 on
    assert found == [("loss_plateau", 48)]


def test_bad_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"diagnostics.rules.kl_spike.factr.*did you mean 'factor'"):
        config_from_dict({"rules": {"kl_spike": {"factr": 2}}})
    with pytest.raises(ConfigError, match=r"diagnostics.rules.kl_spik.*did you mean 'kl_spike'"):
        config_from_dict({"rules": {"kl_spik": {}}})
    with pytest.raises(ConfigError, match="action"):
        config_from_dict({"rules": {"kl_spike": {"action": "explode"}}})


def _run_dir(tmp_path: Path, records: list[dict[str, Any]]) -> Path:
    run = tmp_path / "run"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "succeeded"}))
    (run / "spec.yaml").write_text("algorithm: {kind: rl}\n")
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_diagnose_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", str(_run_dir(tmp_path / "a", GRPO))]) == 0
    assert "healthy" in capsys.readouterr().out
    records, step, _ = PLANTED["kl_spike"]
    assert main(["diagnose", str(_run_dir(tmp_path / "b", records))]) == 1
    assert f"step {step}  kl_spike  actor/kl_loss" in capsys.readouterr().out
    assert main(["diagnose", str(tmp_path / "missing")]) == 2
