"""Estimated size of the LoRA file, counted from the base model's layer shapes (no torch).

The layers a LoRA adapts are listed from the model's diffusers configs (the UNet's block types,
channels, layers per block and transformer depth; each text encoder's width, MLP width and depth),
walking the UNet the way diffusers builds it. For the well-known families the configs of the
reference models are built in; for a diffusers folder (the built-in tiny models included) its own
config files are read. Which layers are adapted follows the Kohya scripts:

- every network type adapts the UNet's transformer blocks (proj_in/out, attention q/k/v/out,
  feed-forward) and each text encoder layer's q/k/v/out and MLP (when the text encoder trains);
- locon/loha/lokr also adapt the ResNet blocks (3×3 convs at the conv rank, the time-embedding
  projection and 1×1 shortcuts at the rank) and the down/up-sampler convs.

Per layer (in, out, kernel k) at rank r: lora/locon store r·(in·k² + out) numbers, loha twice that,
lokr a Kronecker pair with the larger factor kept low-rank. Plus one alpha per layer and the
safetensors header. Checked against published SD 1.5 (rank 32 ≈ 38 MB) and SDXL (rank 32 ≈ 228 MB)
LoRA sizes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine import families
from engine.config.text_encoder import text_encoder_trained
from engine.vram.parts import family_of

# The reference models' layer configs live with each family (engine.families).
REFERENCE_CONFIGS: dict[str, Mapping[str, Any]] = {name: f.reference_configs for name, f in families.REGISTRY.items()}
_BYTES_PER_NUMBER = {"float": 4, "fp16": 2, "bf16": 2}


def flux_file_modules(config: Mapping[str, Any]) -> list[tuple[int, int, int]]:
    """(in, out, fused parts) of each module a Kohya Flux file holds: q/k/v (and a single block's
    MLP input) are one fused module, written with n·rank rows (see engine/lorafile/flux_names.py)."""
    d = config["num_attention_heads"] * config["attention_head_dim"]
    mlp = int(config.get("mlp_ratio", 4.0) * d)
    stream = [(d, 3 * d, 3), (d, d, 1), (d, mlp, 1), (mlp, d, 1), (d, 6 * d, 1)]  # qkv, proj, mlp 0/2, mod
    single = [(d, 3 * d + mlp, 4), (d + mlp, d, 1), (d, 3 * d, 1)]  # linear1, linear2, modulation
    return stream * 2 * config["num_layers"] + single * config["num_single_layers"]


def count_parameters(unet: Mapping[str, Any], text_encoders: list[Mapping[str, Any]], *, rank: int,
                     conv_rank: int, network_type: str, train_text_encoder: bool, counts: Any = None,
                     values: Mapping[str, Any] | None = None) -> tuple[int, int]:
    """(numbers stored, number of adapted layers) for a LoRA of this model. The layer walk and the
    tensor shapes are the VRAM estimate's, which tests hold exact against the tensors training makes.
    `counts`: the family's own denoiser counting (`ModelFamily.estimate_counts`), given the run's `values`."""
    from engine.vram.lora_params import denoiser_layers, network_shapes, text_encoder_layers

    own = counts is not None
    if own or unet.get("_class_name") == "FluxTransformer2DModel":
        if own:  # its file's denoiser part, alphas included
            numbers, count = counts.file_numbers(unet, rank, values or {})
            numbers -= count  # the alphas are added back below, with the text encoders'
        else:  # fused modules: n·r × in down and Σout × n·r up, one alpha each
            modules = flux_file_modules(unet)
            numbers, count = sum(n * rank * (fan_in + fan_out) for fan_in, fan_out, n in modules), len(modules)
        if train_text_encoder:
            layers = [layer for config in text_encoders for layer in text_encoder_layers(config)]
            shapes = network_shapes(layers, rank=rank, conv_rank=0, network_type="lora")
            numbers, count = numbers + sum(math.prod(shape) for shape, _ in shapes), count + len(layers)
        return numbers + count, count
    layers = denoiser_layers(unet, network_type)
    if train_text_encoder:
        layers += [layer for config in text_encoders for layer in text_encoder_layers(config)]
    adapted = [layer for layer in layers if layer[2] == 1 or conv_rank > 0]  # conv_rank 0 skips wide convs
    shapes = network_shapes(adapted, rank=rank, conv_rank=conv_rank, network_type=network_type)
    return sum(math.prod(shape) for shape, _ in shapes) + len(adapted), len(adapted)  # + one alpha per layer


def model_configs(values: Mapping[str, Any]) -> tuple[dict, list[dict], str] | None:
    """The UNet and text-encoder configs to count from, and where they came from; None if unknown."""
    path = str(values.get("model.path") or "")
    folder = _diffusers_folder(path)
    if folder is not None:
        unet = _read_json(folder / "unet" / "config.json") or _read_json(folder / "transformer" / "config.json")
        encoders = [c for name in ("text_encoder", "text_encoder_2")
                    if (c := _read_json(folder / name / "config.json")) is not None]
        if unet and encoders:
            return unet, _trainable(unet, encoders), f"the configs in {folder}"
    if path.startswith("builtin-tiny"):
        return None  # shapes known only once it is built on first use
    family = families.of_values(values)
    if family.estimate_counts() is not None:  # the family's own reference model for this path (its size varies)
        data = family.vram_reference(path)
        return data["denoiser"], _adaptable(family, data["text_encoders"]), \
            f"the built-in {data['source']} configs"
    reference = family.reference_configs
    # a transformer reference (FLUX.1) is named by its class, as its saved config would be
    unet = reference.get("unet") or {"_class_name": "FluxTransformer2DModel", **reference["transformer"]}
    encoders = _adaptable(family, reference["text_encoders"])
    return unet, encoders, f"the reference {family.naming.upper()} layout"


def _adaptable(family: Any, encoders: Any) -> list[dict]:
    """The encoders a LoRA of this family may adapt (its first `trainable_text_encoders`; None: all; 0: none)."""
    count = family.trainable_text_encoders
    return list(encoders) if count is None else list(encoders)[:count]


def _trainable(denoiser: dict, encoders: list[dict]) -> list[dict]:
    """The text encoders a LoRA can train: FLUX.1's CLIP-L only (its T5 stays frozen)."""
    return encoders[:1] if denoiser.get("_class_name") == "FluxTransformer2DModel" else encoders


