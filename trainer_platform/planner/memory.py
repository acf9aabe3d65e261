"""The memory model: bytes per GPU, by phase, role and kind, for verl 0.9.1's FSDP workers and a vLLM/SGLang rollout.

An ESTIMATE, not a measurement: it counts the tensors that dominate (weights, gradients, optimizer states,
activations, logits, KV cache) from the architecture and the settings, plus fixed overheads. No GPU was available
to calibrate it; the published configurations in tests/planner/published_configs.yaml are its check.

The run is a sequence of phases; the peak is the largest of them:
  rollout   the engine holds its memory fraction; training state that is not offloaded stays resident
  log-prob  forward passes of actor (old log-probs), reference and critic (values) over the step's batch
  update    actor (and critic) forward + backward + optimizer step over one micro batch
Between phases verl offloads what its flags say (param_offload / optimizer_offload move state to host memory
between phases, but verl loads both back onto the GPU for the update: verl/workers/fsdp_workers.py
`update_actor` -> load_fsdp_model_to_gpu / load_fsdp_optimizer), and the rollout engine sleeps
(rollout.free_cache_engine=True: weights and KV cache released) while training runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trainer_platform.planner.arch import ModelFacts

GIB = 2**30

# --- constants, each with its source -------------------------------------------------------------------------
# verl 0.9.1 loads actor, critic and reference in fp32 (engine/fsdp.yaml `model_dtype: fp32`), computes in bf16
PARAM_BYTES = 4
# FSDP keeps gradients in the parameters' dtype (fp32) after the reduce-scatter (mixed precision reduce_dtype fp32)
GRAD_BYTES = 4
# AdamW: exp_avg + exp_avg_sq in fp32 (torch.optim.AdamW, verl optim/fsdp.yaml optimizer: AdamW)
ADAM_BYTES = 8
# bf16 copies FSDP all-gathers for compute (MixedPrecision param_dtype=bf16)
COMPUTE_BYTES = 2
# FSDP units gathered at once: the current decoder layer plus the prefetched next one (forward/backward_prefetch)
GATHERED_LAYERS = 2
# bytes per logit element in an update micro batch: bf16 logits + their bf16 gradient (verl
# utils/torch_functional.logprobs_from_logits uses flash-attn's Triton cross-entropy with inplace_backward, so no
# fp32 log-softmax copy is made; transformers' Qwen2/Llama heads return bf16 logits)
LOGIT_BYTES_UPDATE = 4
# extra bytes per logit when the entropy bonus is in the loss: the bf16 softmax kept for backward and the
# softmax*logits product (verl.utils.torch_functional.entropy_from_logits)
LOGIT_BYTES_ENTROPY = 4
# bytes per logit in a forward-only log-prob pass: bf16 logits + softmax + product for the entropy metric
# (compute_log_prob calls the forward with calculate_entropy=True)
LOGIT_BYTES_FORWARD = 6
# CUDA context + NCCL communicators per process, GiB (PyTorch's context is 0.5-1 GiB with lazy module loading;
# NCCL buffers about 0.5 GiB per communicator on 8 GPUs)
CONTEXT_GIB = 1.5
# what a sleeping rollout engine keeps (its own CUDA context, CUDA-graph pool), GiB
ENGINE_ASLEEP_GIB = 1.0
# a rollout engine's own activations inside its memory share, GiB (vLLM's profile run at verl's
# max_num_batched_tokens=8192: hidden states and sampler logits of one scheduled batch)
ENGINE_OVERHEAD_GIB = 0.5
# CUDA graphs the engine captures beside its share, GiB (vLLM's start-up log reports 0.3-1 GiB for verl's
# cudagraph_capture_sizes; vLLM documents that gpu_memory_utilization does not include them before 0.11)
ENGINE_GRAPHS_GIB = 0.5
# caching-allocator fragmentation of the per-micro-batch tensors (activations, logits, gathered layers; the
# long-lived flat shards are allocated once): reserved-but-unallocated as a fraction of allocated (verl issue
# #2828's OOM message: 6.77 GiB reserved-unallocated next to 60.49 GiB allocated = 11%)
FRAGMENTATION = 0.10
# when judging settings a user chose: sequences average at least this fraction of their maximum length
# (rmpad micro batches hold real tokens only; GSM8K-style prompts and answers fill a fifth to a quarter)
FILL_FLOOR = 0.2


@dataclass(frozen=True)
class Workload:
    """What one step asks of the GPUs (independent of the settings)."""

    # "rl", "sft" or "dpo"
    kind: str
    # longest sequence, tokens (RL: max prompt + max response)
    seq_len: int
    # ranks in the job and per node
    world: int
    gpus_per_node: int
    # sequences one rank handles per optimizer update (the micro batch's upper bound)
    per_rank_sequences: int
    # sequences one rank runs forward-only per step (log-probs over the whole batch); 0 = per_rank_sequences
    per_rank_batch: int = 0
    # roles besides the trained policy
    reference: bool = False
    critic: bool = False
    # "vllm" / "sglang" (a GPU engine that reserves memory), "hf" or None
    rollout_engine: str | None = None
    # the entropy bonus is part of the loss
    entropy_in_loss: bool = False
    # sequences per sample (DPO: chosen + rejected)
    sequences_per_sample: int = 1


@dataclass(frozen=True)
class Settings:
    """The knobs that change memory (what the search chooses)."""

    strategy: str = "fsdp"
    param_offload: bool = False
    optimizer_offload: bool = False
    gradient_checkpointing: bool = True
    # sequences per micro batch per GPU (fixed batching)
    micro_batch: int = 1
    # pack micro batches up to max_tokens per GPU
    dynamic: bool = False
    max_tokens: int = 16384
    ulysses: int = 1
    rollout_tp: int = 1
    rollout_fraction: float = 0.6
    # 0 = full fine-tuning
    lora_rank: int = 0
    # micro batch of the forward-only log-prob passes (None = micro_batch; dynamic batching uses max_tokens)
    log_prob_micro: int | None = None
    # the reference model's own param offload (None = param_offload)
    ref_offload: bool | None = None


@dataclass(frozen=True)
class Term:
    role: str
    kind: str
    gib: float


@dataclass(frozen=True)
class Phase:
    name: str
    terms: tuple[Term, ...]

    @property
    def total_gib(self) -> float:
        return sum(t.gib for t in self.terms)

    def biggest(self) -> Term:
        return max(self.terms, key=lambda t: t.gib)


@dataclass(frozen=True)
class Estimate:
    """Per-GPU memory by phase, and what the rollout engine's share leaves for its KV cache."""

    capacity_gib: float
    phases: tuple[Phase, ...]
    # tokens the rollout engine's KV cache holds per replica (None without a GPU engine)
    kv_tokens: int | None
    # tokens of the longest sequence (the KV cache must hold at least one)
    seq_len: int

    @property
    def peak(self) -> Phase:
        return max(self.phases, key=lambda p: p.total_gib)

    def training_fits(self, margin: float = 0.0) -> bool:
        """The phases besides rollout fit (the rollout engine sleeps during them)."""
        return all(p.total_gib <= self.capacity_gib * (1.0 - margin) for p in self.phases if p.name != "rollout")

    def fits(self, margin: float = 0.0) -> bool:
        kv_ok = self.kv_tokens is None or self.kv_tokens >= self.seq_len
        return kv_ok and self.peak.total_gib <= self.capacity_gib * (1.0 - margin)


