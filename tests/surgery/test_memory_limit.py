"""Streaming: a merge of two models, each larger than the memory limit it runs under (a cgroup), succeeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

LIMIT = 500 << 20  # bytes: python + torch take ~250 MiB of it
TENSORS, ROWS, COLS = 16, 2048, 4096  # 16 x 32 MiB of float32 = 512 MiB per model


def _memory_cgroup() -> Path | None:
    """A fresh child of this process's cgroup-v1 memory cgroup, or None when it cannot be created here."""
    try:
        line = next(x for x in Path("/proc/self/cgroup").read_text().splitlines() if ":memory:" in x)
        group = Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].lstrip("/") / f"tp-surgery-{os.getpid()}"
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(LIMIT))
        return group
    except (StopIteration, OSError):
        return None


def _big_model(out: Path, seed: int) -> Path:
    import torch

    from trainer_platform.surgery.tensors import OutTensor, write_checkpoint

    out.mkdir()
    gen = torch.Generator().manual_seed(seed)

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(8):
            yield torch.randn(ROWS // 8, COLS, generator=gen)

    tensors = [
        OutTensor(f"model.layers.{i}.mlp.up_proj.weight", (ROWS, COLS), torch.float32, chunks) for i in range(TENSORS)
    ]
    write_checkpoint(out, tensors, 256 << 20)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "num_hidden_layers": TENSORS}
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.mark.slow  # writes 1.5 GB
def test_slerp_of_models_larger_than_the_memory_limit(tmp_path: Path) -> None:
    group = _memory_cgroup()
    if group is None:
        pytest.skip("no writable cgroup-v1 memory controller here")
    try:
        a, b = _big_model(tmp_path / "a", 0), _big_model(tmp_path / "b", 1)
        size = sum(p.stat().st_size for p in a.glob("*.safetensors"))
        assert size > LIMIT
        code = (
            "import sys; from pathlib import Path; from trainer_platform.surgery.run import run_surgery;"
            "from trainer_platform.surgery.steps import SurgerySpec;"
            "spec = SurgerySpec.model_validate({'steps': [{'op': 'slerp', 'models': sys.argv[1:3], 't': 0.4}]});"
            "run_surgery(spec, Path(sys.argv[3]), log=lambda *_: None)"
        )
        tasks = group / "tasks"
        res = subprocess.run(
            [sys.executable, "-c", code, str(a), str(b), str(tmp_path / "out")],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            preexec_fn=lambda: tasks.write_text(str(os.getpid())),  # noqa: PLW1509 - join the cgroup before exec
        )
        peak = int((group / "memory.max_usage_in_bytes").read_text())
        failures = int((group / "memory.failcnt").read_text())
        assert res.returncode == 0, f"exit {res.returncode} (OOM kill = -9): {res.stderr[-3000:]}"
        out = sum(p.stat().st_size for p in (tmp_path / "out").glob("*.safetensors"))
        assert out >= size - 4096  # headers differ by a few bytes
        print(
            f"model {size >> 20} MiB x 2 under a {LIMIT >> 20} MiB limit: cgroup peak {peak >> 20} MiB, "
            f"limit hits {failures}"
        )
    finally:
        group.rmdir()