def _diffusers_folder(path: str) -> Path | None:
    if path.startswith("builtin-tiny"):
        from engine.models.tiny import builtin_model_dir

        folder = builtin_model_dir(path)
    else:
        folder = Path(path).expanduser()
    denoisers = (folder / "unet" / "config.json", folder / "transformer" / "config.json")
    return folder if any(config.is_file() for config in denoisers) else None


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def estimate_file_size(values: Mapping[str, Any]) -> tuple[int | None, str]:
    """(bytes, how it was estimated) for typed run values; None when the model's shapes are unknown."""
    configs = model_configs(values)
    if configs is None:
        return None, "known once the built-in model has been built (first training run)"
    unet, encoders, source = configs
    rank, conv_rank = values["network.rank"], values["network.conv_rank"]
    counts = families.get(family_of(values)).estimate_counts()
    try:
        numbers, layers = count_parameters(
            unet, encoders, rank=rank, conv_rank=conv_rank, network_type=values["network.type"],
            train_text_encoder=text_encoder_trained(values), counts=counts, values=values,
        )
    except (KeyError, TypeError, ValueError, IndexError):
        return None, f"could not read the layer shapes from {source}"
    size = numbers * _BYTES_PER_NUMBER[values["training.save_precision"]] + layers * 3 * 120 + 16_000
    return size, f"{numbers:,} numbers in {layers} layers, from {source}"
