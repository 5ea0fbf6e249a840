"""What a run will do, before it runs: the dataset summary and the derived numbers.

Used by `tui-lora validate`, the wizard's review screen and the training loop, so all three show
the same step counts. Torch-free and fast (image headers only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .config import RunConfig
from .dataset.scan import DatasetSummary, scan_dataset
from .optim.numbers import warmup_steps
from .problems import Problem

# fp16 bytes of a rank-1 LoRA over the usual targets (UNet attention + text encoder), measured
# from Kohya-format files: SD 1.x rank 32 ≈ 36 MB, SDXL rank 32 ≈ 217 MB. LoCon adds convolutions.
_BYTES_PER_RANK = {"sd1": 1.14e6, "sd2": 1.05e6, "sdxl": 6.8e6, "tiny": 2.0e4}


@dataclass
class RunPlan:
    dataset: DatasetSummary
    steps_per_epoch: int
    total_steps: int
    epochs: int
    warmup_steps: int
    text_encoder_stop_step: int | None  # None: trained to the end (or not at all)
    lora_scale: float
    conv_scale: float | None
    estimated_file_bytes: int
    problems: list[Problem] = field(default_factory=list)


def warmup_steps_for(cfg: RunConfig, total_steps: int) -> int:
    return warmup_steps(cfg.optimizer.scheduler, cfg.optimizer.warmup_percent, total_steps)


def text_encoder_stop_step(cfg: RunConfig, total_steps: int) -> int | None:
    percent = cfg.training.stop_text_encoder_percent
    if percent <= 0 or cfg.text_encoder_lr == 0:
        return None
    return math.ceil(total_steps * percent / 100)


def scan_for(cfg: RunConfig) -> DatasetSummary:
    return scan_dataset(
        cfg.folders.images,
        cfg.folders.regularization,
        caption_extension=cfg.training.caption_extension,
        batch_size=cfg.training.batch_size,
        epochs=cfg.epochs,
        max_resolution=tuple(cfg.training.max_resolution),
        buckets_enabled=cfg.buckets.enabled,
        bucket_min=cfg.buckets.min_resolution,
        bucket_max=cfg.buckets.max_resolution,
        bucket_step=cfg.buckets.step,
        bucket_no_upscale=cfg.buckets.no_upscale,
        gradient_accumulation_steps=cfg.training.gradient_accumulation_steps,
        num_processes=cfg.hardware.num_processes,
    )


def estimate_file_bytes(cfg: RunConfig) -> int:
    family = "tiny" if str(cfg.model.path).startswith("builtin-tiny") else (
        "sdxl" if cfg.model.sdxl else "sd2" if cfg.model.v2 else "sd1")
    per_rank = _BYTES_PER_RANK[family] * {"float": 2, "fp16": 1, "bf16": 1}[cfg.training.save_precision]
    share = 1.0 if cfg.text_encoder_lr != 0 else 0.85  # text encoder layers are ~15% of the file
    size = per_rank * cfg.network.rank * share
    if cfg.network.type != "lora":
        size += per_rank * 0.6 * cfg.network.conv_rank
    return int(size)


def plan_run(cfg: RunConfig, dataset: DatasetSummary | None = None) -> RunPlan:
    summary = dataset or scan_for(cfg)
    total = summary.total_steps
    return RunPlan(
        dataset=summary,
        steps_per_epoch=summary.steps_per_epoch,
        total_steps=total,
        epochs=cfg.epochs,
        warmup_steps=warmup_steps_for(cfg, total),
        text_encoder_stop_step=text_encoder_stop_step(cfg, total),
        lora_scale=cfg.network.alpha / cfg.network.rank,
        conv_scale=None if cfg.network.type == "lora" else cfg.network.conv_alpha / cfg.network.conv_rank,
        estimated_file_bytes=estimate_file_bytes(cfg),
        problems=list(summary.problems),
    )
