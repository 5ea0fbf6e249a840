"""How many numbers the trained network holds, counted the way engine.networks.inject adapts layers.

The adapted layers follow the injection rules: every Linear/Conv2d inside the UNet's transformer
blocks and each CLIP layer's attention and MLP; locon/loha/lokr add the ResNet blocks and the
samplers' convolutions (wide ones only when conv_rank > 0). Per layer the count is what peft
allocates: LoRA A (r × in·k²) and B (out × r); LoHa two such pairs; LoKr the Kronecker pair with
peft's factorisation. For Flux, every Linear of the double and single stream blocks (diffusers
module names: q/k/v split, the adaLN modulation included), as the sd-scripts Flux network trains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .counts import cross_dim, unet_walk

Layer = tuple[int, int, int, bool]  # (in features/channels, out, kernel side, is a convolution)
Shape = tuple[int, ...]


def transformer_layers(width: int, depth: int, cross: int, conv_projection: bool) -> list[Layer]:
    layers = [(width, width, 1, conv_projection)] * 2  # proj_in, proj_out (1x1 conv or linear)
    for _ in range(depth):
        layers += [(width, width, 1, False)] * 4  # self-attention q, k, v, out
        layers += [(width, width, 1, False), (cross, width, 1, False), (cross, width, 1, False), (width, width, 1, False)]
        layers += [(width, 8 * width, 1, False), (4 * width, width, 1, False)]  # GEGLU feed-forward
    return layers


def unet_layers(config: Mapping[str, Any], with_resnets: bool) -> list[Layer]:
    time_embedding = config["block_out_channels"][0] * 4
    layers: list[Layer] = []
    for part in unet_walk(config):
        if part[0] == "transformer":
            layers += transformer_layers(part[1], part[2], cross_dim(config),
                                         not config.get("use_linear_projection", False))
        elif not with_resnets:
            continue
        elif part[0] == "resnet":
            c_in, c_out = part[1], part[2]
            layers += [(c_in, c_out, 3, True), (time_embedding, c_out, 1, False), (c_out, c_out, 3, True)]
            if c_in != c_out:
                layers.append((c_in, c_out, 1, True))
        else:
            layers.append((part[1], part[1], 3, True))  # down/up-sampler convolution
    return layers


def flux_layers(config: Mapping[str, Any], train_blocks: str = "all") -> list[Layer]:
    """Every adapted linear of the trained blocks (`flux.train_blocks`: all, double or single)."""
    d = config["num_attention_heads"] * config["attention_head_dim"]
    feed_forward = [(d, 4 * d, 1, False), (4 * d, d, 1, False)]
    double = [(d, 6 * d, 1, False)] * 2 + [(d, d, 1, False)] * 8 + feed_forward * 2
    single = [(d, 3 * d, 1, False)] + [(d, d, 1, False)] * 3 + [(d, 4 * d, 1, False), (5 * d, d, 1, False)]
    doubles = config["num_layers"] if train_blocks in ("all", "double") else 0
    singles = config["num_single_layers"] if train_blocks in ("all", "single") else 0
    return double * doubles + single * singles


def clip_layers(config: Mapping[str, Any]) -> list[Layer]:
    width, mlp = config["hidden_size"], config["intermediate_size"]
    return ([(width, width, 1, False)] * 4 + [(width, mlp, 1, False), (mlp, width, 1, False)]) * config["num_hidden_layers"]


def denoiser_layers(config: Mapping[str, Any], network_type: str, train_blocks: str = "all") -> list[Layer]:
    if config.get("_class_name") == "FluxTransformer2DModel":
        return flux_layers(config, train_blocks)
    return unet_layers(config, with_resnets=network_type not in ("lora", "dylora"))


@dataclass(frozen=True)
class LokrSplit:
    """The LoKr options that change its shapes (network.lokr_factor, _decompose_both, _full_matrix)."""

    factor: int = -1
    decompose_both: bool = False
    full_matrix: bool = False


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """LyCORIS' / peft's LoKr split of a dimension: the divisor pair nearest √n, the smaller at most
    `factor` (-1: no bound); a factor that divides the dimension is taken as it is."""
    if factor > 0 and dimension % factor == 0:
        m, n = factor, dimension // factor
        return (n, m) if m > n else (m, n)
    bound = dimension if factor < 0 else factor
    m, n = 1, dimension
    while m < n:
        new_m = m + 1
        while dimension % new_m != 0:
            new_m += 1
        new_n = dimension // new_m
        if new_m + new_n > m + n or new_m > bound:
            break
        m, n = new_m, new_n
    return (n, m) if m > n else (m, n)


def layer_shapes(layer: Layer, rank: int, network_type: str,
                 lokr: LokrSplit = LokrSplit()) -> list[tuple[Shape, bool]]:
    """(shape, starts at zero) of each parameter peft creates for one adapted layer."""
    shapes = _shapes(layer, rank, network_type, lokr)
    # the factor that starts at zero, so a new network changes nothing: LoRA's B (up), LoHa's
    # w2_a (engine's LyCORIS-style init), LoKr's second factor (w2, or w2_b)
    zero = {"lora": 1, "locon": 1, "dylora": 1, "loha": 2}.get(network_type, len(shapes) - 1)
    return [(shape, index == zero) for index, shape in enumerate(shapes)]


def _shapes(layer: Layer, rank: int, network_type: str, lokr: LokrSplit = LokrSplit()) -> list[Shape]:
    fan_in, fan_out, kernel, is_conv = layer
    area = kernel * kernel
    if network_type in ("lora", "locon", "dylora"):
        if is_conv:
            return [(rank, fan_in, kernel, kernel), (fan_out, rank, 1, 1)]
        return [(rank, fan_in), (fan_out, rank)]
    if network_type == "loha":
        return [(fan_out, rank), (rank, fan_in * area)] * 2
    out_l, out_k = factorization(fan_out, lokr.factor)
    in_m, in_n = factorization(fan_in, lokr.factor)
    if lokr.decompose_both and not lokr.full_matrix and rank < max(out_l, in_m) / 2:
        shapes: list[Shape] = [(out_l, rank), (rank, in_m)]
    else:
        shapes = [(out_l, in_m)]
    if lokr.full_matrix or rank >= max(out_k, in_n) / 2:
        shapes.append((out_k, in_n, kernel, kernel) if is_conv else (out_k, in_n))
    else:
        shapes += [(out_k, rank), (rank, in_n * area)]
    return shapes


def network_shapes(layers: list[Layer], *, rank: int, conv_rank: int, network_type: str,
                   lokr: LokrSplit = LokrSplit(), dylora_unit: int = 1) -> list[tuple[Shape, bool]]:
    shapes: list[tuple[Shape, bool]] = []
    for layer in layers:
        wide = layer[2] > 1
        if wide and conv_rank <= 0:
            continue  # conv_rank 0 leaves wide convolutions out, as the engine does
        layer_params = layer_shapes(layer, conv_rank if wide else rank, network_type, lokr)
        if network_type == "dylora":  # one tensor per unit of ranks (engine.networks.dylora)
            down, up = layer_params
            parts = down[0][0] // dylora_unit
            layer_params = ([((dylora_unit, *down[0][1:]), down[1])] * parts
                            + [((up[0][0], dylora_unit, *up[0][2:]), up[1])] * parts)
        shapes += layer_params
    return shapes


def text_encoder_layers(config: Mapping[str, Any]) -> list[Layer]:
    if "hidden_size" not in config:
        return []  # T5 is never trained (its LoRA keys are dropped by the loaders)
    return clip_layers(config)
