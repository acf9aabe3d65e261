"""Benchmark: generation throughput of the `hf` rollout engine vs plain `model.generate` on the same model.

    .venv/bin/python benchmarks/bench_rollout.py [--reps 10] [--prompts 16] [--n 4] [--max-new-tokens 32]
                                                 [--dtype bfloat16] [--no-large] [--no-readme]

Platform: `HFGenerationEngine.generate_batch` from `verl/tp_hf_rollout_engine.py`, the in-process call the `hf`
rollout server (`verl/tp_hf_rollout_server.py`) makes on every batch of queued requests: `--prompts` chat prompts
from the built-in tiny math data, each repeated `--n` times (verl's agent loop sends one request per sample; the
server batches them), one left-padded batch, sampled with the server's generation config and stopping criteria.
The engine is loaded with `HFGenerationEngine.from_pretrained`, as the server loads it.

Anchor: plain transformers on a separately loaded copy of the same model: one `model.generate` call on the same
prompts (left-padded the same way) with `num_return_sequences=n`, `do_sample=True`, the same temperature/top-p,
top-k off, the same `max_new_tokens` and EOS ids.

Both run in this process, interleaved (platform, anchor, platform, anchor, ...) after an untimed warm-up, with the
same torch seed per repetition. Generated tokens are counted exactly: each sample up to and including its first EOS
(or `max_new_tokens` of them), padding excluded. Throughput = generated tokens / wall seconds of the call;
the verdict is on median(platform tok/s) / median(anchor tok/s) >= 0.8 for every model.
The same ratio on tokens per CPU second of this process (all threads) is reported beside it, as the cpu ratio:
it is far less disturbed by other work on a shared machine.

Models: the built-in tiny model, and (unless `--no-large`) a bigger random Qwen2 (hidden 256, 4 layers, the tiny
model's tokenizer) built locally in a temp dir: no downloads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import REPO_ROOT, load_average, machine, record_result, today  # noqa: E402

sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "verl"))  # verl imports the repo's rollout modules by top-level name

import torch  # noqa: E402
from tp_hf_rollout_engine import HFGenerationEngine, SamplingSpec  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from trainer_platform.data.tiny import ensure_tiny_dataset  # noqa: E402
from trainer_platform.models.tiny import ensure_tiny_model  # noqa: E402

TARGET = 0.8
TEMPERATURE = 1.0
TOP_P = 1.0

# the second, larger model: a random Qwen2 on the tiny tokenizer
LARGE_HIDDEN = 256
LARGE_LAYERS = 4
LARGE_HEADS = 4
LARGE_KV_HEADS = 2
LARGE_INTERMEDIATE = 1024


@dataclass
class Side:
    """One way of generating: `run()` returns the generated token ids of every sample (EOS included, no padding)."""

    name: str
    run: Callable[[], list[list[int]]]
    seconds: list[float] = field(default_factory=list)
    # CPU seconds of this process (all threads) during the call: far less disturbed by other load than wall time
    cpu_seconds: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        return [n / s for n, s in zip(self.tokens, self.seconds, strict=True)]

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def median_cpu_rate(self) -> float:
        return statistics.median(n / s for n, s in zip(self.tokens, self.cpu_seconds, strict=True))


def chat_prompts(tokenizer_dir: Path, count: int) -> list[list[int]]:
    """The first `count` prompts of the tiny math train split, tokenized with the chat template."""
    import pyarrow.parquet as pq

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows = pq.read_table(ensure_tiny_dataset("math").train, columns=["prompt"]).to_pylist()[:count]
    if len(rows) < count:
        raise SystemExit(f"the tiny math data has only {len(rows)} prompts, {count} asked for")
    out = []
    for row in rows:
        # as verl's RL dataset does: render the template to text, then tokenize without adding special tokens
        text = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        out.append([int(t) for t in tokenizer(str(text), add_special_tokens=False)["input_ids"]])
    return out


def build_large_model(tiny_dir: Path, out: Path) -> Path:
    """A random Qwen2 (hidden 256, 4 layers) with the tiny model's tokenizer and special-token ids, saved to `out`."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tiny = Qwen2Config.from_pretrained(tiny_dir)
    config = Qwen2Config(
        vocab_size=tiny.vocab_size,
        hidden_size=LARGE_HIDDEN,
        intermediate_size=LARGE_INTERMEDIATE,
        num_hidden_layers=LARGE_LAYERS,
        num_attention_heads=LARGE_HEADS,
        num_key_value_heads=LARGE_KV_HEADS,
        max_position_embeddings=tiny.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tiny.bos_token_id,
        eos_token_id=tiny.eos_token_id,
        pad_token_id=tiny.pad_token_id,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig.from_pretrained(tiny_dir).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(out)
    return out


def left_pad(prompts: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded input ids and attention mask, exactly as the engine builds them."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    return input_ids, mask


def cut_at_eos(row: list[int], eos_ids: Sequence[int]) -> list[int]:
    """The generated tokens up to and including the first EOS (padding after it dropped)."""
    for pos, tok in enumerate(row):
        if tok in eos_ids:
            return row[: pos + 1]
    return row


def platform_side(engine: HFGenerationEngine, prompts: list[list[int]], n: int, max_new: int) -> Side:
    spec = SamplingSpec(temperature=TEMPERATURE, top_p=TOP_P, top_k=-1, max_new_tokens=max_new, logprobs=False)
    batch = [p for p in prompts for _ in range(n)]  # the order num_return_sequences expands to

    def run() -> list[list[int]]:
        return [r.token_ids for r in engine.generate_batch(batch, spec)]

    return Side("hf rollout", run)


def anchor_side(
    model_dir: Path, dtype: str, prompts: list[list[int]], n: int, max_new: int, eos_ids: list[int], pad_id: int
) -> Side:
    model: Any = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=getattr(torch, {"bf16": "bfloat16", "fp32": "float32"}.get(dtype, dtype)),
        attn_implementation="sdpa",
    ).eval()  # fmt: skip
    input_ids, mask = left_pad(prompts, pad_id)
    kwargs: dict[str, Any] = {
        "do_sample": True,
        "temperature": TEMPERATURE,
        "top_p": TOP_P,
        "top_k": 0,  # off, as the engine sets it (transformers' default would be 50)
        "num_return_sequences": n,
        "max_new_tokens": max_new,
        "eos_token_id": eos_ids,
        "pad_token_id": pad_id,
    }

    def run() -> list[list[int]]:
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        return [cut_at_eos(row, eos_ids) for row in out[:, input_ids.shape[1] :].tolist()]

    return Side("generate", run)


def measure(name: str, model_dir: Path, args: argparse.Namespace, prompts: list[list[int]]) -> dict[str, Any]:
    # loaded as the server loads it; the anchor stops at the same EOS ids and pads with the same id
    engine = HFGenerationEngine.from_pretrained(model_dir, dtype=args.dtype, attn_implementation="sdpa")
    platform = platform_side(engine, prompts, args.n, args.max_new_tokens)
    eos_ids, pad_id = engine.eos_token_ids, engine.pad_token_id
    anchor = anchor_side(model_dir, args.dtype, prompts, args.n, args.max_new_tokens, eos_ids, pad_id)
    sides = [platform, anchor]
    expected = len(prompts) * args.n

    # warm-up (untimed), and a check that both sides really do the same work: same seed -> same samples
    same = []
    for _ in range(2):
        outs = []
        for side in sides:
            torch.manual_seed(1234)
            outs.append(side.run())
        same.append(outs[0] == outs[1])
    print(f"[{name}] warm-up done; identical samples from both with the same seed: {all(same)}", flush=True)

    for rep in range(args.reps):
        for side in sides:
            torch.manual_seed(10_000 + rep)
            cpu_start, start = time.process_time(), time.perf_counter()
            samples = side.run()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            if len(samples) != expected or any(not s or len(s) > args.max_new_tokens for s in samples):
                raise SystemExit(f"{side.name}: {len(samples)} samples (expected {expected}) or a bad sample length")
            count = sum(len(s) for s in samples)
            side.seconds.append(elapsed)
            side.cpu_seconds.append(cpu)
            side.tokens.append(count)
            print(
                f"  [{name}] rep {rep + 1}/{args.reps} {side.name:<11} {elapsed:7.3f} s {count:6d} tok "
                f"{count / elapsed:9.1f} tok/s  {cpu:7.3f} cpu-s",
                flush=True,
            )
    ratio = platform.median_rate / anchor.median_rate
    return {
        "model": name,
        "platform": platform.median_rate,
        "anchor": anchor.median_rate,
        "platform_s": statistics.median(platform.seconds),
        "anchor_s": statistics.median(anchor.seconds),
        "tokens": statistics.median(platform.tokens + anchor.tokens),
        "ratio": ratio,
        "cpu_ratio": platform.median_cpu_rate / anchor.median_cpu_rate,
        "identical": all(same),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=10, help="timed repetitions of each side (default 10)")
    parser.add_argument("--prompts", type=int, default=16, help="chat prompts (default 16)")
    parser.add_argument("--n", type=int, default=4, help="samples per prompt (default 4)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="most new tokens per sample (default 32)")
    parser.add_argument(
        "--dtype", default="bfloat16", help="model dtype for both sides (default bfloat16: verl's rollout.dtype)"
    )
    parser.add_argument("--no-large", action="store_true", help="only the tiny model")
    parser.add_argument("--no-readme", action="store_true", help="do not append the result to benchmarks/README.md")
    args = parser.parse_args()

    tiny_dir = ensure_tiny_model()
    prompts = chat_prompts(tiny_dir, args.prompts)
    print(
        f"hf rollout vs model.generate: {len(prompts)} prompts x n={args.n}, max {args.max_new_tokens} new tokens, "
        f"T={TEMPERATURE} top_p={TOP_P}, dtype {args.dtype}, {torch.get_num_threads()} torch threads, "
        f"{args.reps} interleaved reps (load {load_average()})",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        models = [("tiny", tiny_dir)]
        if not args.no_large:
            label = f"qwen2 h{LARGE_HIDDEN} l{LARGE_LAYERS}"
            models.append((label, build_large_model(tiny_dir, Path(tmp) / "large")))
        for name, path in models:
            results.append(measure(name, path, args, prompts))

    print()
    print(f"{'model':<18}{'hf rollout tok/s':>18}{'generate tok/s':>16}{'ratio':>8}{'cpu ratio':>11}  result")
    ok = True
    for r in results:
        verdict = "pass" if r["ratio"] >= TARGET else "FAIL"
        ok = ok and verdict == "pass"
        print(
            f"{r['model']:<18}{r['platform']:>18.1f}{r['anchor']:>16.1f}{r['ratio']:>8.3f}{r['cpu_ratio']:>11.3f}"
            f"  {verdict}"
        )
        if not args.no_readme:
            record_result(
                "rollout",
                [
                    today(),
                    machine(),
                    load_average(),
                    r["model"],
                    args.dtype,
                    str(args.reps),
                    f"{r['tokens']:.0f}",
                    f"{r['platform']:.0f}",
                    f"{r['anchor']:.0f}",
                    f"{r['ratio']:.3f}",
                    f"{r['cpu_ratio']:.3f}",
                    "yes" if r["identical"] else "no",
                    verdict,
                ],
            )
    print(f"target: hf rollout tok/s / generate tok/s >= {TARGET} (cpu ratio: the same on tokens per CPU second, info)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
