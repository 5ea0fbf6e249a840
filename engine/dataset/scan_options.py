"""The settings a dataset scan reads from a run, in one place: the plan, the wizard's scans and
the doctor all build their `scan_dataset` keywords here, so a new scan option cannot reach one of
them and not the others. Torch-free.
"""

from __future__ import annotations

from typing import Any

from engine.dataset.subsets import subset_plan

SCAN_OPTION_NAMES = ("caption_extension", "batch_size", "epochs", "max_resolution", "buckets_enabled", "bucket_min",
                     "bucket_max", "bucket_step", "bucket_no_upscale", "gradient_accumulation_steps", "num_processes", "subsets")


def scan_options(cfg) -> dict[str, Any]:
    """`scan_dataset` keywords (all but the folders) from a RunConfig."""
    return {
        "caption_extension": cfg.training.caption_extension,
        "batch_size": cfg.training.batch_size,
        "epochs": cfg.epochs,
        "max_resolution": tuple(cfg.training.max_resolution),
        "buckets_enabled": cfg.buckets.enabled,
        "bucket_min": cfg.buckets.min_resolution,
        "bucket_max": cfg.buckets.max_resolution,
        "bucket_step": cfg.buckets.step,
        "bucket_no_upscale": cfg.buckets.no_upscale,
        "gradient_accumulation_steps": cfg.training.gradient_accumulation_steps,
        "num_processes": cfg.hardware.num_processes,
        "subsets": subset_plan(cfg.values),  # the folders' own values (dataset.subsets)
    }
