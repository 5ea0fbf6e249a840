"""SD 3.5's numbers for the memory and file-size estimates, torch-free, from a transformer config.

The family hands this module to the estimates (`SD35Family.estimate_counts`); everything here is
plain numbers, so it needs nothing from the estimate code that calls it.

Counted the way diffusers builds `SD3Transformer2DModel` (checked against the real module on the
meta device): patch embedding, timestep and pooled-text embedders, the caption projection, then per
joint block the image half (adaLN-Zero with 6 vectors, 9 with MMDiT-X dual attention; q/k/v/out;
a 4× GELU MLP) and the text half (the same, except the last block, which only modulates its text
with 2 vectors and computes its q/k/v); QK RMS-norm weights; the output norm and projection.
"""

from __future__ import annotations

from typing import Any, Mapping

Layer = tuple[int, int, int, bool]  # (in, out, kernel side, is a convolution), as engine.vram.lora_params
Slots = dict[str, float]  # elements by dtype class: compute, norm, stat, cast (see engine.vram.activations)


def linear(fan_in: int, fan_out: int, bias: bool = True) -> int:
    return fan_in * fan_out + (fan_out if bias else 0)


def _width(config: Mapping[str, Any]) -> int:
    return int(config["num_attention_heads"]) * int(config["attention_head_dim"])


def _dual(config: Mapping[str, Any]) -> set[int]:
    return {int(i) for i in (config.get("dual_attention_layers") or ())}


def parameters(config: Mapping[str, Any]) -> int:
    d, head = _width(config), int(config["attention_head_dim"])
    patch, blocks = int(config.get("patch_size", 2)), int(config["num_layers"])
    out_channels = config.get("out_channels") or config["in_channels"]
    qk = 2 * head if config.get("qk_norm") else 0  # RMS-norm weights of q and k, per attention stream
    total = config["in_channels"] * d * patch * patch + d  # patch embedding (a strided convolution)
    total += int(config.get("pos_embed_max_size") or 0) ** 2 * d  # the positional table (a buffer, still memory)
    total += linear(256, d) + linear(d, d) + linear(config["pooled_projection_dim"], d) + linear(d, d)
    total += linear(config["joint_attention_dim"], config["caption_projection_dim"])
    mlp = linear(d, 4 * d) + linear(4 * d, d)
    for i in range(blocks):
        last, dual = i == blocks - 1, i in _dual(config)
        image = linear(d, (9 if dual else 6) * d) + 4 * linear(d, d) + qk + mlp
        if dual:
            image += 4 * linear(d, d) + qk
        text = linear(d, 2 * d) + 3 * linear(d, d) + qk if last else linear(d, 6 * d) + 4 * linear(d, d) + qk + mlp
        total += image + text
    return total + linear(d, 2 * d) + linear(d, patch * patch * out_channels)


def lora_layers(config: Mapping[str, Any]) -> list[Layer]:
    """Every Linear sd-scripts puts a LoRA on, with diffusers' q/k/v split (what training adapts)."""
    d, blocks = _width(config), int(config["num_layers"])
    mlp = [(d, 4 * d, 1, False), (4 * d, d, 1, False)]
    layers: list[Layer] = []
    for i in range(blocks):
        last, dual = i == blocks - 1, i in _dual(config)
        layers += [(d, (9 if dual else 6) * d, 1, False)] + [(d, d, 1, False)] * 4 + mlp
        if dual:
            layers += [(d, d, 1, False)] * 4
        layers += [(d, 2 * d, 1, False)] + [(d, d, 1, False)] * 3 if last else \
            [(d, 6 * d, 1, False)] + [(d, d, 1, False)] * 4 + mlp
    return layers


