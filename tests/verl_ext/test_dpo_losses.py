"""The DPO losses (verl/tp_dpo_losses.py) against their closed forms, and the engine-side reductions."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from trainer_platform.paths import verl_ext_dir

sys.path.insert(0, str(verl_ext_dir()))

from tp_dpo_losses import DPOLossConfig, dpo_loss, sequence_logps  # noqa: E402

# One hand-built pair: summed log-probs of the policy and the reference.
PI_C, PI_R, REF_C, REF_R = -10.0, -14.0, -11.0, -12.5
H = (PI_C - PI_R) - (REF_C - REF_R)  # 4.0 - 1.5 = 2.5


def _loss(config: DPOLossConfig):
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    return dpo_loss(t(PI_C), t(PI_R), t(REF_C), t(REF_R), config)


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_sigmoid_matches_closed_form(beta: float) -> None:
    out = _loss(DPOLossConfig(beta=beta, loss_type="sigmoid"))
    assert out.losses.item() == pytest.approx(-_log_sigmoid(beta * H), abs=1e-5)
    assert out.chosen_rewards.item() == pytest.approx(beta * (PI_C - REF_C), abs=1e-5)
    assert out.rejected_rewards.item() == pytest.approx(beta * (PI_R - REF_R), abs=1e-5)


def test_label_smoothing_matches_conservative_dpo() -> None:
    beta, eps = 0.2, 0.1
    out = _loss(DPOLossConfig(beta=beta, loss_type="sigmoid", label_smoothing=eps))
    expected = -(1 - eps) * _log_sigmoid(beta * H) - eps * _log_sigmoid(-beta * H)
    assert out.losses.item() == pytest.approx(expected, abs=1e-5)


def test_ipo_matches_closed_form() -> None:
    beta = 0.25
    out = _loss(DPOLossConfig(beta=beta, loss_type="ipo"))
    assert out.losses.item() == pytest.approx((H - 1 / (2 * beta)) ** 2, abs=1e-5)


def test_loss_at_reference_is_log2_and_gradient_prefers_chosen() -> None:
    pc = torch.tensor([-5.0], requires_grad=True)
    pr = torch.tensor([-6.0], requires_grad=True)
    out = dpo_loss(pc, pr, pc.detach().clone(), pr.detach().clone(), DPOLossConfig(beta=0.1))
    assert out.losses.item() == pytest.approx(math.log(2), abs=1e-6)
    out.losses.sum().backward()
    assert pc.grad is not None and pr.grad is not None
    assert pc.grad.item() < 0 < pr.grad.item()  # descent raises the chosen and lowers the rejected log-prob


@pytest.mark.parametrize(
    "kwargs",
    [{"beta": 0.0}, {"loss_type": "hinge"}, {"label_smoothing": 0.5}, {"loss_type": "ipo", "label_smoothing": 0.1}],
)
def test_invalid_config_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DPOLossConfig(**kwargs)


def test_sequence_logps_counts_only_response_predictions() -> None:
    # two packed sequences: [p p r r] and [p r r]; token_logps[t] predicts token t+1
    token_logps = torch.tensor([-1.0, -2.0, -3.0, -100.0, -4.0, -5.0, -200.0])
    mask = torch.tensor([0, 0, 1, 1, 0, 1, 1])
    out = sequence_logps(token_logps, mask, torch.tensor([4, 3]))
    assert out.tolist() == [-2.0 - 3.0, -4.0 - 5.0]
