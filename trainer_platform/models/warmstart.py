"""The tiny model's warm start: a short, deterministic SFT on arithmetic problems, run once when the model is built.

A random init never answers right, so RL on it has no reward to climb. A few hundred AdamW steps on problems drawn
from the built-in generator (`trainer_platform.data.tiny`), each asked exactly as the RL data asks it (question plus
the ``####`` instruction, in the chat template) and answered as the SFT data answers it, teach the answer's shape and
some of the arithmetic: about 1 in 4 answers sampled at temperature 1 are right (more at greedy), so GRPO on
tiny_math has something to improve. The problems come from their own seed, not the tiny datasets' seeds.

Deterministic: its own torch seed (the caller's RNG state is restored), one CPU thread while it trains, a fixed data
order. The loss is on the reply tokens (and the closing ``<|im_end|>``) only.
"""

from __future__ import annotations

import random
from typing import Any

from trainer_platform.data.tiny import Problem, sample_problems

# Part of the tiny model's recipe (and so of its cache folder name): change any value and the model is rebuilt.
WARM_START: dict[str, Any] = {
    "steps": 300,
    "batch_size": 64,
    "lr": 3.0e-3,
    "warmup_steps": 50,  # linear warm-up, then linear decay to 0
    "grad_clip": 1.0,
    "seed": 7919,  # problems and torch init; distinct from the tiny datasets' seeds (0 by default)
}


def warm_start_problems(n: int, seed: int) -> list[Problem]:
    """The `n` problems the warm start trains on, in order."""
    return sample_problems(random.Random(seed), n)


def _encode(tokenizer: Any, problem: Problem) -> tuple[list[int], list[int]]:
    messages = [{"role": "user", "content": problem.prompt}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    reply = problem.solution() + tokenizer.eos_token
    return tokenizer(prompt)["input_ids"], tokenizer(reply)["input_ids"]


def _batch(tokenizer: Any, problems: list[Problem]) -> dict[str, Any]:
    import torch

    pairs = [_encode(tokenizer, p) for p in problems]
    length = max(len(a) + len(b) for a, b in pairs)
    ids = torch.full((len(pairs), length), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(pairs), length), -100, dtype=torch.long)
    mask = torch.zeros((len(pairs), length), dtype=torch.long)
    for row, (prompt, reply) in enumerate(pairs):
        end = len(prompt) + len(reply)
        ids[row, :end] = torch.tensor(prompt + reply)
        mask[row, :end] = 1
        labels[row, len(prompt) : end] = torch.tensor(reply)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def warm_start(model: Any, tokenizer: Any, settings: dict[str, Any] = WARM_START) -> list[float]:
    """Train `model` in place on the warm-start problems; return the loss of every step."""
    import torch

    steps, size = int(settings["steps"]), int(settings["batch_size"])
    warmup = int(settings["warmup_steps"])
    problems = warm_start_problems(steps * size, int(settings["seed"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(settings["lr"]), weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1.0 - s / steps)
    )
    threads = torch.get_num_threads()
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(settings["seed"]))
        torch.set_num_threads(1)
        try:
            model.train()
            for step in range(steps):
                loss = model(**_batch(tokenizer, problems[step * size : (step + 1) * size])).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(settings["grad_clip"]))
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
            model.eval()
        finally:
            torch.set_num_threads(threads)
    return losses
