"""The memory savers' terms in the estimate, counted the way the engine applies them (torch-free).

- Quantized storage (`training.base_quantization`, `fp8_base`; `text_encoder_quantization`):
  engine/networks/quantize.py turns linear weights only. fp8 is one byte a weight; int8
  (bitsandbytes LLM.int8) one byte plus an fp32 scale per output row; nf4 half a byte plus the
  block scales (one 8-bit absmax per 64 weights, and an fp32 scale per 256 of those, bitsandbytes'
  double quantization). Biases, norms and embeddings stay in the compute dtype.
- 16-bit training state (`full_bf16` / `full_fp16`): the LoRA and its gradients at 2 bytes; torch
  optimizers keep state like the parameter (2 bytes), 8-bit ones are unchanged.
- Block swap: the swapped blocks' frozen weights are off the GPU; one block per list is in flight
  at a time (the incoming copy lands while the outgoing one leaves).
- Offloaded checkpoints: the block inputs checkpointing keeps go to the CPU; two are on the GPU at a
  time (the one being saved and the one being read back).
"""

from __future__ import annotations

from typing import Any, Mapping

from .counts import linear

NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # packed nibbles + 8-bit absmax per 64 + fp32 per 256 absmax
_LINEAR_WEIGHT_BYTES = {"fp8": 1.0, "int8": 1.0, "nf4": NF4_BYTES}


def flux_block_parameters(config: Mapping[str, Any]) -> dict[str, int]:
    """Parameters of one double and one single FLUX.1 block (as counts.flux_parameters adds them)."""
    d = config["num_attention_heads"] * config["attention_head_dim"]
    qk_norms = 2 * config["attention_head_dim"]
    feed_forward = linear(d, 4 * d) + linear(4 * d, d)
    double = 2 * linear(d, 6 * d) + 8 * linear(d, d) + 2 * qk_norms + 2 * feed_forward
    single = linear(d, 3 * d) + linear(d, 4 * d) + linear(5 * d, d) + 3 * linear(d, d) + qk_norms
    return {"transformer_blocks": double, "single_transformer_blocks": single}


def swapped_parameters(config: Mapping[str, Any], split: Mapping[str, int]) -> tuple[int, int]:
    """(parameters kept off the GPU, parameters of the blocks in flight: one per swapped list)."""
    if config.get("_class_name") != "FluxTransformer2DModel" or not split:
        return 0, 0
    per_block = flux_block_parameters(config)
    off = sum(per_block[group] * count for group, count in split.items())
    flight = sum(per_block[group] for group, count in split.items() if count)
    return off, flight


def weight_bytes_per_parameter(kind: str, compute_bytes: int, in_features: int = 3072) -> float:
    """Bytes a linear weight takes stored as `kind` (`none`: the compute dtype)."""
    if kind == "int8":
        return 1.0 + 4 / in_features  # fp32 scale per output row over in_features weights
    return _LINEAR_WEIGHT_BYTES.get(kind, float(compute_bytes))


def text_linear_weights(config: Mapping[str, Any]) -> int:
    """Weights of the linear layers of a CLIP or T5 encoder (what 8-bit storage turns)."""
    if "d_model" in config:
        d, inner, ff = config["d_model"], config["num_heads"] * config["d_kv"], config["d_ff"]
        gated = str(config.get("feed_forward_proj", "relu")).startswith("gated")
        return config["num_layers"] * (4 * d * inner + (3 if gated else 2) * d * ff)
    width, mlp = config["hidden_size"], config["intermediate_size"]
    projection = width * config["projection_dim"] if config.get("_class_name") == "CLIPTextModelWithProjection" else 0
    return config["num_hidden_layers"] * (4 * width * width + 2 * width * mlp) + projection


def text_encoder_bytes(config: Mapping[str, Any], total: int, kind: str, compute_bytes: int) -> int:
    if kind == "none":
        return total * compute_bytes
    width = config.get("d_model") or config.get("hidden_size") or 768
    linears = text_linear_weights(config)
    return int(linears * weight_bytes_per_parameter(kind, compute_bytes, width) + (total - linears) * compute_bytes)


def trained_bytes(values: Mapping[str, Any]) -> int:
    """Bytes per number of the LoRA and its gradients: 2 with full_bf16 / full_fp16, else fp32."""
    return 2 if values.get("training.full_bf16") or values.get("training.full_fp16") else 4


def offloaded_activations(kept_bytes: int, units: int) -> int:
    """What stays of the kept checkpoint inputs when they are parked on the CPU: two in transit."""
    return int(kept_bytes * min(1.0, 2 / max(1, units)))


def checkpoint_units(config: Mapping[str, Any]) -> int:
    if config.get("_class_name") == "FluxTransformer2DModel":
        return config["num_layers"] + config["num_single_layers"]
    return max(1, len(config.get("block_out_channels", [])) * 3)


def base_kind(values: Mapping[str, Any]) -> str:
    """The denoiser's storage: `fp8_base: true` is the Kohya spelling of fp8 (as settings_memory reads it)."""
    chosen = values.get("training.base_quantization") or "none"
    return "fp8" if values.get("training.fp8_base") and chosen == "none" else chosen


def text_encoders_leave(values: Mapping[str, Any], train_te: bool) -> bool:
    """The engine drops the encoders after caching only when no sample prompt needs them (text_cache.py)."""
    return bool(values.get("training.cache_text_encoder_outputs")) and not train_te and not values.get("sampling.prompts")