def micro_tokens(w: Workload, s: Settings, fill: float, forward: bool = False) -> float:
    """Tokens of one micro batch on one GPU (remove-padding: real tokens only; Ulysses splits them).

    Dynamic batching splits a rank's sequences into the fewest micro batches under the budget
    (verl.utils.seqlen_balancing.rearrange_micro_batches), so a micro batch never holds more than the rank has."""
    length = w.sequences_per_sample * w.seq_len * fill
    if s.dynamic:
        sequences = (w.per_rank_batch or w.per_rank_sequences) if forward else w.per_rank_sequences
        return max(min(float(s.max_tokens), sequences * length / s.ulysses), w.seq_len / s.ulysses)
    micro = (s.log_prob_micro or s.micro_batch) if forward else s.micro_batch
    return micro * length / s.ulysses


def activation_bytes_per_token_layer(m: ModelFacts) -> int:
    """Tensors one decoder layer saves for backward, per token, bf16 with flash-attention (no s^2 term):
    norm inputs and outputs, q/k/v (rotary copies), attention output, MLP gate/up/act/product (Korthikanti et al.
    2022, 'Reducing Activation Recomputation', sec. 4, recounted for GQA + SwiGLU) plus fp32 RMSNorm upcasts
    (transformers' Qwen2RMSNorm / LlamaRMSNorm)."""
    h, inter = m.hidden, m.active_intermediate
    return COMPUTE_BYTES * (6 * h + 2 * m.q_dim + 3 * m.kv_dim + 4 * inter) + 4 * 2 * h


