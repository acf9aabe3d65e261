"""The `hf` rollout server: a Ray actor that owns a transformers model and serves verl's token-in/token-out calls.

It implements the methods verl calls on a rollout server handle (the same surface as `vLLMHttpServer`):
`generate` (from the agent loop through `LLMServerClient`), `sleep`/`wake_up`/`release_kv_cache`/`resume_kv_cache`/
`clear_kv_cache` (from the trainer's checkpoint manager), `abort_all_requests`/`resume_generation` (partial rollout),
`set_global_steps`, and the weight-sync pair `begin_weight_update`/`load_weight_bucket`/`end_weight_update` used by
`tp_hf_rollout_adapter.HFServerAdapter`.

Concurrent `generate` calls are queued and run as left-padded batches (requests with equal sampling parameters share
a batch, up to `rollout.max_num_seqs`); the model runs in a worker thread so the actor stays responsive. There is no
HTTP endpoint: `get_server_address` returns a unique `hf://` id, which is all verl's load balancer needs for
token-in/token-out agent loops (OpenAI-chat based agent loops are not served).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import ray
import torch
from omegaconf import DictConfig
from tp_hf_rollout_engine import GenerationResult, HFGenerationEngine, SamplingSpec
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import HFModelConfig, RolloutConfig
from verl.workers.rollout.replica import RolloutMode, TokenOutput

logger = logging.getLogger(__name__)

# A batch starts as soon as it holds as many requests as the previous wave of concurrent requests did (a GRPO step
# sends the same number every time: batch size x n; verl's agent loop submits them one by one, in bursts spread over
# up to ~0.2 s on a busy 2-core machine, and a batch split in two costs a whole second generation pass). Otherwise it
# starts once no request has arrived for BATCH_WINDOW_S (5x that while fewer than the previous wave's count are in),
# or when its first request has waited BATCH_MAX_WAIT_S.
BATCH_WINDOW_S = float(os.environ.get("TP_HF_ROLLOUT_BATCH_WINDOW_S", "0.05"))
BATCH_MAX_WAIT_S = float(os.environ.get("TP_HF_ROLLOUT_BATCH_MAX_WAIT_S", "1.0"))


@dataclass
class _Request:
    prompt_ids: list[int]
    spec: SamplingSpec
    future: asyncio.Future = field(repr=False)


class HFRolloutServer:
    """One rollout replica's generation server (wrapped with `ray.remote` by the replica)."""

    def __init__(
        self,
        config: RolloutConfig | DictConfig,
        model_config: HFModelConfig | DictConfig,
        rollout_mode: RolloutMode,
        replica_rank: int,
        node_rank: int = 0,
    ) -> None:
        self.config: RolloutConfig = omega_conf_to_dataclass(config)
        self.model_config: HFModelConfig = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.rollout_mode = rollout_mode
        self.replica_rank = replica_rank
        self.node_rank = node_rank
        self.global_steps: int | None = None
        self.engine: HFGenerationEngine | None = None
        self._queue: asyncio.Queue[_Request] | None = None
        self._batcher: asyncio.Task | None = None
        self._engine_lock: asyncio.Lock | None = None
        self._allowed: asyncio.Event | None = None
        self._rejecting = False
        self._inflight = 0
        self._peak_inflight = 0  # most requests in flight at once since the server was last idle
        self._expected = 0  # that peak for the previous wave: the batch size worth waiting for
        self._arrived: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._pending_weights: int = 0

    # ---- lifecycle -------------------------------------------------------------------------------------------------
    async def launch_server(self) -> None:
        """Load the model and start the request batcher."""
        hf_kwargs: dict[str, Any] = dict((self.config.engine_kwargs or {}).get("hf", None) or {})
        num_threads = int(hf_kwargs.pop("num_threads", 0) or 0)
        if num_threads > 0:
            torch.set_num_threads(num_threads)
        elif torch.get_num_threads() < (os.cpu_count() or 1):
            # Ray caps OMP threads at the actor's num_cpus (0 here); rollout and training alternate, so use the cores.
            torch.set_num_threads(os.cpu_count() or 1)
        torch.manual_seed(self.config.seed + self.replica_rank)
        override = dict(self.model_config.override_config or {})
        attn = hf_kwargs.pop("attn_implementation", override.get("attn_implementation", "sdpa"))
        if attn == "flash_attention_2" and not torch.cuda.is_available():
            attn = "sdpa"
        if hf_kwargs:
            known = "num_threads, attn_implementation"
            raise ValueError(f"unknown rollout.engine_kwargs.hf keys {sorted(hf_kwargs)} (known: {known})")
        self.engine = await asyncio.to_thread(
            HFGenerationEngine.from_pretrained,
            self.model_config.local_path,
            dtype=self.config.dtype,
            load_format=self.config.load_format,
            trust_remote_code=self.model_config.trust_remote_code,
            attn_implementation=attn,
            logprobs_mode=self.config.logprobs_mode or "processed_logprobs",
            ignore_eos=self.config.ignore_eos,
        )
        self._queue = asyncio.Queue()
        self._engine_lock = asyncio.Lock()
        self._allowed = asyncio.Event()
        self._allowed.set()
        self._arrived = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._batcher = asyncio.create_task(self._batch_loop())
        logger.info("hf rollout server %s ready (%s, dtype=%s)", self.replica_rank, attn, self.config.dtype)

    def get_server_address(self) -> tuple[str, int]:
        """A unique id for the load balancer (`hf://<node ip>/replica-<rank>`) and a dummy port."""
        return f"hf://{ray.util.get_node_ip_address()}/replica-{self.replica_rank}-{self.node_rank}", 0

    # ---- generation ------------------------------------------------------------------------------------------------
    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: list[Any] | None = None,
        video_data: list[Any] | None = None,
        audio_data: list[Any] | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> TokenOutput:
        """Generate one response (verl's token-in/token-out contract; `max_tokens` defaults like vLLM's server)."""
        if image_data or video_data or audio_data:
            raise NotImplementedError("the hf rollout serves text-only models")
        assert (
            self._queue is not None
            and self._allowed is not None
            and self._idle is not None
            and self._arrived is not None
        ), "launch_server() was not called"
        prompt = [int(t) for t in prompt_ids]
        budget = min(self.config.response_length, self.config.prompt_length + self.config.response_length - len(prompt))
        if self.config.max_model_len:
            budget = min(budget, self.config.max_model_len - len(prompt))
        spec = SamplingSpec.from_request(sampling_params, max_new_tokens=max(0, budget))
        while not self._allowed.is_set():
            if self._rejecting:
                return self._aborted()
            await self._allowed.wait()
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight += 1
        self._peak_inflight = max(self._peak_inflight, self._inflight)
        self._idle.clear()
        try:
            self._queue.put_nowait(_Request(prompt, spec, future))
            self._arrived.set()
            result: GenerationResult = await future
        finally:
            self._inflight -= 1
            if not self._inflight:  # the wave is over: remember its size for the next one
                self._expected, self._peak_inflight = self._peak_inflight, 0
                self._idle.set()
        stop_reason = "aborted" if result.finish_reason == "abort" else "completed"
        return TokenOutput(
            token_ids=result.token_ids,
            log_probs=result.log_probs,
            stop_reason=stop_reason,
            extra_fields={"global_steps": self.global_steps},
        )

    async def _batch_loop(self) -> None:
        assert self._queue is not None and self._engine_lock is not None and self.engine is not None
        while True:
            batch = await self._collect_batch(await self._queue.get())
            groups: dict[SamplingSpec, list[_Request]] = {}
            for req in batch:
                groups.setdefault(req.spec, []).append(req)
            async with self._engine_lock:
                for spec, reqs in groups.items():
                    try:
                        results = await asyncio.to_thread(
                            self.engine.generate_batch, [r.prompt_ids for r in reqs], spec
                        )
                    except Exception as exc:  # hand the failure to every waiting caller, keep serving
                        logger.exception("hf rollout batch failed")
                        for r in reqs:
                            if not r.future.done():
                                r.future.set_exception(exc)
                        continue
                    for r, res in zip(reqs, results, strict=True):
                        if not r.future.done():
                            r.future.set_result(res)

    async def _collect_batch(self, first: _Request) -> list[_Request]:
        """`first` plus the requests that join it (see `BATCH_WINDOW_S`)."""
        assert self._queue is not None and self._arrived is not None
        loop = asyncio.get_running_loop()
        cap = max(1, self.config.max_num_seqs)
        target = min(cap, self._expected or cap)
        gap = BATCH_WINDOW_S * (5 if target < cap else 1)
        batch = [first]
        deadline = loop.time() + BATCH_MAX_WAIT_S
        quiet_until = loop.time() + gap
        while len(batch) < cap:
            self._arrived.clear()
            while not self._queue.empty() and len(batch) < cap:
                batch.append(self._queue.get_nowait())
                quiet_until = loop.time() + gap
            timeout = min(deadline, quiet_until) - loop.time()
            if len(batch) >= target or timeout <= 0:
                break
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                break
        while not self._queue.empty() and len(batch) < cap:
            batch.append(self._queue.get_nowait())
        return batch

    def _aborted(self) -> TokenOutput:
        return TokenOutput(token_ids=[], log_probs=None, stop_reason="aborted",
                           extra_fields={"global_steps": self.global_steps})  # fmt: skip

    # ---- weight sync -----------------------------------------------------------------------------------------------
    async def begin_weight_update(self) -> None:
        """Block generation (waiting for a running batch to end) until `end_weight_update`."""
        assert self._engine_lock is not None
        await self._engine_lock.acquire()
        self._pending_weights = 0

    async def load_weight_bucket(self, named_tensors: list[tuple[str, torch.Tensor]]) -> int:
        """Copy one bucket of HF-named full tensors into the model."""
        assert self.engine is not None
        loaded = await asyncio.to_thread(self.engine.load_weights, named_tensors)
        self._pending_weights += loaded
        return loaded

    async def end_weight_update(self, global_steps: int | None = None) -> int:
        """Release generation; returns how many tensors this update loaded."""
        assert self._engine_lock is not None
        if global_steps is not None:
            self.global_steps = global_steps
        if self._engine_lock.locked():
            self._engine_lock.release()
        return self._pending_weights

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    # ---- memory / control (nothing to free on CPU: weights stay resident, there is no KV pool) --------------------
    async def wake_up(self, tags: list[str] | None = None) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def wait_for_requests_to_drain(self) -> None:
        if self._idle is not None:
            await self._idle.wait()

    async def abort_all_requests(self, reject_request: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Stop the running batch (its requests return partial output, stop_reason "aborted") and hold new ones."""
        assert self.engine is not None and self._allowed is not None
        self._allowed.clear()
        self._rejecting = reject_request
        self.engine.abort_event.set()
        count = self._inflight
        await self.wait_for_requests_to_drain()
        self.engine.abort_event.clear()
        return {"aborted_count": count, "request_ids": []}

    async def resume_generation(self) -> None:
        assert self._allowed is not None
        self._rejecting = False
        self._allowed.set()

    async def shutdown(self) -> None:
        """Stop the batcher (for in-process use; a Ray actor simply dies with its process)."""
        if self._batcher is not None:
            self._batcher.cancel()
            await asyncio.gather(self._batcher, return_exceptions=True)
            self._batcher = None

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None
