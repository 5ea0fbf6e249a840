"""What a run will do, before it runs: the dataset summary and the derived numbers.

Used by `tui-lora validate`, the wizard's Review screen and the training loop, so all three show
the same numbers. Torch-free and fast (image headers only).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .config import RunConfig
from .dataset.scan import DatasetSummary, scan_dataset
from .dataset.scan_options import scan_options
from .lora_size import estimate_file_size
from .optim.numbers import warmup_steps
from .problems import Problem


@dataclass
class RunPlan:
    dataset: DatasetSummary | None  # None: not scanned yet (the wizard's Review while it scans)
    steps_per_epoch: int | None  # the step numbers are None only while `dataset` is None
    total_steps: int | None
    epochs: int
    warmup_steps: int | None
    text_encoder_stop_step: int | None  # None: trained to the end (or not at all), or not known yet
    lora_scale: float
    conv_scale: float | None
    estimated_file_bytes: int | None
    file_size_note: str = ""  # how the size was estimated, or why it is unknown
    problems: list[Problem] = field(default_factory=list)


def warmup_steps_for(cfg: RunConfig, total_steps: int) -> int:
    return warmup_steps(cfg.optimizer.scheduler, cfg.optimizer.warmup_percent, total_steps)


def text_encoder_stop_step(cfg: RunConfig, total_steps: int) -> int | None:
    percent = cfg.training.stop_text_encoder_percent
    if percent <= 0 or not cfg.trains_text_encoder:
        return None
    return math.ceil(total_steps * percent / 100)


def scan_for(cfg: RunConfig) -> DatasetSummary:
    return scan_dataset(cfg.folders.images, cfg.folders.regularization, **scan_options(cfg))


def plan_run(cfg: RunConfig, dataset: DatasetSummary | None = None) -> RunPlan:
    """The whole plan; scans the dataset unless its summary is given."""
    return _plan(cfg, dataset if dataset is not None else scan_for(cfg))


def plan_before_scan(cfg: RunConfig) -> RunPlan:
    """What the settings alone decide (scales, epochs, file size); the step numbers are None."""
    return _plan(cfg, None)


def limit_to_max_steps(cfg: RunConfig, summary: DatasetSummary) -> DatasetSummary:
    """sd-scripts' run length (train_network.py): max_train_epochs, when set, decides; otherwise
    max_train_steps does, and the epoch count becomes ceil(steps / steps per epoch)."""
    limit = cfg.training.max_train_steps
    if not limit or cfg.training.max_train_epochs or summary.steps_per_epoch <= 0:
        return summary
    return dataclasses.replace(summary, total_steps=limit, epochs=math.ceil(limit / summary.steps_per_epoch))


def _plan(cfg: RunConfig, summary: DatasetSummary | None) -> RunPlan:
    if summary is not None:
        summary = limit_to_max_steps(cfg, summary)
    total = summary.total_steps if summary is not None else None
    size, size_note = estimate_file_size(cfg.values)  # counted from the model's layer shapes
    return RunPlan(
        dataset=summary,
        steps_per_epoch=summary.steps_per_epoch if summary is not None else None,
        total_steps=total,
        epochs=summary.epochs if summary is not None else cfg.epochs,
        warmup_steps=warmup_steps_for(cfg, total) if total is not None else None,
        text_encoder_stop_step=text_encoder_stop_step(cfg, total) if total is not None else None,
        lora_scale=cfg.network.alpha / cfg.network.rank,
        conv_scale=None if cfg.network.type == "lora" else cfg.network.conv_alpha / cfg.network.conv_rank,
        estimated_file_bytes=size,
        file_size_note=size_note,
        problems=list(summary.problems) if summary is not None else [],
    )
