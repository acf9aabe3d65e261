"""Reference log-probs for DPO: one forward pass of the frozen initial policy over the data, cached on disk.

Decision: precompute once, not a second engine. DPO's reference is the initial policy and never changes, so a
single forward-only pass before the first optimizer step (with the policy engine itself, weights still as loaded
from `model.path`) gives exactly the numbers a frozen second copy would, at the cost of one inference epoch, while
a second engine would hold another sharded copy of the weights for the whole run and redo the forward every step
and every epoch. The values (one summed log-prob per response) are cached as
`<trainer.default_local_dir>/dpo_reference/<split>-<fingerprint>.pt`; the fingerprint covers the model path, the
data files (path, size, mtime), the column keys, `max_length`, truncation and chat-template kwargs. A resumed run
finds the cache and skips the pass; without it, the pass runs before the checkpoint is loaded, so it still sees
the initial weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tensordict.tensorclass import NonTensorData
from tp_dpo_data import PreferenceDataset, collate_pairs
from tp_dpo_engine import batch_sequence_logps, make_batch, split_pairs
from verl.utils import tensordict_utils as tu


def reference_fingerprint(model_path: str, files: list[str], data_config: Any) -> str:
    """A hash of everything the reference log-probs depend on (see the module docstring)."""
    stats = []
    for f in files:
        st = os.stat(f)
        stats.append([os.path.abspath(f), st.st_size, st.st_mtime_ns])
    keys = ("prompt_key", "chosen_key", "rejected_key", "max_length", "truncation")
    recipe = {
        "model": os.path.abspath(os.path.expanduser(model_path)),
        "files": stats,
        "data": {k: str(data_config.get(k, None)) for k in keys},
        "chat": str(data_config.get("apply_chat_template_kwargs", None)),
        "max_samples": str(data_config.get("train_max_samples", -1))
        + "/"
        + str(data_config.get("val_max_samples", -1)),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _rank_batches(n: int, rank: int, world: int, batch_pairs: int) -> list[list[int]]:
    """Every rank's share of `range(n)` in batches of exactly `batch_pairs` (padded by repeats); equal counts."""
    per_rank = -(-n // world)
    mine = [(rank + world * i) % n for i in range(per_rank)]
    batches = [mine[i : i + batch_pairs] for i in range(0, per_rank, batch_pairs)]
    last = batches[-1]
    batches[-1] = last + [last[0]] * (batch_pairs - len(last))
    return batches


@torch.no_grad()
def compute_reference_logps(
    training_client: Any,
    engine: Any,
    dataset: PreferenceDataset,
    meta: dict[str, Any],
    batch_pairs: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs of every (chosen, rejected) in `dataset` under the engine's current weights."""
    rank, world = engine.get_data_parallel_rank(), engine.get_data_parallel_size()
    found_index: list[int] = []
    found_c: list[float] = []
    found_r: list[float] = []
    for batch_indices in _rank_batches(len(dataset), rank, world, batch_pairs):
        collated = collate_pairs([dataset[i] for i in batch_indices])
        data, seqlens = make_batch(collated, meta, global_pairs=batch_pairs * world)
        tu.assign_non_tensor(data, compute_loss=False, global_token_num=NonTensorData(seqlens))
        output = training_client.infer_batch(data)
        if output is None:  # not an output rank in a model-parallel group
            continue
        logps = batch_sequence_logps({"log_probs": output["log_probs"]}, data).float().cpu()
        chosen, rejected = split_pairs(logps, collated["is_chosen"])
        found_index.extend(batch_indices)
        found_c.extend(chosen.tolist())
        found_r.extend(rejected.tolist())
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (found_index, found_c, found_r))
    ref_c = torch.full((len(dataset),), float("nan"))
    ref_r = torch.full((len(dataset),), float("nan"))
    for indices, cs, rs in gathered:
        ref_c[indices] = torch.tensor(cs)
        ref_r[indices] = torch.tensor(rs)
    if torch.isnan(ref_c).any() or torch.isnan(ref_r).any():
        raise RuntimeError("reference pass left some pairs without log-probs")
    return ref_c, ref_r


def load_or_compute(
    cache_file: Path | None,
    compute: Any,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Load `(chosen, rejected)` from `cache_file` if present, else `compute()` and (rank 0) save it atomically.

    Returns the tensors and whether they came from the cache. Every rank decides the same way: rank 0 checks the file
    and broadcasts the answer, so a collective pass is either run by all ranks or by none.
    """
    exists = [bool(cache_file is not None and cache_file.is_file()) if dist.get_rank() == 0 else False]
    dist.broadcast_object_list(exists, src=0)
    if exists[0]:
        assert cache_file is not None
        payload: list[Any] = [torch.load(cache_file, map_location="cpu") if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(payload, src=0)
        return payload[0]["chosen"], payload[0]["rejected"], True
    chosen, rejected = compute()
    if cache_file is not None and dist.get_rank() == 0:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
        torch.save({"chosen": chosen, "rejected": rejected}, tmp)
        os.replace(tmp, cache_file)
    dist.barrier()
    return chosen, rejected, False
