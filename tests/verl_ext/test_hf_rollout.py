"""verl/tp_hf_rollout*.py: the `hf` rollout backend (generation on transformers) behind verl's rollout extension points.

(a) the server honours verl's sampling contract (n samples, temperature, top_k, max length, EOS, log-probs);
(b) weights follow the policy: after an update pushed through the adapter's weight sync, the rollout's token
    log-probs equal the policy's recomputed ones, before and after the update, and the two differ;
(c) slow: `python -m verl.trainer.main_ppo` runs GRPO for 2 steps on the tiny model on CPU with rollout name `hf`.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from trainer_platform.models.tiny import ensure_tiny_model
from trainer_platform.paths import verl_ext_dir

sys.path.insert(0, str(verl_ext_dir()))  # verl's processes get this folder on PYTHONPATH; the test process too

from tp_hf_rollout_adapter import HFServerAdapter, server_actor_name  # noqa: E402
from tp_hf_rollout_engine import SamplingSpec  # noqa: E402
from tp_hf_rollout_server import HFRolloutServer  # noqa: E402
from verl.utils.torch_functional import logprobs_from_logits  # noqa: E402
from verl.workers.config import HFModelConfig, RolloutConfig  # noqa: E402
from verl.workers.rollout.replica import RolloutMode  # noqa: E402

RESPONSE_LENGTH = 12
SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}


def _configs(model: Path, **rollout: Any) -> tuple[RolloutConfig, HFModelConfig]:
    kwargs: dict[str, Any] = {
        "name": "hf", "tensor_model_parallel_size": 1, "prompt_length": 32, "response_length": RESPONSE_LENGTH,
        "dtype": "float32", "load_format": "auto", "seed": 0, "max_num_seqs": 64,
    }  # fmt: skip
    kwargs.update(rollout)
    return RolloutConfig(**kwargs), HFModelConfig(path=str(model))


def _prompt(model_config: HFModelConfig, text: str = "What is 3 + 4?") -> list[int]:
    ids = model_config.tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
    )
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


@pytest.fixture(scope="module")
def tiny_model() -> Path:
    return ensure_tiny_model()


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[tuple[HFRolloutServer, asyncio.AbstractEventLoop, HFModelConfig]]:
    """The real server class, driven in-process on its own event loop (no Ray needed for generation)."""
    rollout_config, model_config = _configs(tiny_model)
    srv = HFRolloutServer(rollout_config, model_config, RolloutMode.HYBRID, replica_rank=0)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(srv.launch_server())
    yield srv, loop, model_config
    loop.run_until_complete(srv.shutdown())
    loop.close()


def _generate_many(srv: HFRolloutServer, loop: asyncio.AbstractEventLoop, prompts: list[list[int]], params: dict):
    async def go() -> list[Any]:
        return await asyncio.gather(*[srv.generate(p, dict(params), f"r{i}") for i, p in enumerate(prompts)])

    return loop.run_until_complete(go())


# ---- (a) sampling contract -------------------------------------------------------------------------------------------
def test_n_samples_temperature_and_max_length(server) -> None:
    srv, loop, model_config = server
    prompt = _prompt(model_config)
    outs = _generate_many(srv, loop, [prompt] * 4, SAMPLING)  # n=4: verl repeats the prompt n times
    assert len(outs) == 4
    for out in outs:
        assert 0 < len(out.token_ids) <= RESPONSE_LENGTH
        assert len(out.log_probs) == len(out.token_ids)
        assert all(lp <= 0.0 and math.isfinite(lp) for lp in out.log_probs)
        assert out.stop_reason == "completed"
    assert len({tuple(o.token_ids) for o in outs}) > 1, "temperature 1 samples of one prompt should differ"

    greedy = {**SAMPLING, "temperature": 0.0}
    g = _generate_many(srv, loop, [prompt] * 3, greedy)
    assert len({tuple(o.token_ids) for o in g}) == 1, "temperature 0 is greedy: all samples equal"
    top1 = _generate_many(srv, loop, [prompt] * 3, {**SAMPLING, "top_k": 1})
    assert all(o.token_ids == g[0].token_ids for o in top1), "top_k=1 sampling equals greedy decoding"
    assert all(lp == pytest.approx(0.0, abs=1e-6) for lp in top1[0].log_probs), "processed log-probs under top_k=1"

    short = _generate_many(srv, loop, [prompt], {**SAMPLING, "max_tokens": 3})[0]
    assert len(short.token_ids) <= 3
    no_lp = _generate_many(srv, loop, [prompt], {**SAMPLING, "logprobs": False})[0]
    assert no_lp.log_probs is None


def test_batch_of_mixed_lengths_matches_single_requests(server) -> None:
    """Left-padded batching must not change results: greedy outputs equal the one-at-a-time ones."""
    srv, loop, model_config = server
    prompts = [_prompt(model_config, t) for t in ("What is 1 + 2?", "What is 10 * 12? Think.", "Hi")]
    greedy = {**SAMPLING, "temperature": 0.0}
    batched = _generate_many(srv, loop, prompts, greedy)
    for prompt, out in zip(prompts, batched, strict=True):
        alone = _generate_many(srv, loop, [prompt], greedy)[0]
        assert alone.token_ids == out.token_ids
        assert alone.log_probs == pytest.approx(out.log_probs, abs=1e-4)


def test_stops_at_eos(server) -> None:
    srv, loop, model_config = server
    prompt = _prompt(model_config)
    greedy = {**SAMPLING, "temperature": 0.0}
    first = _generate_many(srv, loop, [prompt], greedy)[0].token_ids[0]
    engine = srv.engine
    saved = engine.eos_token_ids
    engine.eos_token_ids = [first]  # make the greedy first token the EOS: generation must stop right after it
    try:
        out = _generate_many(srv, loop, [prompt], greedy)[0]
    finally:
        engine.eos_token_ids = saved
    assert out.token_ids == [first]
    assert len(out.log_probs) == 1


def test_sampling_spec_budget() -> None:
    spec = SamplingSpec.from_request({"temperature": 0, "top_k": -1, "max_tokens": 50}, max_new_tokens=8)
    assert spec.greedy and spec.max_new_tokens == 8 and spec.top_k == -1 and not spec.logprobs


# ---- (b) weights follow the policy -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import ray

    temp_dir = Path("/tmp") / f"tpr_hft_{os.getpid()}"  # Ray's socket paths must stay short
    pythonpath = os.pathsep.join([str(verl_ext_dir()), os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    with pytest.MonkeyPatch.context() as env:  # restored after: later tests' subprocesses must not inherit it
        env.setenv("RAY_AUTH_MODE", "disabled")
        ray.init(address="local", num_cpus=2, _temp_dir=str(temp_dir), include_dashboard=False,
                 runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})  # fmt: skip
        yield
        ray.shutdown()


def _policy_logprobs(policy: torch.nn.Module, prompt: list[int], response: list[int]) -> torch.Tensor:
    """What verl's actor recomputes: log_softmax(logits / temperature) at the response tokens."""
    ids = torch.tensor([prompt + response])
    logits = policy(input_ids=ids).logits[:, len(prompt) - 1 : -1, :] / SAMPLING["temperature"]
    return logprobs_from_logits(logits, torch.tensor([response]))[0]


