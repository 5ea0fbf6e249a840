"""The memory savers wired into a run: what `build_model` and the Trainer call, in one place.

- `swap_split_for`: the family's split of `training.blocks_to_swap` over its block lists (refused
  with the reason where the family has none, or where too few blocks would stay on the GPU).
- `store_frozen`: the denoiser (`base_quantization`, `fp8_base`) and text encoders
  (`text_encoder_quantization`) stored in fewer bits, then the trained network cast to 16 bits
  (`full_bf16` / `full_fp16`).
- `attach_swap`: block swapping, which also places the denoiser (swapped weights stay off the GPU).
- `after_prepare`: what needs accelerate's objects: the fp16 grad-scaler patch and the saved-tensor
  offload for `cpu_offload_checkpointing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..config.settings_memory import base_quantization
from ..networks.quantize import quantization_problems, quantize_frozen_linears
from ..problems import ProblemError, error
from .full_precision import allow_fp16_gradients, cast_trained, full_precision_dtype

SWAP_FIELD = "training.blocks_to_swap"


@dataclass
class SaverState:
    """What the savers did to a run's model (reported in a log event and read by tests)."""

    quantized: dict[str, int] = field(default_factory=dict)  # component -> layers turned
    cast_numbers: int = 0  # trained numbers held in 16 bits
    swap: Any = None  # block_swap.DenoiserSwap
    swapped_bytes: int = 0  # weights kept off the device at set-up
    offload: Any = None  # offload_saved.SavedTensorOffload

    def summary(self) -> str:
        parts = [f"{name} {kind}" for name, kind in self.quantized.items()]
        if self.cast_numbers:
            parts.append(f"LoRA held in 16 bits ({self.cast_numbers:,} numbers)")
        if self.swap is not None:
            counts = ", ".join(f"{swap.count} of {len(swap.blocks)} {name}" for name, swap in self.swap.swaps.items())
            parts.append(f"swapping {counts} ({self.swapped_bytes / 2**30:.2f} GiB off the device)")
        if self.offload is not None:
            parts.append("checkpointed activations offloaded")
        return "memory savers: " + "; ".join(parts) if parts else ""


def family_problems(spec: Any, values: Any) -> list[Any]:
    """Savers the loaded model's family cannot use (`model.family: auto` learns the family only now)."""
    chosen = values.get("flux.train_blocks") or "all"
    if chosen != "all" and not spec.train_block_groups:
        return [error("flux.train_blocks", f"{spec.label} has no separate block groups to train alone",
                      "set flux.train_blocks: all")]
    return []


def swap_split_for(spec: Any, denoiser_config: Any, blocks_to_swap: int) -> dict[str, int]:
    if not blocks_to_swap:
        return {}
    if spec.swap_unsupported:
        raise ProblemError([error(SWAP_FIELD, f"block swapping is {spec.swap_unsupported}", "set training.blocks_to_swap: 0")])
    most = spec.max_blocks_to_swap(denoiser_config)
    if blocks_to_swap > most:
        raise ProblemError([error(SWAP_FIELD, f"this {spec.label} model can swap at most {most} blocks "
                                  "(two blocks of each kind stay on the GPU, as in sd-scripts)",
                                  f"set training.blocks_to_swap to {most} or less")])
    return spec.swap_split(blocks_to_swap)


def store_frozen(model: Any, cfg: Any, device: torch.device, weight_dtype: torch.dtype, state: SaverState) -> None:
    training = cfg.training
    base = model.base
    kind = base_quantization(cfg.values)
    field_name = "training.fp8_base" if training.fp8_base else "training.base_quantization"
    problems = quantization_problems(kind, field_name, training.mixed_precision, device.type)
    if kind == "fp8" and not problems and weight_dtype not in (torch.bfloat16, torch.float16):
        problems = quantization_problems(kind, field_name, "no", device.type)
    text_kind = training.text_encoder_quantization
    problems += quantization_problems(text_kind, "training.text_encoder_quantization", training.mixed_precision,
                                      device.type)
    if problems:
        raise ProblemError(problems)
    if kind != "none":
        state.quantized["denoiser"] = kind
        quantize_frozen_linears(base.unet, kind, weight_dtype, device, base.spec.fp8_keep_patterns())
    if text_kind != "none":
        for index, encoder in enumerate(base.text_encoders):
            quantize_frozen_linears(encoder, text_kind, weight_dtype, device)
            state.quantized[f"text encoder {index + 1}"] = text_kind
    dtype = full_precision_dtype(training)
    if dtype is not None:
        state.cast_numbers = cast_trained(model.unet_parameters() + model.text_parameters(), dtype)


def attach_swap(base: Any, split: dict[str, int], device: torch.device, state: SaverState,
                transfer: Any = None) -> None:
    """Hook the swap onto the denoiser's blocks and place it (swapped frozen weights off the device)."""
    from . import block_swap

    transfer = transfer or block_swap.make_transfer(device)
    swap = block_swap.DenoiserSwap(base.unet, base.spec.swappable_blocks(base.unet), split, transfer)
    state.swap = swap
    state.swapped_bytes = swap.place(base.unet, device)


def after_prepare(trainer: Any, state: SaverState) -> None:
    cfg = trainer.cfg
    if cfg.training.full_fp16:
        allow_fp16_gradients(trainer.accelerator.scaler)
    if cfg.training.cpu_offload_checkpointing:
        from .offload_saved import SavedTensorOffload

        state.offload = SavedTensorOffload(trainer.device)
        state.offload.attach(trainer.model.base.unet)
    summary = state.summary()
    if summary:
        trainer.emit("log", message=summary)
