"""Z-Image LoRA files: the trained adapters in the form ComfyUI and diffusers load, and read back.

The form is ai-toolkit's: each trained module under its diffusers name with a `diffusion_model.`
prefix, `lora_A.weight` (down, rank × in) and `lora_B.weight` (up, out × rank), plus an `.alpha`
scalar per module (scale = alpha / rank) so files with alpha ≠ rank mean the same everywhere.
ComfyUI maps these names through `z_image_to_diffusers` onto its fused-qkv model (q, k and v are
row slices of `attention.qkv`); diffusers' `ZImageLoraLoaderMixin` strips the prefix and folds the
alpha into the weights.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from engine.lorafile.io import LoraFile, _load_safetensors, _serialize, write_atomically
from engine.problems import ProblemError, error

import engine.families.zimage.reference as ref

_FIELD = "network.weights"
BLOCK_LISTS = ("layers", "noise_refiner", "context_refiner")
# The linears of one block a LoRA trains: attention projections and the SwiGLU feed-forward.
BLOCK_TARGETS = ("attention.to_q", "attention.to_k", "attention.to_v", "attention.to_out.0",
                 "feed_forward.w1", "feed_forward.w2", "feed_forward.w3")
_READ_PREFIXES = (ref.LORA_PREFIX, "transformer.", "base_model.model.")
_SUFFIXES = {"lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight",
             "lora_down.weight": "lora_down.weight", "lora_up.weight": "lora_up.weight", "alpha": "alpha"}
_KEY = re.compile(r"^(.*)\.(lora_A\.weight|lora_B\.weight|lora_down\.weight|lora_up\.weight|alpha)$")


def default_targets(denoiser: Any) -> list[str]:
    """Every attention and feed-forward linear of every main layer and refiner block."""
    return [f"{blocks}.{index}.{part}" for blocks in BLOCK_LISTS
            for index in range(len(getattr(denoiser, blocks, None) or ())) for part in BLOCK_TARGETS]


def zimage_state_dict(weights: Mapping[str, Mapping[str, Mapping[str, torch.Tensor]]],
                      dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The file's state dict from the neutral structure (alphas stay float32 scalars)."""
    unknown = sorted(set(weights) - {"unet"})
    if unknown:
        raise ValueError(f"a Z-Image LoRA holds the transformer only (Qwen3 stays frozen), not {', '.join(unknown)}")
    state: dict[str, torch.Tensor] = {}
    for path, tensors in weights.get("unet", {}).items():
        if "lora_down.weight" not in tensors or "lora_up.weight" not in tensors:
            raise ValueError(f"{path}: only plain LoRA layers can be written as a Z-Image LoRA")
        down, up = tensors["lora_down.weight"], tensors["lora_up.weight"]
        alpha = tensors.get("alpha", torch.tensor(float(down.shape[0])))
        for name, value in (("lora_A.weight", down), ("lora_B.weight", up)):
            value = value.detach().cpu()
            state[f"{ref.LORA_PREFIX}{path}.{name}"] = (value.to(dtype) if dtype is not None else value).contiguous().clone()
        state[f"{ref.LORA_PREFIX}{path}.alpha"] = torch.tensor(float(alpha), dtype=torch.float32)
    return state


def save_zimage_lora(path: str | os.PathLike[str], weights: Mapping[str, Any], *, metadata: Mapping[str, str],
                     save_dtype: torch.dtype, fmt: str = "safetensors") -> dict[str, str]:
    """Write a Z-Image LoRA atomically (hashes added for safetensors); returns the metadata written."""
    data, written = _serialize(zimage_state_dict(weights, save_dtype), metadata, fmt)
    write_atomically(path, data)
    return written


def weights_from_state(state: Mapping[str, torch.Tensor], known: set[str] | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """The neutral structure from a file's state dict; ValueError names a key that is no Z-Image LoRA
    key or a module `known` (the base's module paths) does not hold."""
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        match = _KEY.match(key)
        prefix = next((p for p in _READ_PREFIXES if key.startswith(p)), None)
        if match is None or prefix is None:
            raise ValueError(f"'{key}' is not a Z-Image LoRA key (expected diffusion_model.<module>.lora_A/B.weight)")
        path = match.group(1)[len(prefix):]
        if known is not None and path not in known:
            raise ValueError(f"'{key}' names {path}, which this Z-Image transformer does not have")
        modules.setdefault(path, {})[_SUFFIXES[match.group(2)]] = value
    for path, tensors in modules.items():
        if "lora_down.weight" not in tensors or "lora_up.weight" not in tensors:
            raise ValueError(f"{path}: the file holds only one of its two LoRA matrices")
        tensors.setdefault("alpha", torch.tensor(float(tensors["lora_down.weight"].shape[0])))
    return modules


def read_zimage_lora(path: str | os.PathLike[str], known: set[str] | None = None) -> LoraFile:
    """A Z-Image LoRA (ai-toolkit / ComfyUI form, or diffusers' `transformer.` form) as the neutral structure."""
    source = Path(path)
    if not source.is_file():
        raise ProblemError([error(_FIELD, f"{source}: LoRA file not found", "check the path")])
    if source.suffix.lower() != ".safetensors":
        raise ProblemError([error(_FIELD, f"{source}: a Z-Image LoRA is read from .safetensors only",
                                  "give the .safetensors file")])
    state, metadata = _load_safetensors(source)
    try:
        modules = weights_from_state(state, known)
    except ValueError as exc:
        raise ProblemError([error(_FIELD, f"{source} is not a Z-Image LoRA this base can continue from: {exc}",
                                  "continue from a LoRA trained on Z-Image")]) from None
    return LoraFile({"unet": modules} if modules else {}, metadata, "zimage")
