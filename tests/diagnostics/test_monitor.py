"""The monitor's records and W&B alerts (W&B offline, read back from its run file); steps an earlier attempt
logged prime the rules but are not reported again."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from trainer_platform.diagnostics import config_from_dict
from trainer_platform.diagnostics.monitor import ANOMALIES_FILE, Monitor
from wandb_offline import records


def _write(path: Path, steps: range, nan_at: int) -> None:
    with path.open("a") as f:
        for s in steps:
            loss = float("nan") if s == nan_at else 1.0 / s
            f.write(json.dumps({"step": s, "data": {"train/loss": loss}}) + "\n")


def test_an_earlier_attempt_is_not_reported_again(tmp_path: Path) -> None:
    _write(tmp_path / "metrics.attempt-1.jsonl", range(1, 5), nan_at=3)
    monitor = Monitor(tmp_path, config_from_dict({}), pid=None)
    assert monitor.poll() == []
    _write(tmp_path / "metrics.jsonl", range(5, 8), nan_at=6)
    fired = monitor.poll(final=True)
    assert [(a.rule, a.step) for a in fired] == [("non_finite", 6)]
    lines = (tmp_path / ANOMALIES_FILE).read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [6]


@pytest.mark.timeout(120)
def test_anomalies_become_wandb_alerts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    # wandb.init here records its service's address in os.environ; restored after, so that no later test's
    # subprocess inherits this process's W&B service
    monkeypatch.setenv("WANDB_SERVICE", "")
    settings = {"wandb": {"project": "tp-test", "mode": "offline", "name": "myrun"}, "poll_s": 0.2}
    monitor = Monitor(tmp_path, config_from_dict(settings), pid=None)
    _write(tmp_path / "metrics.jsonl", range(1, 5), nan_at=2)
    assert [a.rule for a in monitor.poll(final=True)] == ["non_finite"]
    monitor.close()
    files = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    deadline = time.monotonic() + 20  # wandb's core process may still be flushing its file when finish() returns
    while not (alerts := [r.alert for r in records(files[0]) if r.WhichOneof("record_type") == "alert"]):
        assert time.monotonic() < deadline, "no alert record in the W&B run file"
        time.sleep(0.2)
    assert [(a.title, a.level) for a in alerts] == [("myrun: non_finite at step 2", "ERROR")]
    assert "train/loss is nan" in alerts[0].text
