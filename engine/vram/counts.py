"""Parameter counts of a model's parts, computed from their diffusers/transformers config dicts.

No weights and no torch: each count walks the module tree the library builds from that config
(UNet2DConditionModel, FluxTransformer2DModel, AutoencoderKL, CLIPTextModel[WithProjection],
T5EncoderModel) and adds up every weight and bias. The tests compare them with `numel()` of the
built-in tiny models and with the published totals of the real ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Config = Mapping[str, Any]


def linear(fan_in: int, fan_out: int, bias: bool = True) -> int:
    return fan_in * fan_out + (fan_out if bias else 0)


def conv(fan_in: int, fan_out: int, kernel: int = 3, bias: bool = True) -> int:
    return fan_in * fan_out * kernel * kernel + (fan_out if bias else 0)


def norm(channels: int) -> int:
    return 2 * channels  # GroupNorm / LayerNorm: weight and bias


def per_level(value: Any, levels: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * levels


# -- UNet2DConditionModel ---------------------------------------------------------------------------

def resnet(channels_in: int, channels_out: int, time_embedding: int | None) -> int:
    total = norm(channels_in) + conv(channels_in, channels_out) + norm(channels_out) + conv(channels_out, channels_out)
    if time_embedding:
        total += linear(time_embedding, channels_out)
    if channels_in != channels_out:
        total += conv(channels_in, channels_out, 1)
    return total


def transformer(width: int, depth: int, cross: int) -> int:
    """Transformer2DModel: norm, proj_in/out and `depth` BasicTransformerBlocks (GEGLU feed-forward)."""
    block = (norm(width) + 3 * width * width + linear(width, width)  # self-attention
             + norm(width) + width * width + 2 * cross * width + linear(width, width)  # cross-attention
             + norm(width) + linear(width, 8 * width) + linear(4 * width, width))  # feed-forward
    return norm(width) + 2 * linear(width, width) + depth * block


def unet_walk(config: Config):
    """Yield ("resnet", c_in, c_out, level) / ("transformer", width, depth, level) / ("down"|"up", c, level)
    in the order diffusers runs them; level 0 is the full latent size."""
    channels = list(config["block_out_channels"])
    levels = len(channels)
    per_block = per_level(config.get("layers_per_block", 2), levels)
    depths = per_level(config.get("transformer_layers_per_block", 1), levels)
    out_ch = channels[0]
    for i, kind in enumerate(config["down_block_types"]):
        in_ch, out_ch = out_ch, channels[i]
        for j in range(per_block[i]):
            yield ("resnet", in_ch if j == 0 else out_ch, out_ch, i)
            if "CrossAttn" in kind:
                yield ("transformer", out_ch, depths[i], i)
        if i < levels - 1:
            yield ("down", out_ch, i)
    yield ("resnet", channels[-1], channels[-1], levels - 1)
    yield ("transformer", channels[-1], depths[-1], levels - 1)
    yield ("resnet", channels[-1], channels[-1], levels - 1)
    rev, rev_depths, rev_per_block = channels[::-1], depths[::-1], per_block[::-1]
    out_ch = rev[0]
    for i, kind in enumerate(config["up_block_types"]):
        level = levels - 1 - i
        prev_ch, out_ch = out_ch, rev[i]
        in_ch = rev[min(i + 1, levels - 1)]
        for j in range(rev_per_block[i] + 1):
            skip = in_ch if j == rev_per_block[i] else out_ch
            yield ("resnet", (prev_ch if j == 0 else out_ch) + skip, out_ch, level)
            if "CrossAttn" in kind:
                yield ("transformer", out_ch, rev_depths[i], level)
        if i < levels - 1:
            yield ("up", out_ch, level - 1)


def cross_dim(config: Config) -> int:
    cross = config.get("cross_attention_dim", 768)
    return cross[0] if isinstance(cross, (list, tuple)) else cross


def unet_parameters(config: Config) -> int:
    channels = list(config["block_out_channels"])
    time_embedding = channels[0] * 4
    total = conv(config.get("in_channels", 4), channels[0])
    total += linear(channels[0], time_embedding) + linear(time_embedding, time_embedding)
    if config.get("addition_embed_type") == "text_time":
        total += linear(config["projection_class_embeddings_input_dim"], time_embedding)
        total += linear(time_embedding, time_embedding)
    for part in unet_walk(config):
        if part[0] == "resnet":
            total += resnet(part[1], part[2], time_embedding)
        elif part[0] == "transformer":
            total += transformer(part[1], part[2], cross_dim(config))
        else:
            total += conv(part[1], part[1])  # down/up-sampler convolution
    total += norm(channels[0]) + conv(channels[0], config.get("out_channels", 4))
    return total


# -- FluxTransformer2DModel -------------------------------------------------------------------------

def flux_parameters(config: Config) -> int:
    heads, head_dim = config["num_attention_heads"], config["attention_head_dim"]
    d = heads * head_dim
    out_channels = config.get("out_channels") or config["in_channels"]
    patch = config.get("patch_size", 1)
    embedder = linear(256, d) + linear(d, d)  # sinusoidal timestep → width
    total = linear(config["in_channels"], d) + embedder
    if config.get("guidance_embeds"):
        total += embedder
    total += linear(config["pooled_projection_dim"], d) + linear(d, d)
    total += linear(config["joint_attention_dim"], d)
    qk_norms = 2 * head_dim  # RMSNorm weights of q and k
    feed_forward = linear(d, 4 * d) + linear(4 * d, d)
    double = (2 * linear(d, 6 * d)  # adaLN-Zero of the image and text streams
              + 8 * linear(d, d) + 2 * qk_norms  # q/k/v/out for both streams
              + 2 * feed_forward)
    single = linear(d, 3 * d) + linear(d, 4 * d) + linear(5 * d, d) + 3 * linear(d, d) + qk_norms
    total += config["num_layers"] * double + config["num_single_layers"] * single
    total += linear(d, 2 * d) + linear(d, patch * patch * out_channels)
    return total


def denoiser_parameters(config: Config) -> int:
    if config.get("_class_name") == "FluxTransformer2DModel":
        return flux_parameters(config)
    return unet_parameters(config)


# -- AutoencoderKL ----------------------------------------------------------------------------------

def vae_parameters(config: Config) -> int:
    channels = list(config["block_out_channels"])
    per_block = config.get("layers_per_block", 2)
    latent = config.get("latent_channels", 4)
    top = channels[-1]
    mid = 2 * resnet(top, top, None)
    if config.get("mid_block_add_attention", True):
        mid += norm(top) + 4 * linear(top, top)
    encoder = conv(config.get("in_channels", 3), channels[0])
    out_ch = channels[0]
    for i, width in enumerate(channels):
        in_ch, out_ch = out_ch, width
        encoder += sum(resnet(in_ch if j == 0 else out_ch, out_ch, None) for j in range(per_block))
        if i < len(channels) - 1:
            encoder += conv(out_ch, out_ch)
    encoder += mid + norm(top) + conv(top, 2 * latent)
    decoder = conv(latent, top) + mid
    rev = channels[::-1]
    out_ch = rev[0]
    for i, width in enumerate(rev):
        prev, out_ch = out_ch, width
        decoder += sum(resnet(prev if j == 0 else out_ch, out_ch, None) for j in range(per_block + 1))
        if i < len(channels) - 1:
            decoder += conv(out_ch, out_ch)
    decoder += norm(channels[0]) + conv(channels[0], config.get("out_channels", 3))
    quant = conv(2 * latent, 2 * latent, 1) if config.get("use_quant_conv", True) else 0
    post = conv(latent, latent, 1) if config.get("use_post_quant_conv", True) else 0
    return encoder + decoder + quant + post


# -- text encoders ----------------------------------------------------------------------------------

def clip_parameters(config: Config) -> int:
    width, mlp = config["hidden_size"], config["intermediate_size"]
    layer = norm(width) + 4 * linear(width, width) + norm(width) + linear(width, mlp) + linear(mlp, width)
    total = config["vocab_size"] * width + config["max_position_embeddings"] * width
    total += config["num_hidden_layers"] * layer + norm(width)
    if config.get("_class_name") == "CLIPTextModelWithProjection":
        total += width * config["projection_dim"]
    return total


def t5_encoder_parameters(config: Config) -> int:
    d, inner, ff = config["d_model"], config["num_heads"] * config["d_kv"], config["d_ff"]
    gated = str(config.get("feed_forward_proj", "relu")).startswith("gated")
    layer = 4 * d * inner + d + (3 if gated else 2) * d * ff + d  # attention, its norm, MLP, its norm
    relative = config.get("relative_attention_num_buckets", 32) * config["num_heads"]  # first layer only
    return config["vocab_size"] * d + config["num_layers"] * layer + relative + d


def text_encoder_parameters(config: Config) -> int:
    if config.get("_class_name") == "T5EncoderModel" or "d_model" in config:
        return t5_encoder_parameters(config)
    return clip_parameters(config)