def file_modules(config: Mapping[str, Any], key_format: str = "kohya") -> list[tuple[int, int, int]]:
    """(in, out, fused parts) of each transformer module the file holds. sd-scripts' names fuse q/k/v
    into one module written with 3·rank rows (see lora_names.fuse); diffusers' names keep them apart."""
    if key_format == "diffusers":
        return [(fan_in, fan_out, 1) for fan_in, fan_out, _, _ in lora_layers(config)]
    d, blocks = _width(config), int(config["num_layers"])
    mlp = [(d, 4 * d, 1), (4 * d, d, 1)]
    modules: list[tuple[int, int, int]] = []
    for i in range(blocks):
        last, dual = i == blocks - 1, i in _dual(config)
        modules += [(d, (9 if dual else 6) * d, 1), (d, 3 * d, 3), (d, d, 1)] + mlp
        if dual:
            modules += [(d, 3 * d, 3), (d, d, 1)]
        modules += [(d, 2 * d, 1), (d, 3 * d, 3)] if last else [(d, 6 * d, 1), (d, 3 * d, 3), (d, d, 1)] + mlp
    return modules


def file_numbers(config: Mapping[str, Any], rank: int, values: Mapping[str, Any] | None = None) -> tuple[int, int]:
    """(numbers stored including one alpha per module, modules) of the transformer part of a file,
    in the key form `sd35.lora_format` of `values` asks for (sd-scripts' by default)."""
    key_format = str((values or {}).get("sd35.lora_format") or "kohya")
    modules = file_modules(config, key_format)
    numbers = sum(parts * rank * (fan_in + fan_out) for fan_in, fan_out, parts in modules)
    return numbers + (len(modules) if key_format == "kohya" else 0), len(modules)


def text_tokens(values: Mapping[str, Any]) -> int:
    """Tokens the transformer's text stream carries: 77 CLIP positions, then T5's (`sd35.t5xxl_max_token_length`)."""
    return 77 + int(values.get("sd35.t5xxl_max_token_length") or 256)


def image_tokens(config: Mapping[str, Any], latent_width: int, latent_height: int) -> int:
    patch = int(config.get("patch_size", 2))
    return (latent_width // patch) * (latent_height // patch)


def _slots(compute: float = 0.0, norm: float = 0.0, stat: float = 0.0, cast: float = 0.0) -> Slots:
    return {"compute": compute, "norm": norm, "stat": stat, "cast": cast}


def _add(total: Slots, more: Slots) -> Slots:
    return {key: total[key] + more[key] for key in total}


def activations(config: Mapping[str, Any], *, image_tokens: float, text_tokens: int, batch: int,
                checkpointing: bool, lora_rank: int) -> dict[str, Slots]:
    """Saved tensors per joint block, counted as for FLUX.1's double blocks (same layer kinds over the
    joint sequence: ~30·d per token), plus an MMDiT-X block's second attention over the image tokens."""
    d, heads, blocks = _width(config), int(config["num_attention_heads"]), int(config["num_layers"])
    img, txt = batch * image_tokens, batch * text_tokens
    joint = img + txt
    lora_copies = 9 * d * joint if lora_rank else 0.0
    joint_block = _slots(compute=joint * 30 * d + lora_rank * 12 * joint, norm=2 * joint * d,
                         stat=2 * heads * joint, cast=lora_copies)
    second = _slots(compute=img * 10 * d + lora_rank * 4 * img, norm=img * d, stat=heads * img,
                    cast=4 * d * img if lora_rank else 0.0)
    dual = _dual(config)
    if checkpointing:  # only each block's input stays; the largest block is rebuilt at a time
        largest = _add(joint_block, second) if dual else joint_block
        return {"kept": _slots(compute=blocks * joint * d), "recompute": largest}
    kept = _slots()
    for i in range(blocks):
        kept = _add(kept, joint_block)
        if i in dual:
            kept = _add(kept, second)
    return {"kept": kept, "recompute": _slots()}


def backward_scratch(config: Mapping[str, Any], *, image_tokens: float, text_tokens: int, batch: int,
                     compute_bytes: int, fp8: bool) -> int:
    """Gradients in flight at the widest layer (the 4·d MLP over the joint sequence)."""
    d = _width(config)
    widest = batch * (image_tokens + text_tokens) * 4 * d
    upcast = 2 * 9 * d * d if fp8 else 0  # one fp8 layer (the widest modulation) widened at a time
    return int(2 * widest * compute_bytes + upcast)
