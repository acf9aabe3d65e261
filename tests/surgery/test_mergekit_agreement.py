"""linear, task arithmetic, SLERP and TIES agree with mergekit on the same inputs.

mergekit is a test-only tool, never a project dependency (it pins its own torch/transformers): point MERGEKIT_YAML
at the `mergekit-yaml` of a throwaway venv (`python -m venv /tmp/mk && /tmp/mk/bin/pip install mergekit`), or have
it on PATH; otherwise these tests skip. float32 inputs agree to float32 rounding; bf16 inputs (mergekit computes
some of it in bf16) to bf16 rounding on all but a sliver of TIES' trim boundary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from trainer_platform.surgery.run import run_surgery
from trainer_platform.surgery.steps import SurgerySpec
from trainer_platform.surgery.tensors import Checkpoint

MERGEKIT = os.environ.get("MERGEKIT_YAML") or shutil.which("mergekit-yaml")
pytestmark = pytest.mark.skipif(MERGEKIT is None, reason="mergekit-yaml not found (set MERGEKIT_YAML)")


def _cases(a: str, b: str, c: str) -> dict[str, tuple[dict, dict]]:
    def w(m: str, weight: float, **more: float) -> dict:
        return {"model": m, "parameters": {"weight": weight, **more}}

    return {
        "linear": ({"op": "linear", "models": [a, b], "weights": [0.3, 0.7]},
                   {"merge_method": "linear", "models": [w(a, 0.3), w(b, 0.7)]}),
        "slerp": ({"op": "slerp", "models": [a, b], "t": [0.1, 0.9]},
                  {"merge_method": "slerp", "base_model": a, "models": [{"model": a}, {"model": b}],
                   "parameters": {"t": [0.1, 0.9]}}),
        "task_arithmetic": ({"op": "task_arithmetic", "base": c, "models": [a, b], "weights": [0.5, 0.8]},
                            {"merge_method": "task_arithmetic", "base_model": c, "models": [w(a, 0.5), w(b, 0.8)]}),
        "ties": ({"op": "ties", "base": c, "models": [a, b], "weights": [0.5, 0.8], "density": 0.3},
                 {"merge_method": "ties", "base_model": c,
                  "models": [w(a, 0.5, density=0.3), w(b, 0.8, density=0.3)]}),
    }  # fmt: skip


@pytest.mark.parametrize("method", ["linear", "slerp", "task_arithmetic", "ties"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_agrees_with_mergekit(models: dict[str, Path], tmp_path: Path, method: str, dtype: str) -> None:
    prefix = "f" if dtype == "float32" else ""
    a, b, c = (str(models[prefix + k]) for k in "abc")
    ours, theirs = _cases(a, b, c)[method]
    run_surgery(SurgerySpec.model_validate({"steps": [ours]}), tmp_path / "ours", log=lambda *_: None)
    (tmp_path / "mk.yml").write_text(json.dumps({**theirs, "dtype": dtype}))
    res = subprocess.run([str(MERGEKIT), str(tmp_path / "mk.yml"), str(tmp_path / "mk")], capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    got, ref = Checkpoint(tmp_path / "ours"), Checkpoint(tmp_path / "mk")
    assert set(got.names) == set(ref.names)
    for name in ref.names:
        x, y = got.tensor(name).float(), ref.tensor(name).float()
        if dtype == "float32":
            assert torch.allclose(x, y, rtol=1e-5, atol=1e-6), name
        else:
            close = torch.isclose(x, y, rtol=2**-6, atol=1e-3)
            assert close.float().mean() >= (0.99 if method == "ties" else 0.999), name
