"""The trainer-side half of the `hf` rollout: verl's `BaseRollout` for rollout name `hf`.

verl builds one of these inside every hybrid actor/rollout worker (`engine_workers.ActorRolloutRefWorker`, via
`_ROLLOUT_REGISTRY[("hf", "async")]`) and, for standalone/colocated rollouts, inside each `CheckpointEngineWorker`.
After each actor update the trainer's checkpoint manager calls the worker's `update_weights`, which hands this adapter
the actor's full HF-named tensors (`engine.get_per_tensor_param()`); the adapter streams them in buckets of
`rollout.checkpoint_engine.update_weights_bucket_megabytes` to its replica's `HFRolloutServer` through Ray.

Only the first rank of a replica talks to the server; the other ranks still drain the weight generator, because
materialising FSDP2 full tensors is a collective.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterable
from typing import Any

import ray
import torch
from torch.distributed.device_mesh import DeviceMesh
from verl.workers.config import HFModelConfig, RolloutConfig
from verl.workers.rollout.base import BaseRollout

logger = logging.getLogger(__name__)

SERVER_NAME_PREFIX = "hf_server"


def server_actor_name(replica_rank: int, node_rank: int = 0, suffix: str = "") -> str:
    """The Ray actor name of a replica's server (shared by the replica that creates it and the adapter)."""
    return f"{SERVER_NAME_PREFIX}_{replica_rank}_{node_rank}{suffix}"


class HFServerAdapter(BaseRollout):
    """Client of one `HFRolloutServer`: weight sync and sleep/wake for the hybrid engine."""

    def __init__(
        self,
        config: RolloutConfig,
        model_config: HFModelConfig,
        device_mesh: DeviceMesh | None,
        replica_rank: int = -1,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        rollout_world_size = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // rollout_world_size if replica_rank == -1 else replica_rank
        self.rollout_rank = rank % rollout_world_size
        self._has_server = self.rollout_rank == 0
        self.server_handle: ray.actor.ActorHandle | None = None

    def _server(self) -> ray.actor.ActorHandle | None:
        """The replica's server (looked up lazily: servers start after the hybrid workers)."""
        if not self._has_server:
            return None
        if self.server_handle is None:
            self.server_handle = ray.get_actor(server_actor_name(self.replica_rank))
        return self.server_handle

    async def resume(self, tags: list[str]) -> None:
        """Wake the server (weights and KV stay resident on CPU, so the server treats this as a no-op)."""
        server = self._server()
        if server is not None and self.config.free_cache_engine:
            await server.wake_up.remote(tags=tags)

    async def release(self) -> None:
        """Put the server to sleep (a no-op on CPU; kept so the verl call sequence is honoured)."""
        server = self._server()
        if server is not None and self.config.free_cache_engine:
            await server.sleep.remote()

    @torch.no_grad()
    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None] | Iterable[tuple[str, torch.Tensor]],
        wire_format: str = "named_tensors",
        global_steps: int | None = None,
        peft_config: Any = None,
        **kwargs: Any,
    ) -> None:
        """Stream full HF-named tensors to the server in buckets; generation is blocked until the last one lands."""
        if wire_format != "named_tensors":
            raise NotImplementedError(f"the hf rollout takes wire_format='named_tensors' only, got {wire_format!r}")
        if peft_config is not None:
            raise NotImplementedError(
                "the hf rollout does not load LoRA adapters: set actor_rollout_ref.model.lora.merge=True so the "
                "actor sends merged full weights"
            )
        server = self._server()
        if server is None:
            for _ in weights:  # full_tensor() is a collective: every rank must walk the generator
                pass
            return
        bucket_bytes = max(1, int(self.config.checkpoint_engine.update_weights_bucket_megabytes)) << 20
        await server.begin_weight_update.remote()
        total = 0
        try:
            bucket: list[tuple[str, torch.Tensor]] = []
            size = 0
            for name, tensor in weights:
                cpu = tensor.detach().to("cpu", copy=True)
                bucket.append((name, cpu))
                size += cpu.numel() * cpu.element_size()
                if size >= bucket_bytes:
                    total += await server.load_weight_bucket.remote(bucket)
                    bucket, size = [], 0
            if bucket:
                total += await server.load_weight_bucket.remote(bucket)
        finally:
            await server.end_weight_update.remote(global_steps)
        if total == 0:
            raise RuntimeError("weight sync sent no tensors to the hf rollout server")
        logger.info("hf rollout replica %s: synced %d tensors (step %s)", self.replica_rank, total, global_steps)
