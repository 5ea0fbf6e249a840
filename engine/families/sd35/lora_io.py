"""SD 3.5 LoRA files: the trained adapters written in sd-scripts' form (or diffusers') and read back.

The neutral structure (`{component: {module path: {suffix: tensor}}}`, as `export_network` gives
it) becomes `LoraWeights` and is named with `lora_names.to_kohya` (fused qkv, swapped last
modulation, `.alpha` per module, `lora_te1_`/`lora_te2_` for CLIP-L/G) or `lora_names.to_diffusers`.
Reading recognises both forms by their key names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from engine.lorafile.io import LoraFile, _load_safetensors, _serialize, write_atomically
from engine.problems import ProblemError, error

import engine.families.sd35.lora_names as lora_names

_FIELD = "network.weights"
COMPONENTS = ("unet", "text_encoder", "text_encoder_2")  # the transformer, CLIP-L, CLIP-G (T5 is never trained)
FORMATS = ("kohya", "diffusers")


def _as_lora_weights(modules: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, lora_names.LoraWeights]:
    out = {}
    for path, tensors in modules.items():
        if "lora_down.weight" not in tensors:
            raise ValueError(f"{path}: only plain LoRA layers can be written as an SD 3.5 LoRA file")
        out[path] = lora_names.LoraWeights(tensors["lora_down.weight"], tensors["lora_up.weight"], float(tensors["alpha"]))
    return out


def sd35_state_dict(weights: Mapping[str, Mapping[str, Mapping[str, torch.Tensor]]], *, num_blocks: int,
                    key_format: str = "kohya", dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The file's tensors for a run's adapters (alphas stay float32 scalars)."""
    unknown = sorted(set(weights) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"an SD 3.5 LoRA holds the transformer, CLIP-L and CLIP-G only, not {', '.join(unknown)}")
    loras = {component: _as_lora_weights(modules) for component, modules in weights.items()}
    if key_format == "diffusers":
        state = lora_names.to_diffusers(loras)
    elif key_format == "kohya":
        clips = {c: m for c, m in loras.items() if c != "unet"}
        state = lora_names.to_kohya(loras.get("unet", {}), clips, num_blocks=num_blocks)
    else:
        raise ValueError(f"unknown SD 3.5 key format {key_format!r}; expected one of {', '.join(FORMATS)}")
    return {key: (value.detach().cpu().to(dtype) if dtype is not None and not key.endswith(".alpha")
                  else value.detach().cpu()).contiguous().clone() for key, value in state.items()}


def save_sd35_lora(path: str | os.PathLike[str], weights: Mapping[str, Any], *, metadata: Mapping[str, str],
                   save_dtype: torch.dtype, num_blocks: int, key_format: str = "kohya",
                   fmt: str = "safetensors") -> dict[str, str]:
    """Write an SD 3.5 LoRA atomically (hashes added for safetensors); returns the metadata written."""
    state = sd35_state_dict(weights, num_blocks=num_blocks, key_format=key_format, dtype=save_dtype)
    data, written = _serialize(state, metadata, fmt)
    write_atomically(path, data)
    return written


def is_diffusers_form(keys: Any) -> bool:
    return any(str(key).endswith((".lora_A.weight", ".lora_B.weight")) for key in keys)


def read_sd35_lora(path: str | os.PathLike[str], *, num_blocks: int | None = None) -> LoraFile:
    """An SD 3.5 LoRA (sd-scripts or diffusers form) as the neutral structure by diffusers module path."""
    source = Path(path)
    if not source.is_file():
        raise ProblemError([error(_FIELD, f"{source}: LoRA file not found", "check the path")])
    if source.suffix.lower() != ".safetensors":
        raise ProblemError([error(_FIELD, f"{source}: an SD 3.5 LoRA is read from .safetensors only",
                                  "give the .safetensors file")])
    state, metadata = _load_safetensors(source)
    try:
        if is_diffusers_form(state):
            loras = lora_names.from_diffusers(state)
        else:
            transformer, clips = lora_names.from_kohya(state, num_blocks=num_blocks)
            loras = {"unet": transformer, **clips} if transformer else dict(clips)
    except (lora_names.UnknownKeyError, ValueError) as exc:
        raise ProblemError([error(_FIELD, f"{source} is not an SD 3.5 LoRA this base can continue from: {exc}",
                                  "continue from a LoRA trained on SD 3.5 (sd-scripts/ComfyUI or diffusers form)")]) from None
    weights: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    for component, modules in loras.items():
        if modules:
            weights[component] = {p: {"lora_down.weight": w.down, "lora_up.weight": w.up,
                                      "alpha": torch.tensor(float(w.alpha))} for p, w in modules.items()}
    return LoraFile(weights, metadata, "sd35")