def test_rollout_follows_policy_weights(tiny_model: Path, ray_cluster: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray
    from transformers import AutoModelForCausalLM

    # The server starts from random weights (load_format=dummy, verl's default): only weight sync can make it match.
    rollout_config, model_config = _configs(tiny_model, load_format="dummy")
    srv = ray.remote(HFRolloutServer).options(name=server_actor_name(0), num_cpus=0, max_concurrency=64)
    handle = srv.remote(rollout_config, model_config, RolloutMode.HYBRID, 0)
    ray.get(handle.launch_server.remote())
    monkeypatch.setenv("RANK", os.environ.get("RANK", "0"))  # not left set for later tests' subprocesses
    adapter = HFServerAdapter(rollout_config, model_config, None, replica_rank=0)

    torch.manual_seed(0)
    policy = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa")
    prompt = _prompt(model_config)

    def sync(step: int) -> None:
        asyncio.run(
            adapter.update_weights(((n, t.detach()) for n, t in policy.state_dict().items()), global_steps=step)
        )

    def rollout() -> Any:
        return ray.get(handle.generate.remote(prompt, dict(SAMPLING), "req"))

    sync(0)
    before = rollout()
    assert before.extra_fields["global_steps"] == 0
    with torch.no_grad():
        lp_before = _policy_logprobs(policy, prompt, before.token_ids)
    torch.testing.assert_close(torch.tensor(before.log_probs), lp_before, atol=1e-4, rtol=1e-4)

    # One policy-gradient-like update: raise the log-likelihood of the sampled response.
    optim = torch.optim.AdamW(policy.parameters(), lr=5e-2)
    loss = -_policy_logprobs(policy, prompt, before.token_ids).sum()
    loss.backward()
    optim.step()
    with torch.no_grad():
        lp_updated_same_tokens = _policy_logprobs(policy, prompt, before.token_ids)
    assert (lp_updated_same_tokens - lp_before).abs().max() > 1e-2, "the update must change the policy"

    stale = rollout()  # not synced yet: the rollout still samples from the old weights
    with torch.no_grad():
        stale_vs_new = _policy_logprobs(policy, prompt, stale.token_ids)
    assert (torch.tensor(stale.log_probs) - stale_vs_new).abs().max() > 1e-3

    sync(1)
    after = rollout()
    assert after.extra_fields["global_steps"] == 1
    with torch.no_grad():
        lp_after = _policy_logprobs(policy, prompt, after.token_ids)
    torch.testing.assert_close(torch.tensor(after.log_probs), lp_after, atol=1e-4, rtol=1e-4)
    ray.kill(handle)
