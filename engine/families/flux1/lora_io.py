"""FLUX.1 LoRA files: the trained adapters written in Kohya/ComfyUI form and read back.

The neutral structure (`{component: {module path: {suffix: tensor}}}`, as `export_network` gives
it) is turned into `LoraWeights` and named with `flux_names.to_kohya` (fused q/k/v, `.alpha` per
module, `lora_te1_` for CLIP-L); reading goes through `flux_names.from_kohya`, which splits the
fused layers back into diffusers' separate ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from engine.problems import ProblemError, error
import engine.families.flux1.lora_names as flux_names
from engine.lorafile.io import LoraFile, _load_safetensors, _serialize, write_atomically

_FIELD = "network.weights"
_COMPONENTS = {"unet": 0, "text_encoder": 1}  # the transformer, CLIP-L (T5 is never trained)


def _as_lora_weights(modules: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, flux_names.LoraWeights]:
    out = {}
    for path, tensors in modules.items():
        if "lora_down.weight" not in tensors:
            raise ValueError(f"{path}: only plain LoRA layers can be written as a FLUX.1 Kohya file")
        out[path] = flux_names.LoraWeights(tensors["lora_down.weight"], tensors["lora_up.weight"],
                                           float(tensors["alpha"]))
    return out


def flux_state_dict(weights: Mapping[str, Mapping[str, Mapping[str, torch.Tensor]]],
                    dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The Kohya-form state dict of a Flux run's adapters (alphas stay float32 scalars)."""
    unknown = sorted(set(weights) - set(_COMPONENTS))
    if unknown:
        raise ValueError(f"a FLUX.1 LoRA holds the transformer and CLIP-L only, not {', '.join(unknown)}")
    transformer = _as_lora_weights(weights.get("unet", {}))
    clip = _as_lora_weights(weights["text_encoder"]) if "text_encoder" in weights else None
    state = flux_names.to_kohya(transformer, clip)
    return {key: (value.detach().cpu().to(dtype) if dtype is not None and not key.endswith(".alpha")
                  else value.detach().cpu()).contiguous().clone() for key, value in state.items()}


def save_flux_lora(path: str | os.PathLike[str], weights: Mapping[str, Any], *, metadata: Mapping[str, str],
                   save_dtype: torch.dtype, fmt: str = "safetensors") -> dict[str, str]:
    """Write a FLUX.1 LoRA atomically (hashes added for safetensors); returns the metadata written."""
    state = flux_state_dict(weights, save_dtype)
    data, written = _serialize(state, metadata, fmt)
    write_atomically(path, data)
    return written


def read_flux_lora(path: str | os.PathLike[str]) -> LoraFile:
    """A Kohya-form FLUX.1 LoRA as the neutral structure by diffusers module path."""
    source = Path(path)
    if not source.is_file():
        raise ProblemError([error(_FIELD, f"{source}: LoRA file not found", "check the path")])
    if source.suffix.lower() != ".safetensors":
        raise ProblemError([error(_FIELD, f"{source}: a FLUX.1 LoRA is read from .safetensors only",
                                  "give the .safetensors file")])
    state, metadata = _load_safetensors(source)
    try:
        transformer, clip = flux_names.from_kohya(state)
    except (flux_names.UnknownKeyError, ValueError) as exc:
        raise ProblemError([error(_FIELD, f"{source} is not a FLUX.1 LoRA this base can continue from: {exc}",
                                  "continue from a LoRA trained on FLUX.1 (Kohya/ComfyUI form)")]) from None
    weights: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    for component, loras in (("unet", transformer), ("text_encoder", clip)):
        if loras:
            weights[component] = {p: {"lora_down.weight": w.down, "lora_up.weight": w.up,
                                      "alpha": torch.tensor(float(w.alpha))} for p, w in loras.items()}
    return LoraFile(weights, metadata, "flux1")
