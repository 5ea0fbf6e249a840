"""`training.full_bf16` / `full_fp16`: the LoRA, its gradients and the optimizer's state in 16 bits.

As sd-scripts does it: the trained network is cast to the mixed-precision dtype before the optimizer
is built, so gradients come out in that dtype and the optimizer's state follows (torch optimizers keep
state `zeros_like` the parameter; bitsandbytes' 8-bit state is 8-bit either way). With fp16 the loss is
scaled, and torch's grad scaler refuses to unscale fp16 gradients; sd-scripts patches the scaler to
allow them (`patch_accelerator_for_fp16_training`), and so does `allow_fp16_gradients` here.
"""

from __future__ import annotations

from typing import Any

import torch

DTYPES = {"full_bf16": torch.bfloat16, "full_fp16": torch.float16}


def full_precision_dtype(training: Any) -> torch.dtype | None:
    """The dtype the trained network is held in, or None for fp32 (the default)."""
    if training.full_bf16:
        return torch.bfloat16
    if training.full_fp16:
        return torch.float16
    return None


def cast_trained(parameters: list[torch.nn.Parameter], dtype: torch.dtype) -> int:
    """Store the trained parameters in `dtype`; returns how many numbers were cast."""
    count = 0
    for param in parameters:
        param.data = param.data.to(dtype)
        count += param.numel()
    return count


def allow_fp16_gradients(scaler: Any) -> bool:
    """Let a torch GradScaler unscale fp16 gradients (it refuses by default); False when there is none."""
    if scaler is None:
        return False
    original = scaler._unscale_grads_

    def unscale(optimizer, inv_scale, found_inf, allow_fp16):
        return original(optimizer, inv_scale, found_inf, True)

    scaler._unscale_grads_ = unscale
    return True