def kv_bytes_per_token(m: ModelFacts, tp: int) -> int:
    """K and V of every layer in bf16 on one engine rank (KV heads split over TP, replicated below one per rank)."""
    heads_per_rank = max(1, -(-m.kv_heads // tp))
    return 2 * m.layers * heads_per_rank * m.head_dim * COMPUTE_BYTES


def _model_state(m: ModelFacts, s: Settings, world: int) -> tuple[float, float, float]:
    """Sharded (weights, grads, optimizer) bytes per GPU of one trained model; LoRA trains adapters only."""
    trainable = m.lora_params(s.lora_rank) if s.lora_rank else m.params
    weights = (m.params + (trainable if s.lora_rank else 0)) * PARAM_BYTES / world
    return weights, trainable * GRAD_BYTES / world, trainable * ADAM_BYTES / world


def _gathered(m: ModelFacts, grads: bool) -> float:
    """Unsharded bf16 copies during compute: embeddings/head (root unit) + the gathered layers (+ fp32 layer grads
    before their reduce-scatter)."""
    out = m.embedding_params * COMPUTE_BYTES + GATHERED_LAYERS * m.layer_params * COMPUTE_BYTES
    return out + (m.layer_params * GRAD_BYTES if grads else 0)


def _activations(m: ModelFacts, tokens: float, checkpointing: bool) -> float:
    per_layer = activation_bytes_per_token_layer(m) * tokens
    if checkpointing:
        # one bf16 hidden state per layer is kept; one layer is recomputed (and its gradients built) at a time
        return tokens * m.layers * m.hidden * COMPUTE_BYTES + 2 * per_layer
    return per_layer * m.layers


def _g(x: float) -> float:
    return x / GIB


def estimate(m: ModelFacts, w: Workload, s: Settings, capacity_gib: float, fill: float = 1.0) -> Estimate:
    """Per-GPU memory of every phase. `fill`: average sequence length as a fraction of the maximum."""
    weights, grads, optim = _model_state(m, s, w.world)
    c_weights, c_grads, c_optim = _model_state(m, Settings(), w.world)  # the critic: full fine-tuning
    # with LoRA verl computes reference log-probs with the adapters disabled: no separate reference model
    reference = w.reference and not s.lora_rank
    ref_weights = m.params * PARAM_BYTES / w.world if reference else 0.0
    ref_offload = s.param_offload if s.ref_offload is None else s.ref_offload
    engine = w.rollout_engine in ("vllm", "sglang")
    base = [Term("all", "CUDA context + NCCL", CONTEXT_GIB)]
    asleep = [Term("rollout", "engine asleep", ENGINE_ASLEEP_GIB)] if engine else []

    def idle(role: str) -> list[Term]:
        """What `role` keeps on the GPU while another role computes (its offload flags decide)."""
        if role == "actor":
            return [
                *([] if s.param_offload else [Term("actor", "weights", _g(weights))]),
                *([] if s.optimizer_offload else [Term("actor", "optimizer states", _g(optim))]),
            ]
        if role == "ref":
            return [] if ref_offload or not reference else [Term("ref", "weights", _g(ref_weights))]
        if role == "critic" and w.critic:
            return [
                *([] if s.param_offload else [Term("critic", "weights", _g(c_weights))]),
                *([] if s.optimizer_offload else [Term("critic", "optimizer states", _g(c_optim))]),
            ]
        return []

    def with_fragmentation(terms: list[Term]) -> tuple[Term, ...]:
        transient = sum(t.gib for t in terms if t.kind in ("activations", "logits", "gathered layers"))
        return (*base, *terms, Term("all", "allocator fragmentation", transient * FRAGMENTATION))

    phases: list[Phase] = []
    kv_tokens = None
    if engine:
        share = s.rollout_fraction * capacity_gib
        engine_weights = _g(m.params * COMPUTE_BYTES / s.rollout_tp)
        kv = max(0.0, share - engine_weights - ENGINE_OVERHEAD_GIB)
        kv_tokens = int(kv * GIB / kv_bytes_per_token(m, s.rollout_tp))
        rollout_terms = [
            *idle("actor"),
            *idle("ref"),
            *idle("critic"),
            Term("rollout", "engine weights", engine_weights),
            Term("rollout", "KV cache", kv),
            Term("rollout", "engine overhead", min(share, ENGINE_OVERHEAD_GIB)),
            Term("rollout", "CUDA graphs", ENGINE_GRAPHS_GIB),
        ]
        phases.append(Phase("rollout", (*base, *rollout_terms)))
    if w.kind == "rl":
        lp_tokens = micro_tokens(w, s, fill, forward=True)
        forward = [
            Term("actor", "weights", _g(weights)),
            *[t for t in idle("actor") if t.kind != "weights"],
            *idle("ref"),
            *idle("critic"),
            *asleep,
            Term("actor", "gathered layers", _g(_gathered(m, grads=False))),
            Term("actor", "activations", _g(activation_bytes_per_token_layer(m) * lp_tokens)),
            Term("actor", "logits", _g(lp_tokens * m.vocab * LOGIT_BYTES_FORWARD)),
        ]
        phases.append(Phase("log-prob", with_fragmentation(forward)))
    tokens = micro_tokens(w, s, fill)
    logit_bytes = LOGIT_BYTES_UPDATE + (LOGIT_BYTES_ENTROPY if w.entropy_in_loss else 0)
    update = [
        Term("actor", "weights", _g(weights)),
        Term("actor", "gradients", _g(grads)),
        Term("actor", "optimizer states", _g(optim)),
        *(idle("ref") if w.kind == "rl" else [Term("ref", "weights", _g(ref_weights))] if reference else []),
        *idle("critic"),
        *asleep,
        Term("actor", "gathered layers", _g(_gathered(m, grads=not s.lora_rank))),
        Term("actor", "activations", _g(_activations(m, tokens, s.gradient_checkpointing))),
        Term("actor", "logits", _g(tokens * m.vocab * logit_bytes)),
    ]
    phases.append(Phase("actor update", with_fragmentation(update)))
    if w.critic:
        critic = [
            Term("critic", "weights", _g(c_weights)),
            Term("critic", "gradients", _g(c_grads)),
            Term("critic", "optimizer states", _g(c_optim)),
            *idle("actor"),
            *idle("ref"),
            *asleep,
            Term("critic", "gathered layers", _g(_gathered(m, grads=True))),
            Term("critic", "activations", _g(_activations(m, tokens, s.gradient_checkpointing))),
        ]
        phases.append(Phase("critic update", with_fragmentation(critic)))
    return Estimate(capacity_gib=capacity_gib, phases=tuple(phases), kv_tokens=kv_tokens, seq_len=w.seq_len)


def fits_when(m: ModelFacts, w: Workload, s: Settings, capacity_gib: float, margin: float) -> str:
    """'yes' (fits with the margin at full length), 'tight' (only when sequences average at most FILL_FLOOR
    of their maximum, or only without the margin) or 'no'."""
    if estimate(m, w, s, capacity_gib).fits(margin):
        return "yes"
    if estimate(m, w, s, capacity_gib, fill=FILL_FLOOR).fits(0.0):
        return "tight"
    return "no"


def with_settings(s: Settings, **changes: object) -> Settings:
    return replace(s, **changes)  # type: ignore[arg-type]
