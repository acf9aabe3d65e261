"""Benchmark: the planner's full search (it runs on every launch and dry run), in process.

    .venv/bin/python benchmarks/bench_planner.py [--reps 20] [--no-readme]

Times `plan(spec)` on specs that exercise the whole search: a 7B GRPO that fits at once, a 32B GRPO on 8 GPUs that
needs offload, a 7B GRPO on one GPU that falls back to LoRA, a 7B PPO (critic), and a refused run (the search plus
the cheapest-fix search). Anchor: composing and validating the same configs (`RunSpec.from_config`), the work every
launch does before planning. Target (issue 8): median planner time <= 200 ms per plan, every case.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _timing import load_average, machine, record_result, today  # noqa: E402

SHAPE = [
    "data=tiny_math",
    "data.max_prompt_length=512",
    "data.max_response_length=1024",
    "algorithm.batch_size=1024",
    "algorithm.mini_batch_size=256",
]
CASES = {
    "7b-8xh100": ["model=qwen2_5_7b", "compute=8xh100"],
    "32b-8xh100": ["model=qwen2_5_32b", "compute=8xh100"],
    "7b-1xh100-lora": ["model=qwen2_5_7b", "compute=1xh100"],
    "7b-ppo-8xa100": ["algorithm=ppo", "model=qwen2_5_7b", "compute=8xa100_80g"],
    "refused": ["model=qwen2_5_7b", "compute=1xh100", "model.lora_rank=0"],
}
TARGET_MS = 200.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    from trainer_platform.compose import compose_config
    from trainer_platform.errors import SpecError
    from trainer_platform.planner import plan
    from trainer_platform.spec import RunSpec

    worst, anchor_ms = 0.0, []
    for name, overrides in CASES.items():
        cfg = compose_config([*SHAPE, *overrides])
        times = []
        for _ in range(args.reps + 1):
            t0 = time.perf_counter()
            spec = RunSpec.from_config(cfg)
            t1 = time.perf_counter()
            try:
                plan(spec, engines=("vllm",))
            except SpecError:
                assert name == "refused", name
            t2 = time.perf_counter()
            times.append((t2 - t1) * 1000)
            anchor_ms.append((t1 - t0) * 1000)
        median = statistics.median(times[1:])
        worst = max(worst, median)
        print(f"{name:16s} planner median {median:7.1f} ms")
    anchor = statistics.median(anchor_ms)
    verdict = "pass" if worst <= TARGET_MS else "FAIL"
    print(f"worst case {worst:.1f} ms (target {TARGET_MS:.0f}); spec validation {anchor:.1f} ms; {verdict}")
    if not args.no_readme:
        record_result(
            "planner",
            [
                today(),
                machine(),
                load_average(),
                str(args.reps),
                f"{worst:.1f}",
                f"{anchor:.1f}",
                f"{worst / anchor:.1f}" if anchor else "-",
                verdict,
            ],
        )
    return 0 if verdict == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
