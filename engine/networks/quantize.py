"""Frozen linear layers stored in fewer bits: fp8 (ours, fp8.py) or bitsandbytes' NF4 and LLM.int8.

`training.base_quantization` (the denoiser) and `training.text_encoder_quantization` (the text
encoders) both come here. Only frozen plain `nn.Linear`s are turned: a peft LoRA wraps the base layer
(`base_layer`), so turning that inner layer keeps the adapter in full precision on top of a quantized
base, which is what QLoRA does. bitsandbytes quantizes a weight when it moves from the CPU to a device,
so each layer's weight goes through the CPU once (one layer at a time: no second copy of the model).
Both kinds run on the CPU in bitsandbytes 0.50 (its torch fallbacks), so the CPU tests train with them.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..problems import Problem, error
from .fp8 import fp8_problems, store_in_fp8

BNB_KINDS = ("nf4", "int8")
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # optional-kernel notices at import


def quantization_problems(kind: str, field: str, mixed_precision: str, device_type: str) -> list[Problem]:
    """Why `kind` cannot be used here (empty when it can)."""
    if kind == "fp8":
        return [error(field, p.message, p.hint) for p in fp8_problems(mixed_precision, device_type)]
    if kind in BNB_KINDS:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            return [error(field, f"{kind} needs the bitsandbytes package", "pip install bitsandbytes")]
    return []


def _frozen_linears(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    found = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Linear and not child.weight.requires_grad:
                found.append((parent, name, child))
    return found


def _bnb_linear(layer: nn.Linear, kind: str, compute_dtype: torch.dtype, device: torch.device) -> nn.Module:
    import bitsandbytes as bnb

    weight = layer.weight.data.to("cpu")  # bitsandbytes quantizes on the move from the CPU
    bias = layer.bias
    if kind == "nf4":
        new = bnb.nn.Linear4bit(layer.in_features, layer.out_features, bias=bias is not None, device="meta",
                                compute_dtype=compute_dtype, quant_type="nf4", compress_statistics=True)
        new.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4", compress_statistics=True)
    else:
        # threshold 0: no outlier columns kept in 16 bits, so every weight is stored in 8 bits
        new = bnb.nn.Linear8bitLt(layer.in_features, layer.out_features, bias=bias is not None, device="meta",
                                  has_fp16_weights=False, threshold=0.0)
        new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    if bias is not None:
        new.bias = nn.Parameter(bias.data.to("cpu", compute_dtype), requires_grad=False)
    return new.to(device)


def quantize_frozen_linears(model: nn.Module, kind: str, compute_dtype: torch.dtype, device: torch.device,
                            fp8_keep: tuple[str, ...] = ()) -> int:
    """Store every frozen `nn.Linear` of `model` as `kind` (fp8, nf4, int8); returns how many were turned.

    `fp8_keep`: name patterns of layers fp8 leaves in the compute dtype (see fp8.store_in_fp8)."""
    if kind == "none":
        return 0
    if kind == "fp8":
        return store_in_fp8(model, compute_dtype, fp8_keep)
    if kind not in BNB_KINDS:
        raise ValueError(f"unknown quantization {kind!r}")
    layers = _frozen_linears(model)
    for parent, name, layer in layers:
        setattr(parent, name, _bnb_linear(layer, kind, compute_dtype, device))
        del layer
    return len(layers)


def stored_bytes(model: nn.Module) -> int:
    """Bytes the model's parameters and buffers take as stored (quantized weights count as packed)."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    total += sum(b.numel() * b.element_size() for b in model.buffers())
    for module in model.modules():  # bitsandbytes' scales live beside the weight, not as parameters
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        if state is not None:
            total += _quant_state_bytes(state)
        scb = getattr(getattr(module, "weight", None), "SCB", None)
        if scb is not None:
            total += scb.numel() * scb.element_size()
    return total


def _quant_state_bytes(state) -> int:
    total = state.absmax.numel() * state.absmax.element_size() + state.code.numel() * state.code.element_size()
    nested = getattr(state, "state2", None)
    if nested is not None:
        total += nested.absmax.numel() * nested.absmax.element_size() + nested.code.numel() * nested.code.element_size()
    return total
