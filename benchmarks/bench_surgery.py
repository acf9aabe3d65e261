"""SLERP and TIES merges with Qwen2.5-0.5B's shapes (random bf16 weights made here): ours vs mergekit, same run.

Wall time, CPU time (user + sys) and peak RSS of each command (os.wait4's rusage of that one child), interleaved,
medians; the CPU ratio is the figure to trust on a loaded machine (the wall ratio moves with the load); plus the
bytes each merge moves (inputs read + output written) per second against the machine's plain file-copy speed (the
floor). mergekit is a test dependency (the `test` extra): its `mergekit-yaml` beside this Python is used, or pass
another with --mergekit or MERGEKIT_YAML.
Targets: time <= 0.5x mergekit's and peak RSS <= 0.35x, for both merges.

    .venv/bin/python benchmarks/bench_surgery.py [--mergekit PATH] [--reps 3] [--no-readme]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._timing import REPO_ROOT, load_average, machine, record_result, today  # noqa: E402

TIME_TARGET, RSS_TARGET = 0.5, 0.35
# Qwen2.5-0.5B
HIDDEN, INTER, LAYERS, VOCAB, HEADS, KV, HEAD_DIM = 896, 4864, 24, 151936, 14, 2, 64


def qwen_tensors() -> list[tuple[str, tuple[int, ...]]]:
    out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (HIDDEN,)),
            (p + "post_attention_layernorm.weight", (HIDDEN,)),
            (p + "self_attn.q_proj.weight", (HEADS * HEAD_DIM, HIDDEN)),
            (p + "self_attn.q_proj.bias", (HEADS * HEAD_DIM,)),
            (p + "self_attn.k_proj.weight", (KV * HEAD_DIM, HIDDEN)),
            (p + "self_attn.k_proj.bias", (KV * HEAD_DIM,)),
            (p + "self_attn.v_proj.weight", (KV * HEAD_DIM, HIDDEN)),
            (p + "self_attn.v_proj.bias", (KV * HEAD_DIM,)),
            (p + "self_attn.o_proj.weight", (HIDDEN, HEADS * HEAD_DIM)),
            (p + "mlp.gate_proj.weight", (INTER, HIDDEN)),
            (p + "mlp.up_proj.weight", (INTER, HIDDEN)),
            (p + "mlp.down_proj.weight", (HIDDEN, INTER)),
        ]
    return out + [("model.norm.weight", (HIDDEN,))]


def make_model(out: Path, seed: int) -> None:
    import torch
    from transformers import Qwen2Config

    from trainer_platform.surgery.tensors import OutTensor, write_checkpoint

    out.mkdir(parents=True)
    gen = torch.Generator().manual_seed(seed)

    def tensor(name: str, shape: tuple[int, ...]) -> OutTensor:
        def chunks():  # type: ignore[no-untyped-def]
            yield (torch.randn(shape, generator=gen) * 0.02).to(torch.bfloat16)

        return OutTensor(name, shape, torch.bfloat16, chunks)

    write_checkpoint(out, [tensor(n, s) for n, s in qwen_tensors()], 2 << 30)
    cfg = Qwen2Config(
        hidden_size=HIDDEN,
        intermediate_size=INTER,
        num_hidden_layers=LAYERS,
        vocab_size=VOCAB,
        num_attention_heads=HEADS,
        num_key_value_heads=KV,
        tie_word_embeddings=True,
        dtype="bfloat16",
    )
    cfg.architectures = ["Qwen2ForCausalLM"]
    cfg.save_pretrained(out)


def run_measured(argv: list[str], log: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS bytes) of one command."""
    with log.open("wb") as f:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"exit {proc.returncode}: {' '.join(argv)}\n{log.read_text(errors='replace')[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def copy_speed(files: list[Path], work: Path) -> float:
    """Bytes per second of a plain copy of `files` (read + write counted, like the merges' bytes moved)."""
    start, moved = time.perf_counter(), 0
    for i, f in enumerate(files):
        dst = work / f"copy{i}"
        shutil.copyfile(f, dst)
        with open(dst, "rb+") as g:
            os.fsync(g.fileno())
        moved += 2 * f.stat().st_size
        dst.unlink()
    return moved / (time.perf_counter() - start)


