"""linear, task arithmetic, SLERP and TIES agree with mergekit on the same inputs.

mergekit is a test dependency (pyproject's `test` extra, installed by scripts/setup.sh). Its merges all run in one
Python process (mergekit's own `run_merge`, what `mergekit-yaml` calls), so its import is paid once. float32 inputs
agree to float32 rounding; bf16 inputs (mergekit computes some of it in bf16) to bf16 rounding on all but a sliver
of TIES' trim boundary.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer_platform.surgery.run import run_surgery
from trainer_platform.surgery.steps import SurgerySpec
from trainer_platform.surgery.tensors import Checkpoint

METHODS = ("linear", "slerp", "task_arithmetic", "ties")
DTYPES = ("float32", "bfloat16")
# runs mergekit's merges listed in a JSON file ([[config, out_dir], ...]) the way `mergekit-yaml` does
_MERGEKIT_RUNNER = """
import json, sys
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.options import MergeOptions
for config, out in json.load(open(sys.argv[1])):
    run_merge(MergeConfiguration.model_validate(config), out, options=MergeOptions())
"""


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


@pytest.fixture(scope="module")
def mergekit_outputs(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """mergekit's output folder of every (method, dtype) case, all merged by one mergekit process."""
    root = tmp_path_factory.mktemp("mergekit")
    jobs, outs = [], {}
    for dtype in DTYPES:
        prefix = "f" if dtype == "float32" else ""
        a, b, c = (str(models[prefix + k]) for k in "abc")
        for method in METHODS:
            outs[method, dtype] = root / f"{method}-{dtype}"
            jobs.append([{**_cases(a, b, c)[method][1], "dtype": dtype}, str(outs[method, dtype])])
    (root / "jobs.json").write_text(json.dumps(jobs))
    res = subprocess.run([sys.executable, "-c", _MERGEKIT_RUNNER, str(root / "jobs.json")], capture_output=True,
                         text=True, timeout=900)  # fmt: skip
    assert res.returncode == 0, (
        "mergekit failed (is the test extra installed? bash scripts/setup.sh):\n" + (res.stderr[-3000:])
    )
    return outs


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_agrees_with_mergekit(
    models: dict[str, Path], mergekit_outputs: dict[tuple[str, str], Path], tmp_path: Path, method: str, dtype: str
) -> None:
    prefix = "f" if dtype == "float32" else ""
    a, b, c = (str(models[prefix + k]) for k in "abc")
    ours, _ = _cases(a, b, c)[method]
    run_surgery(SurgerySpec.model_validate({"steps": [ours]}), tmp_path / "ours", log=lambda *_: None)
    got, ref = Checkpoint(tmp_path / "ours"), Checkpoint(mergekit_outputs[method, dtype])
    assert set(got.names) == set(ref.names)
    for name in ref.names:
        x, y = got.tensor(name).float(), ref.tensor(name).float()
        if dtype == "float32":
            assert torch.allclose(x, y, rtol=1e-5, atol=1e-6), name
        else:
            close = torch.isclose(x, y, rtol=2**-6, atol=1e-3)
            assert close.float().mean() >= (0.99 if method == "ties" else 0.999), name
