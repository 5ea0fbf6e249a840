"""Z-Image's parts counted from their configs, torch-free: parameters, LoRA layers and activations.

Each count walks the module tree diffusers' `ZImageTransformer2DModel` and transformers' `Qwen3Model`
build from a config (the tests compare them with `numel()` of the tiny model and of the real-size
configs built on the meta device). The activation model follows the rules of `engine/vram/activations.py`
(per token and block, what autograd keeps for the backward pass) and returns plain element counts,
which the VRAM estimate turns into bytes. `ModelFamily.memory_walk` hands this module to the estimates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Config = Mapping[str, Any]
Slots = dict[str, float]  # element counts by dtype class: compute, norm (fp32 under autocast), stat, cast
ADALN_WIDTH = 256  # diffusers' ADALN_EMBED_DIM: the timestep embedding is min(dim, 256) wide
T_EMBED_HIDDEN = 1024  # the timestep MLP's hidden width (fixed in diffusers)
TYPICAL_CAPTION_TOKENS = 150  # a long natural-language caption in Qwen3 tokens, chat framing included


def _linear(fan_in: int, fan_out: int, bias: bool = True) -> int:
    return fan_in * fan_out + (fan_out if bias else 0)


def feed_forward_width(dim: int) -> int:
    return int(dim / 3 * 8)  # diffusers' FeedForward(hidden_dim=int(dim / 3 * 8))


def block_parameters(config: Config, modulation: bool) -> int:
    d, heads = config["dim"], config["n_heads"]
    hidden = feed_forward_width(d)
    total = 4 * d * d  # to_q, to_k, to_v, to_out.0 (no biases)
    total += 2 * (d // heads) if config.get("qk_norm", True) else 0  # RMS norms of q and k
    total += 3 * d * hidden + 4 * d  # SwiGLU w1/w2/w3 and four RMS norms
    if modulation:
        total += _linear(min(d, ADALN_WIDTH), 4 * d)
    return total


def transformer_parameters(config: Config) -> int:
    d, channels = config["dim"], config.get("in_channels", 16)
    refiners, adaln = config.get("n_refiner_layers", 2), min(d, ADALN_WIDTH)
    total = 0
    for patch, frames in zip(config.get("all_patch_size", [2]), config.get("all_f_patch_size", [1])):
        patch_values = frames * patch * patch * channels
        total += _linear(patch_values, d) + _linear(d, patch_values) + _linear(adaln, d)  # x embedder, final layer
    total += refiners * (block_parameters(config, True) + block_parameters(config, False))  # noise, context refiners
    total += config["n_layers"] * block_parameters(config, True)
    total += _linear(256, T_EMBED_HIDDEN) + _linear(T_EMBED_HIDDEN, adaln)  # timestep MLP
    total += config["cap_feat_dim"] + _linear(config["cap_feat_dim"], d)  # caption RMS norm + projection
    return total + 2 * d  # x and caption pad tokens


def qwen3_parameters(config: Config) -> int:
    width, mlp = config["hidden_size"], config["intermediate_size"]
    head = config.get("head_dim") or width // config["num_attention_heads"]
    q, kv = config["num_attention_heads"] * head, config["num_key_value_heads"] * head
    layer = width * q + 2 * width * kv + q * width + 2 * head + 3 * width * mlp + 2 * width
    total = config["vocab_size"] * width + config["num_hidden_layers"] * layer + width
    if config.get("_class_name") == "Qwen3ForCausalLM" and not config.get("tie_word_embeddings", True):
        total += config["vocab_size"] * width  # an untied output head
    return total


def lora_layers(config: Config) -> list[tuple[int, int, int, bool]]:
    """(in, out, kernel, conv) of every trained linear: attention q/k/v/out and the feed-forward's three,
    in every main layer and refiner block (`lora_io.BLOCK_TARGETS`)."""
    d = config["dim"]
    hidden = feed_forward_width(d)
    block = [(d, d, 1, False)] * 4 + [(d, hidden, 1, False), (hidden, d, 1, False), (d, hidden, 1, False)]
    return block * (config["n_layers"] + 2 * config.get("n_refiner_layers", 2))


def image_tokens(width: int, height: int, vae_scale: int) -> int:
    return (width // vae_scale // 2) * (height // vae_scale // 2)  # 2×2 patches of the latent


def padded(tokens: float) -> float:
    """diffusers pads the image and the caption sequence each to a multiple of 32 tokens."""
    return -(-tokens // 32) * 32


def _add(total: Slots, part: Slots, times: float = 1.0) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0.0) + value * times


def activations(config: Config, *, image_tokens: float, text_tokens: int, batch: int, checkpointing: bool,
                lora_rank: int) -> tuple[Slots, Slots]:
    """(kept, recompute) element counts of one forward pass: the refiners over the image and the caption
    tokens, then the main layers over both, then the final layer. Per block and token autograd keeps
    about 22·d numbers with LoRA on its seven linears (measured on the tiny model with saved-tensor
    hooks, linear in tokens): the four RMS-norm inputs (fp32 under autocast), q/k/v, the rotated q/k
    in complex form, the attention output and its log-sum-exp, the gates and residual sums, the
    SwiGLU's hidden-wide products, and each LoRA layer its down output (rank); under autocast every
    LoRA layer also keeps a copy of its input (q/k/v/out and w1/w3: d each, w2: the hidden width).
    With checkpointing only each block's input stays, and one block is rebuilt at a time."""
    d, heads = config["dim"], config["n_heads"]
    hidden = feed_forward_width(d)
    refiners = config.get("n_refiner_layers", 2)

    def block(tokens: float) -> Slots:
        return {"compute": tokens * 18.3 * d + lora_rank * 7 * tokens, "norm": 4 * tokens * d,
                "stat": 2 * heads * tokens, "cast": tokens * (6 * d + hidden) if lora_rank else 0.0}

    img, txt = batch * padded(image_tokens), batch * padded(text_tokens)
    units = [(img, refiners), (txt, refiners), (img + txt, config["n_layers"])]
    kept: Slots = {"compute": 2 * (img + txt) * d}  # the final layer's norm and linear inputs
    if checkpointing:
        _add(kept, {"compute": sum(tokens * count for tokens, count in units) * d})
        return kept, block(img + txt)
    for tokens, count in units:
        _add(kept, block(tokens), count)
    return kept, {}


def text_tokens(values: Mapping[str, Any]) -> int:
    """Caption tokens the transformer sees: a typical caption's, not the padding (which is dropped);
    at most `zimage.max_sequence_length`."""
    return min(int(values.get("zimage.max_sequence_length") or 512), TYPICAL_CAPTION_TOKENS)


def denoiser_parameters(config: Config) -> int:
    return transformer_parameters(config)


def text_encoder_parameters(config: Config) -> int:
    return qwen3_parameters(config)


def backward_scratch(config: Config, *, image_tokens: float, text_tokens: int, batch: int, compute_bytes: int,
                     fp8: bool) -> int:
    """Gradients in flight at the widest layer (the feed-forward's hidden width), and one fp8 weight upcast."""
    d, hidden = config["dim"], feed_forward_width(config["dim"])
    tokens = batch * (image_tokens + text_tokens)
    upcast = 2 * d * hidden if fp8 else 0
    return int(2 * tokens * hidden * compute_bytes + upcast)