def weights(path: Path) -> list[Path]:
    return sorted(path.glob("*.safetensors"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    beside = Path(sys.executable).parent / "mergekit-yaml"
    default = os.environ.get("MERGEKIT_YAML") or (str(beside) if beside.exists() else shutil.which("mergekit-yaml"))
    parser.add_argument("--mergekit", default=default)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--no-readme", action="store_true")
    # internal: write one model (DIR SEED) in a child process, so that this process stays small
    parser.add_argument("--make", nargs=2, metavar=("DIR", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        make_model(Path(args.make[0]), int(args.make[1]))
        return 0
    if not args.mergekit:
        print("mergekit-yaml not found: pass --mergekit PATH (see the docstring)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-surgery-"))
    try:
        models = {name: work / name for name in ("base", "a", "b")}
        for seed, path in enumerate(models.values()):
            # not in this process: a child's ru_maxrss starts from its parent's RSS at fork, so a parent holding
            # torch and model buffers would inflate every measured command's peak (it did: 1.34 GiB for ours)
            subprocess.run([sys.executable, __file__, "--make", str(path), str(seed)], check=True)
        a, b, base = (str(models[k]) for k in ("a", "b", "base"))
        merges = {
            "slerp": (
                {"op": "slerp", "models": [a, b], "t": 0.5},
                {
                    "merge_method": "slerp",
                    "base_model": a,
                    "models": [{"model": a}, {"model": b}],
                    "parameters": {"t": 0.5},
                },
                [a, b],
            ),
            "ties": (
                {"op": "ties", "base": base, "models": [a, b], "density": 0.5},
                {
                    "merge_method": "ties",
                    "base_model": base,
                    "dtype": "bfloat16",
                    "models": [{"model": m, "parameters": {"weight": 1.0, "density": 0.5}} for m in (a, b)],
                },
                [base, a, b],
            ),
        }
        floor = copy_speed(weights(models["a"]), work)
        code = 0
        for name, (ours, theirs, inputs) in merges.items():
            theirs.setdefault("dtype", "bfloat16")
            (work / f"{name}.yml").write_text(json.dumps(theirs))
            (work / f"{name}.json").write_text(json.dumps({"steps": [ours]}))
            results: dict[str, list[tuple[float, float, int]]] = {"ours": [], "mergekit": []}
            for rep in range(args.reps):
                for who in ("ours", "mergekit"):
                    out = work / f"out-{name}-{who}-{rep}"
                    if who == "ours":
                        argv = [
                            sys.executable,
                            "-c",
                            "import json,sys; from pathlib import Path; "
                            "from trainer_platform.surgery.run import run_surgery; "
                            "from trainer_platform.surgery.steps import SurgerySpec; "
                            "run_surgery(SurgerySpec.model_validate(json.loads(Path(sys.argv[1]).read_text())), "
                            "Path(sys.argv[2]), log=lambda *_: None)",
                            str(work / f"{name}.json"),
                            str(out),
                        ]
                    else:
                        argv = [args.mergekit, str(work / f"{name}.yml"), str(out)]
                    results[who].append(run_measured(argv, work / f"{name}-{who}-{rep}.log"))
                    wall, cpu, rss = results[who][-1]
                    print(f"  {name} {who:<8} {wall:7.1f} s wall {cpu:7.1f} s cpu {rss / 2**30:5.2f} GiB", flush=True)
                    shutil.rmtree(out)
            t_ours = statistics.median(r[0] for r in results["ours"])
            t_mk = statistics.median(r[0] for r in results["mergekit"])
            c_ours = statistics.median(r[1] for r in results["ours"])
            c_mk = statistics.median(r[1] for r in results["mergekit"])
            m_ours = max(r[2] for r in results["ours"])
            m_mk = max(r[2] for r in results["mergekit"])
            moved = sum(p.stat().st_size for i in inputs for p in weights(Path(i))) + sum(
                p.stat().st_size for p in weights(models["a"])
            )
            speed = moved / t_ours
            verdict = "pass" if t_ours / t_mk <= TIME_TARGET and m_ours / m_mk <= RSS_TARGET else "FAIL"
            code |= verdict != "pass"
            print(
                f"{name}: ours {t_ours:.1f} s / {m_ours / 2**30:.2f} GiB, mergekit {t_mk:.1f} s / "
                f"{m_mk / 2**30:.2f} GiB: time {t_ours / t_mk:.2f}x, cpu {c_ours / c_mk:.2f}x ({c_ours:.1f} vs "
                f"{c_mk:.1f} s), RSS {m_ours / m_mk:.2f}x; "
                f"{speed / 2**20:.0f} MiB/s moved vs copy {floor / 2**20:.0f} MiB/s -> {verdict}"
            )
            if not args.no_readme:
                record_result(
                    "surgery",
                    [
                        today(),
                        machine(),
                        load_average(),
                        name,
                        str(args.reps),
                        f"{t_ours:.1f}",
                        f"{m_ours / 2**30:.2f}",
                        f"{t_mk:.1f}",
                        f"{m_mk / 2**30:.2f}",
                        f"{t_ours / t_mk:.2f}",
                        f"{c_ours:.1f}",
                        f"{c_mk:.1f}",
                        f"{c_ours / c_mk:.2f}",
                        f"{m_ours / m_mk:.2f}",
                        f"{speed / floor:.2f}",
                        verdict,
                    ],
                )
        return code
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
