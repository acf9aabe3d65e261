"""Offline DPO on verl's FSDP engine, laid out like verl's SFT trainer (`verl.trainer.sft_trainer`).

Launch by file path with torchrun, exactly like verl's SFT trainer::

    python -m torch.distributed.run --standalone --nproc_per_node=N verl/tp_dpo_trainer.py <hydra overrides>

The config (`tp_dpo_config/dpo_trainer.yaml`) composes verl's own `sft_trainer_engine` config, so `model.*`,
`engine.*`, `optim.*`, `checkpoint.*`, `profiler.*` and `trainer.*` keep their meaning; it adds the `dpo` block and the
preference-data keys (`data.prompt_key|chosen_key|rejected_key`). `data.train_batch_size` and
`data.micro_batch_size_per_gpu` count preference *pairs* (each pair is two sequences, always in one micro-batch).

Reference model: the reference log-probs are precomputed once with the initial policy weights and cached (see
`tp_dpo_reference.py` for why this beats a second engine). `dpo.reference_mode=none` trains reference-free instead
(all reference log-probs 0).

One training step = one global batch of pairs, one optimizer step. Metrics per step go through verl's `Tracking`
(`trainer.logger`, `VERL_FILE_LOGGER_PATH`): `train/loss`, `train/rewards/{chosen,rejected,margin,accuracy}`,
`train/logps/{chosen,rejected}`, `train/lr`, `train/grad_norm`, and the same `val/*` at `trainer.test_freq` and at the
last step when `data.val_files` is set. Checkpoints use verl's `CheckpointHandler`
(`trainer.default_local_dir/global_step_N/` + `latest_checkpointed_iteration.txt`), so `trainer.resume_mode=auto`
resumes at the next step and `python -m verl.model_merger merge --backend fsdp` reads them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # sibling tp_dpo_* modules, also under torchrun

os.environ.setdefault("NCCL_DEBUG", "WARN")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import hydra  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from tensordict.tensorclass import NonTensorData  # noqa: E402
from torch.utils.data import DistributedSampler  # noqa: E402
from torchdata.stateful_dataloader import StatefulDataLoader  # noqa: E402
from tp_dpo_data import PreferenceDataset, collate_pairs  # noqa: E402
from tp_dpo_engine import make_batch, make_dpo_loss_fn, reduce_dpo_metrics  # noqa: E402
from tp_dpo_losses import DPOLossConfig  # noqa: E402
from tp_dpo_reference import compute_reference_logps, load_or_compute, reference_fingerprint  # noqa: E402
from verl.utils import tensordict_utils as tu  # noqa: E402
from verl.utils.checkpoint import CheckpointHandler  # noqa: E402
from verl.utils.config import omega_conf_to_dataclass  # noqa: E402
from verl.utils.device import auto_set_device  # noqa: E402
from verl.utils.distributed import destroy_global_process_group, initialize_global_process_group  # noqa: E402
from verl.utils.tracking import Tracking  # noqa: E402
from verl.workers.engine_workers import TrainingWorker, TrainingWorkerConfig  # noqa: E402

REFERENCE_MODES = ("precompute", "none")


def _files(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _lora_train_meta(model: DictConfig) -> dict[str, Any] | None:
    """The LoRA metadata verl's SFT trainer saves with each checkpoint (for the merger); None without LoRA."""
    if model.get("lora_adapter_path", None) is None and int(model.get("lora_rank", 0) or 0) <= 0:
        return None
    return {
        "r": int(model.get("lora_rank", 0) or 0),
        "lora_alpha": int(model.get("lora_alpha", 0) or 0),
        "task_type": str(model.get("task_type", None) or "CAUSAL_LM"),
    }


