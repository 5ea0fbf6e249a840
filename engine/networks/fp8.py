"""`training.fp8_base`: the frozen base weights of the denoiser held in float8 (e4m3), widened per call.

Every frozen `nn.Linear` of the denoiser keeps its weight as `torch.float8_e4m3fn` (1 byte a number)
and widens it to the mixed-precision dtype inside its forward, so the maths runs in bf16/fp16 while
the stored model takes about half the memory. The LoRA's own layers are trainable and stay as they
are; norms, embeddings and convolutions are small and stay in the compute dtype, and so do the
modules a family names as too precision-sensitive for fp8 (ModelFamily.fp8_keep_patterns: Z-Image's
timestep and caption embedders, as diffusers keeps them out of its layerwise casting).
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..problems import Problem, error

FP8 = getattr(torch, "float8_e4m3fn", None)
FIELD = "training.fp8_base"


def fp8_problems(mixed_precision: str, device_type: str) -> list[Problem]:
    """Why fp8 base weights cannot be used here (empty when they can)."""
    if FP8 is None:
        return [error(FIELD, f"this PyTorch ({torch.__version__}) has no float8 type",
                      "install PyTorch 2.1 or newer, or turn training.fp8_base off")]
    if mixed_precision == "auto":
        mixed_precision = "bf16" if device_type == "cuda" else "no"
    if mixed_precision not in ("bf16", "fp16"):
        where = " (auto means no mixed precision on a CPU)" if device_type != "cuda" else ""
        return [error(FIELD, f"fp8 weights are computed in bf16 or fp16, and mixed precision is off{where}",
                      "set training.mixed_precision: bf16 (or fp16), or turn training.fp8_base off")]
    return []


def _fp8_linear_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    weight = self.weight.to(self.fp8_compute_dtype)
    bias = self.bias.to(self.fp8_compute_dtype) if self.bias is not None else None
    return F.linear(x.to(self.fp8_compute_dtype), weight, bias)


def store_in_fp8(model: nn.Module, compute_dtype: torch.dtype, keep: Iterable[str] = ()) -> int:
    """Turn the frozen linear layers of `model` to fp8 storage; returns how many were turned.

    A layer whose qualified name matches one of the `keep` regular expressions (searched, as
    diffusers matches its skip patterns) stays in the compute dtype.
    """
    if FP8 is None or compute_dtype not in (torch.bfloat16, torch.float16):
        raise ValueError("fp8 storage needs torch.float8_e4m3fn and a bf16/fp16 compute dtype")
    kept = [re.compile(pattern) for pattern in keep]
    turned = 0
    for name, module in model.named_modules():
        if type(module) is not nn.Linear or module.weight.requires_grad:
            continue  # adapters (trainable) and peft's wrappers keep their weights
        if any(pattern.search(name) for pattern in kept):
            module.to(compute_dtype)
            continue
        module.weight.data = module.weight.data.to(FP8)
        module.fp8_compute_dtype = compute_dtype
        module.forward = types.MethodType(_fp8_linear_forward, module)
        turned += 1
    return turned
