"""The VRAM estimate for setups whose memory needs their communities know well (no torch, no GPU).

    python benchmarks/vram_table.py

Prints each setup's estimated peak (allocated, and total with CUDA context and allocator slack)
beside the GPU size users report it fitting, then the full breakdown of each.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.vram import GIB, estimate_vram  # noqa: E402
from engine.vram.report import breakdown_lines  # noqa: E402

_COMMON = {"training.batch_size": 1, "optimizer.name": "AdamW8bit", "optimizer.learning_rate": 1e-4,
           "training.mixed_precision": "bf16", "network.rank": 16}
CASES = [
    ("SD 1.5 LoRA, 512 px, batch 1, AdamW8bit", "fits 8 GB",
     {"model.quick_pick": "sd15", "training.max_resolution": [512, 512], "optimizer.text_encoder_lr": 5e-5}),
    ("SD 1.5 LoRA, 512 px, batch 1, AdamW (fp32 states)", "fits 8 GB",
     {"model.quick_pick": "sd15", "training.max_resolution": [512, 512], "optimizer.name": "AdamW",
      "optimizer.text_encoder_lr": 5e-5}),
    ("SDXL LoRA, 1024 px, checkpointing, AdamW8bit, UNet only", "fits 12-16 GB",
     {"model.sdxl": True, "training.max_resolution": [1024, 1024], "training.gradient_checkpointing": True,
      "optimizer.text_encoder_lr": 0.0}),
    ("SDXL LoRA, 1024 px, checkpointing, AdamW8bit, + text encoders", "fits 16 GB",
     {"model.sdxl": True, "training.max_resolution": [1024, 1024], "training.gradient_checkpointing": True,
      "optimizer.text_encoder_lr": 5e-5}),
    ("SDXL LoRA, 1024 px, no checkpointing, AdamW8bit", "needs 24 GB",
     {"model.sdxl": True, "training.max_resolution": [1024, 1024], "optimizer.text_encoder_lr": 0.0}),
    ("FLUX.1-dev LoRA, fp8 base, 512 px, checkpointing, cached text", "fits 16-24 GB",
     {"model.family": "flux1", "training.max_resolution": [512, 512], "training.fp8_base": True,
      "training.gradient_checkpointing": True, "training.cache_text_encoder_outputs": True,
      "optimizer.text_encoder_lr": 0.0}),
    ("FLUX.1-dev LoRA, fp8 base, 1024 px, checkpointing, cached text", "fits 24 GB",
     {"model.family": "flux1", "training.max_resolution": [1024, 1024], "training.fp8_base": True,
      "training.gradient_checkpointing": True, "training.cache_text_encoder_outputs": True,
      "optimizer.text_encoder_lr": 0.0}),
]


def main() -> int:
    estimates = [(label, reported, estimate_vram({**_COMMON, **values})) for label, reported, values in CASES]
    print("| setup | community report | estimated allocated | estimated peak |\n|---|---|---|---|")
    for label, reported, estimate in estimates:
        print(f"| {label} | {reported} | {estimate.allocated_bytes / GIB:.1f} GiB | {estimate.total_gib:.1f} GiB |")
    for label, _, estimate in estimates:
        print(f"\n{label}")
        print("\n".join(breakdown_lines(estimate)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