class DPOTrainer:
    """Builds the engine, data and reference log-probs from a composed config; `fit()` trains."""

    def __init__(self, config: DictConfig) -> None:
        self.config = config
        self.rank = dist.get_rank()
        self.loss_config = DPOLossConfig(
            beta=float(config.dpo.beta),
            loss_type=str(config.dpo.loss_type),
            label_smoothing=float(config.dpo.label_smoothing),
        )
        self.reference_mode = str(config.dpo.reference_mode)
        if self.reference_mode not in REFERENCE_MODES:
            raise ValueError(f"dpo.reference_mode must be one of {REFERENCE_MODES}, got {self.reference_mode!r}")
        if config.data.pad_mode != "no_padding":
            raise ValueError(f"the DPO trainer needs data.pad_mode=no_padding, got {config.data.pad_mode!r}")
        self.model_config = omega_conf_to_dataclass(config.model)
        self.optimizer_config = omega_conf_to_dataclass(config.optim)
        worker_config = TrainingWorkerConfig(
            model_type="language_model",
            model_config=self.model_config,
            engine_config=omega_conf_to_dataclass(config.engine),
            optimizer_config=self.optimizer_config,
            checkpoint_config=omega_conf_to_dataclass(config.checkpoint),
            profiler_config=omega_conf_to_dataclass(config.profiler),
        )
        self._build_datasets()
        self.training_client = TrainingWorker(config=worker_config)
        self.training_client.set_loss_fn(loss_fn=make_dpo_loss_fn(self.loss_config))
        self.engine = self.training_client.engine
        self._build_dataloaders()
        self.total_training_steps = int(
            config.trainer.total_training_steps or len(self.train_dataloader) * config.trainer.total_epochs
        )
        self.optimizer_config.total_training_steps = self.total_training_steps
        self.steps_per_epoch = len(self.train_dataloader)
        self.training_client.reset()  # builds the model from model.path: the initial (reference) weights
        self._attach_reference_logps()  # before the checkpoint is loaded, so it sees the initial weights
        self.ckpt_handler = CheckpointHandler(
            engine=self.engine,
            train_dataloader=self.train_dataloader,
            default_local_dir=config.trainer.default_local_dir,
            max_ckpt_to_keep=config.trainer.get("max_ckpt_to_keep", None),
            default_hdfs_dir=config.trainer.get("default_hdfs_dir", None),
            resume_mode=config.trainer.get("resume_mode", "auto"),
            resume_from_path=config.trainer.get("resume_from_path", None),
            lora_train_meta=_lora_train_meta(config.model),
        )
        self.resume_global_step = self.ckpt_handler.load_checkpoint()

    def _build_datasets(self) -> None:
        data = self.config.data
        tokenizer = self.model_config.tokenizer
        self.train_dataset = PreferenceDataset(
            _files(data.train_files), tokenizer, data, max_samples=data.get("train_max_samples", -1)
        )
        self.val_dataset = (
            PreferenceDataset(_files(data.val_files), tokenizer, data, max_samples=data.get("val_max_samples", -1))
            if data.get("val_files")
            else None
        )

    def _build_dataloaders(self) -> None:
        data = self.config.data
        self.dp_rank = self.engine.get_data_parallel_rank()
        self.dp_size = self.engine.get_data_parallel_size()
        self.global_pairs = int(data.train_batch_size)
        if self.global_pairs % self.dp_size:
            raise ValueError(f"data.train_batch_size={self.global_pairs} pairs is not divisible by dp={self.dp_size}")
        self.pairs_per_dp = self.global_pairs // self.dp_size
        if not data.use_dynamic_bsz and self.pairs_per_dp % int(data.micro_batch_size_per_gpu):
            raise ValueError(
                f"pairs per dp rank ({self.pairs_per_dp}) must be divisible by data.micro_batch_size_per_gpu="
                f"{data.micro_batch_size_per_gpu} (pairs) when data.use_dynamic_bsz=False"
            )
        if len(self.train_dataset) < self.global_pairs:
            raise ValueError(f"{len(self.train_dataset)} training pairs < data.train_batch_size={self.global_pairs}")
        seed = int(self.config.trainer.get("seed", 1))
        self.train_sampler: DistributedSampler[int] = DistributedSampler(
            self.train_dataset, shuffle=True, num_replicas=self.dp_size, rank=self.dp_rank, drop_last=True, seed=seed
        )
        self.train_dataloader = StatefulDataLoader(
            dataset=self.train_dataset,
            batch_size=self.pairs_per_dp,
            sampler=self.train_sampler,
            collate_fn=collate_pairs,
            num_workers=int(data.num_workers),
            drop_last=True,
        )
        self.meta = {
            "use_remove_padding": self.config.model.use_remove_padding,
            "use_dynamic_bsz": data.use_dynamic_bsz,
            "max_token_len_per_gpu": data.max_token_len_per_gpu,
            "micro_batch_size_per_gpu": data.micro_batch_size_per_gpu,
            "temperature": 1.0,
            "pad_mode": data.pad_mode,
            "pad_token_id": self.model_config.tokenizer.pad_token_id,
            "force_group_size": 2,
        }

    def _reference_cache(self, split: str, dataset: PreferenceDataset) -> Path | None:
        if not self.config.dpo.cache_reference:
            return None
        files = _files(self.config.data.train_files if split == "train" else self.config.data.val_files)
        fingerprint = reference_fingerprint(self.config.model.path, files, self.config.data)
        return Path(self.config.trainer.default_local_dir) / "dpo_reference" / f"{split}-{fingerprint}.pt"

    def _attach_reference_logps(self) -> None:
        splits = [("train", self.train_dataset)] + ([("val", self.val_dataset)] if self.val_dataset else [])
        for split, dataset in splits:
            assert dataset is not None
            if self.reference_mode == "none":
                zeros = torch.zeros(len(dataset))
                dataset.set_reference_logps(zeros, zeros.clone())
                continue
            chosen, rejected, cached = load_or_compute(
                self._reference_cache(split, dataset),
                lambda d=dataset: compute_reference_logps(
                    self.training_client, self.engine, d, self.meta, self.pairs_per_dp
                ),
            )
            dataset.set_reference_logps(chosen, rejected)
            if self.rank == 0:
                how = "loaded from cache" if cached else "computed with the initial policy"
                print(f"DPO reference log-probs for {split} ({len(dataset)} pairs): {how}")

    def _step_batch(self, collated: dict[str, torch.Tensor], global_pairs: int) -> Any:
        data, seqlens = make_batch(collated, self.meta, global_pairs)
        gathered: list[Any] = [None] * self.dp_size
        dist.all_gather_object(gathered, seqlens, group=self.engine.get_data_parallel_group())
        global_seqlens = [n for part in gathered for n in part]
        tu.assign_non_tensor(data, global_token_num=NonTensorData(global_seqlens))
        return data, global_seqlens

    def _validate(self) -> dict[str, float] | None:
        if self.val_dataset is None:
            return None
        n_batches = len(self.val_dataset) // self.global_pairs
        if n_batches == 0:
            raise ValueError(f"{len(self.val_dataset)} val pairs < data.train_batch_size={self.global_pairs}")
        sampler: DistributedSampler[int] = DistributedSampler(
            self.val_dataset, shuffle=False, num_replicas=self.dp_size, rank=self.dp_rank, drop_last=True
        )
        loader = StatefulDataLoader(
            self.val_dataset, batch_size=self.pairs_per_dp, sampler=sampler, collate_fn=collate_pairs, drop_last=True
        )
        sums: dict[str, list[Any]] = {}
        for collated in loader:
            data, _ = self._step_batch(collated, self.global_pairs)
            output = self.training_client.infer_batch(data)
            if output is not None:
                for key, value in tu.get(output, "metrics").items():
                    sums.setdefault(key, []).append(value)
        if not sums:
            return None
        return {f"val/{k}": v for k, v in reduce_dpo_metrics(sums).items()}

    def fit(self) -> None:
        """Train until `total_training_steps`, logging, validating and checkpointing like verl's SFT trainer."""
        cfg = self.config.trainer
        is_logging = self.engine.is_mp_src_rank_with_outputs() and self.dp_rank == 0
        tracking = (
            Tracking(
                project_name=cfg.project_name,
                experiment_name=cfg.experiment_name,
                default_backend=cfg.logger,
                config=OmegaConf.to_container(self.config, resolve=True),
            )
            if is_logging
            else None
        )
        save_freq = self.steps_per_epoch if cfg.save_freq == "after_each_epoch" else int(cfg.save_freq)
        test_freq = self.steps_per_epoch if cfg.test_freq == "after_each_epoch" else int(cfg.test_freq)
        global_step = self.resume_global_step
        if global_step >= self.total_training_steps:
            if self.rank == 0:
                print(f"Nothing to do: resumed at step {global_step} >= total steps {self.total_training_steps}")
            return
        for epoch in range(global_step // self.steps_per_epoch, int(cfg.total_epochs)):
            self.train_sampler.set_epoch(epoch)
            for collated in self.train_dataloader:
                global_step += 1
                data, seqlens = self._step_batch(collated, self.global_pairs)
                tu.assign_non_tensor(data, update_lr_scheduler=True)
                output = self.training_client.train_batch(data=data)
                if self.engine.is_mp_src_rank_with_outputs():
                    raw = tu.get(output, "metrics")
                    metrics = {f"train/{k}": v for k, v in reduce_dpo_metrics(raw).items()}
                    for key in ("grad_norm", "lr", "mfu"):
                        if key in raw:
                            metrics[f"train/{key}"] = float(raw[key])
                    metrics["train/global_tokens"] = float(sum(seqlens))
                    if tracking is not None:
                        tracking.log(data=metrics, step=global_step)
                is_last_step = global_step >= self.total_training_steps
                if (is_last_step or (test_freq > 0 and global_step % test_freq == 0)) and self.val_dataset:
                    val_metrics = self._validate()
                    if tracking is not None and val_metrics:
                        tracking.log(data=val_metrics, step=global_step)
                    dist.barrier()
                if is_last_step or (save_freq > 0 and global_step % save_freq == 0):
                    self.ckpt_handler.save_checkpoint(step=global_step)
                if is_last_step:
                    return


def run_dpo(config: DictConfig) -> None:
    """Initialise torch.distributed (torchrun env), train, tear down."""
    initialize_global_process_group()
    try:
        DPOTrainer(config).fit()
    finally:
        destroy_global_process_group()


@hydra.main(config_path="tp_dpo_config", config_name="dpo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    """Hydra entry point (`tp_dpo_config/dpo_trainer.yaml`)."""
    auto_set_device(config)
    run_dpo(config)


if __name__ == "__main__":
    main()
