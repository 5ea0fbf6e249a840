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

from engine.models import families

Layer = tuple[int, int, int]  # (in features, out features, kernel size)

# The reference models' layer configs live with each family (engine.models.families).
REFERENCE_CONFIGS: dict[str, Mapping[str, Any]] = {name: f.reference_configs for name, f in families.REGISTRY.items()}
_BYTES_PER_NUMBER = {"float": 4, "fp16": 2, "bf16": 2}


def _transformer(width: int, depth: int, cross: int) -> list[Layer]:
    layers = [(width, width, 1), (width, width, 1)]  # proj_in, proj_out
    for _ in range(depth):
        layers += [(width, width, 1)] * 4  # self-attention q, k, v, out
        layers += [(width, width, 1), (cross, width, 1), (cross, width, 1), (width, width, 1)]  # cross-attention
        layers += [(width, width * 8, 1), (width * 4, width, 1)]  # GEGLU feed-forward
    return layers


def _resnet(channels_in: int, channels_out: int, time_embedding: int) -> list[Layer]:
    layers = [(channels_in, channels_out, 3), (time_embedding, channels_out, 1), (channels_out, channels_out, 3)]
    if channels_in != channels_out:
        layers.append((channels_in, channels_out, 1))
    return layers


def unet_layers(config: Mapping[str, Any]) -> tuple[list[Layer], list[Layer]]:
    """(transformer layers, ResNet/sampler layers) of a UNet2DConditionModel config."""
    channels = list(config["block_out_channels"])
    per_block = config.get("layers_per_block", 2)
    depth = config.get("transformer_layers_per_block", 1)
    depths = [depth] * len(channels) if isinstance(depth, int) else list(depth)
    cross = config.get("cross_attention_dim", 768)
    cross = cross[0] if isinstance(cross, (list, tuple)) else cross
    time_embedding = channels[0] * 4
    attention: list[Layer] = []
    convs: list[Layer] = []

    out_ch = channels[0]
    for i, kind in enumerate(config["down_block_types"]):
        in_ch, out_ch = out_ch, channels[i]
        for j in range(per_block):
            convs += _resnet(in_ch if j == 0 else out_ch, out_ch, time_embedding)
            if "CrossAttn" in kind:
                attention += _transformer(out_ch, depths[i], cross)
        if i < len(channels) - 1:
            convs.append((out_ch, out_ch, 3))  # downsampler

    convs += _resnet(channels[-1], channels[-1], time_embedding) * 2
    attention += _transformer(channels[-1], depths[-1], cross)

    reversed_channels, reversed_depths = channels[::-1], depths[::-1]
    out_ch = reversed_channels[0]
    for i, kind in enumerate(config["up_block_types"]):
        prev_ch, out_ch = out_ch, reversed_channels[i]
        in_ch = reversed_channels[min(i + 1, len(channels) - 1)]
        for j in range(per_block + 1):
            skip = in_ch if j == per_block else out_ch
            convs += _resnet((prev_ch if j == 0 else out_ch) + skip, out_ch, time_embedding)
            if "CrossAttn" in kind:
                attention += _transformer(out_ch, reversed_depths[i], cross)
        if i < len(channels) - 1:
            convs.append((out_ch, out_ch, 3))  # upsampler
    return attention, convs


def text_encoder_layers(config: Mapping[str, Any]) -> list[Layer]:
    width, mlp = config["hidden_size"], config["intermediate_size"]
    per_layer = [(width, width, 1)] * 4 + [(width, mlp, 1), (mlp, width, 1)]
    return per_layer * config["num_hidden_layers"]


def _numbers(layer: Layer, rank: int, network_type: str) -> int:
    fan_in, fan_out, kernel = layer
    down = fan_in * kernel * kernel
    if network_type == "loha":
        return 2 * rank * (down + fan_out)
    if network_type == "lokr":
        a = _factor(fan_out)
        c = _factor(fan_in)
        b, d = fan_out // a, down // c
        return a * c + min(b * d, rank * (b + d))
    return rank * (down + fan_out)


def _factor(n: int) -> int:
    """The largest divisor of n not above √n (lokr's split of a dimension)."""
    for candidate in range(math.isqrt(n), 0, -1):
        if n % candidate == 0:
            return candidate
    return 1


def count_parameters(unet: Mapping[str, Any], text_encoders: list[Mapping[str, Any]], *, rank: int,
                     conv_rank: int, network_type: str, train_text_encoder: bool) -> tuple[int, int]:
    """(numbers stored, number of adapted layers) for a LoRA of this model."""
    attention, convs = unet_layers(unet)
    layers = [(layer, rank) for layer in attention]
    if network_type != "lora":
        layers += [(layer, conv_rank if layer[2] == 3 else rank) for layer in convs]
    if train_text_encoder:
        layers += [(layer, rank) for config in text_encoders for layer in text_encoder_layers(config)]
    total = sum(_numbers(layer, r, network_type) for layer, r in layers)
    return total + len(layers), len(layers)  # + one alpha per layer


def model_configs(values: Mapping[str, Any]) -> tuple[dict, list[dict], str] | None:
    """The UNet and text-encoder configs to count from, and where they came from; None if unknown."""
    path = str(values.get("model.path") or "")
    folder = _diffusers_folder(path)
    if folder is not None:
        unet = _read_json(folder / "unet" / "config.json")
        encoders = [c for name in ("text_encoder", "text_encoder_2")
                    if (c := _read_json(folder / name / "config.json")) is not None]
        if unet and encoders:
            return unet, encoders, f"the configs in {folder}"
    if path.startswith("builtin-tiny"):
        return None  # shapes known only once it is built on first use
    family = families.of_values(values)
    reference = family.reference_configs
    return reference["unet"], reference["text_encoders"], f"the reference {family.naming.upper()} layout"


def _diffusers_folder(path: str) -> Path | None:
    if path.startswith("builtin-tiny"):
        from engine.models.tiny import builtin_model_dir

        folder = builtin_model_dir(path)
    else:
        folder = Path(path).expanduser()
    return folder if (folder / "unet" / "config.json").is_file() else None


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
    te_lr = values["optimizer.text_encoder_lr"]
    try:
        numbers, layers = count_parameters(
            unet, encoders, rank=rank, conv_rank=conv_rank, network_type=values["network.type"],
            train_text_encoder=te_lr != 0,
        )
    except (KeyError, TypeError, ValueError, IndexError):
        return None, f"could not read the layer shapes from {source}"
    size = numbers * _BYTES_PER_NUMBER[values["training.save_precision"]] + layers * 3 * 120 + 16_000
    return size, f"{numbers:,} numbers in {layers} layers, from {source}"
