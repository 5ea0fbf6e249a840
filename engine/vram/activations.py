"""Bytes autograd keeps from the forward pass for the backward pass, from the architecture.

Each module's saved tensors are counted from what its backward needs (tokens × channels per
tensor), walking the model the way diffusers runs it:
- ResNet block: the inputs of norm1, SiLU and conv1 (input width) and of norm2, SiLU and conv2
  (output width): 3·T·(c_in + c_out).
- Transformer2DModel: GroupNorm and proj_in inputs, the layout copy, proj_out's input; per
  BasicTransformerBlock 30·T·C (norm inputs/outputs, q/k/v and the attention output kept by the
  fused attention kernel, the head-merge copies, the residual sums, GEGLU's 8C projection and its
  two 4C products), plus the cross-attention k/v over the text tokens and per-head log-sum-exp.
- Samplers: their convolution's input; the output head: GroupNorm, SiLU and conv_out inputs.
- A LoRA layer adds its down-projection's output (tokens × rank).
Nothing is saved before the first trained layer: the base is frozen and the latents are data, so
the ResNets ahead of the first adapted transformer keep nothing (unless they carry a LoCon).
With gradient checkpointing diffusers re-runs each ResNet and each BasicTransformerBlock in the
backward pass, so only their inputs stay; the largest single unit is rebuilt at a time and its
full activations come on top (`recompute`).

"Slots" carry a dtype class: `compute` tensors take the mixed-precision width; `norm` tensors are
the inputs of normalisations and of the SiLU after them, which CUDA autocast runs in fp32; `stat`
are fp32 statistics; `cast` exists only under autocast: a layer reading an fp32 tensor keeps its own
bf16 copy, and every LoRA layer keeps a copy of its input (peft casts it to the fp32 adapter's dtype,
autocast casts it back). The CPU tests check the fp32 case against saved_tensors_hooks; the bf16
rules are for benchmarks/gpu_check.py to confirm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .counts import cross_dim, per_level, unet_walk


@dataclass
class Slots:
    compute: float = 0.0  # elements held in the compute dtype
    norm: float = 0.0  # elements fp32 under autocast (norm/SiLU inputs)
    stat: float = 0.0  # fp32 statistics (norm mean/rstd, attention log-sum-exp)
    cast: float = 0.0  # autocast only: each layer reading an fp32 norm output keeps its own cast copy

    def __iadd__(self, other: "Slots") -> "Slots":
        self.compute += other.compute
        self.norm += other.norm
        self.stat += other.stat
        self.cast += other.cast
        return self

    def bytes(self, compute_bytes: int, autocast: bool) -> float:
        norm_bytes = 4 if autocast else compute_bytes
        cast = self.cast * compute_bytes if autocast else 0.0
        return self.compute * compute_bytes + self.norm * norm_bytes + self.stat * 4 + cast


@dataclass
class ActivationModel:
    kept: Slots  # saved through the whole forward/backward
    recompute: Slots  # largest unit rebuilt at once under checkpointing (zero without)


def _resnet(t: float, c_in: int, c_out: int, lora_rank: float) -> Slots:
    # norm1 in, SiLU in (norm outputs: fp32 under autocast); conv inputs in the compute dtype; under
    # autocast a LoRA on each conv (and on the 1x1 shortcut) keeps its own copy of the input
    copies = t * (c_in + c_out) + (t * c_in if c_in != c_out else 0.0)
    return Slots(compute=t * (c_in + c_out) + lora_rank * t * 3, norm=2 * t * (c_in + c_out),
                 stat=4 * 32,  # GroupNorm mean/rstd per group (negligible)
                 cast=copies if lora_rank else 0.0)


def _basic_block(t: float, c: int, heads: int, text_tokens: float, lora_rank: float, cross: int) -> Slots:
    # 25·T·C besides the three LayerNorm inputs; cross-attention k/v over the text tokens; the
    # LoRA down outputs of its ten layers (k/v of the cross-attention run over the text tokens).
    # Under autocast q/k/v each cast the fp32 norm1 output (two copies more), and every LoRA layer
    # keeps its own copy of its input (peft casts it to the fp32 adapter, autocast back to bf16):
    # q/k/v/out, to_q and out of the cross-attention, the feed-forward's two (4C) — 11·T·C — and
    # the cross-attention k/v over the text states.
    lora_copies = 11 * t * c + 2 * text_tokens * cross if lora_rank else 0.0
    return Slots(compute=25 * t * c + 2 * text_tokens * c + lora_rank * (8 * t + 2 * text_tokens),
                 norm=3 * t * c, stat=2 * heads * t + 6 * t, cast=2 * t * c + lora_copies)


def _block_input(t: float, c: int) -> Slots:
    return Slots(compute=t * c)


def unet_activations(config: Mapping[str, Any], *, latent_tokens: float, batch: int, text_tokens: int,
                     checkpointing: bool, lora_rank: int, lora_on_resnets: bool) -> ActivationModel:
    """Saved bytes model of one UNet2DConditionModel forward pass at `latent_tokens` (H·W of level 0)."""
    channels = list(config["block_out_channels"])
    kept, largest = Slots(), Slots()
    b = batch
    res_rank = lora_rank if lora_on_resnets else 0

    def tokens(level: int) -> float:
        return b * latent_tokens / (4 ** level)

    kept += Slots(compute=b * text_tokens * cross_dim(config))  # the text states, shared by every k/v
    # Nothing needs a gradient before the first trained layer (the base is frozen, the latents are
    # data), so autograd saves nothing there; checkpointed units still keep their inputs.
    grad_started = res_rank > 0
    for part in unet_walk(config):
        kind, level = part[0], part[-1]
        t = tokens(level)
        if kind != "transformer" and not grad_started and not checkpointing:
            continue
        if kind == "resnet":
            full = _resnet(t, part[1], part[2], res_rank)
            if checkpointing:
                kept += Slots(compute=t * part[1])
                largest = _larger(largest, full)
            else:
                kept += full
        elif kind == "transformer":
            c, depth = part[1], part[2]
            n_heads = _heads(config, level)
            if not grad_started and not checkpointing:
                kept += Slots(norm=-t * c)  # the first GroupNorm's input needs no gradient
            grad_started = True
            # GroupNorm input, proj_in's input, proj_out's input (each block counts its own input)
            # under autocast proj_in/out's LoRA keep copies of their inputs
            kept += Slots(compute=2 * t * c + lora_rank * 2 * t, norm=t * c, cast=2 * t * c if lora_rank else 0.0)
            for _ in range(depth):
                full = _basic_block(t, c, n_heads, b * text_tokens, lora_rank, cross_dim(config))
                if checkpointing:
                    kept += _block_input(t, c)
                    largest = _larger(largest, full)
                else:
                    kept += full
        else:  # down/up sampler (up: the conv runs on the doubled grid, level - 1)
            kept += Slots(compute=t * part[1] + res_rank * t, cast=t * part[1] if res_rank else 0.0)
    kept += Slots(compute=tokens(0) * channels[0], norm=2 * tokens(0) * channels[0])  # output head
    return ActivationModel(kept, largest)


def _heads(config: Mapping[str, Any], level: int) -> int:
    channels = list(config["block_out_channels"])
    value = config.get("num_attention_heads") or config.get("attention_head_dim", 8)
    # diffusers' UNet2DConditionModel passes attention_head_dim as the number of heads
    return int(per_level(value, len(channels))[level])


def _larger(a: Slots, b: Slots) -> Slots:
    return a if a.bytes(4, False) >= b.bytes(4, False) else b


def clip_activations(config: Mapping[str, Any], *, tokens: int, batch: int, lora_rank: int,
                     checkpointing: bool) -> ActivationModel:
    """A CLIP text encoder trained with LoRA: per layer LN inputs/outputs, q/k/v/out, MLP."""
    width, mlp, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    t = batch * tokens
    heads = config.get("num_attention_heads", 12)
    # under autocast: two more casts of the LN output for q/k/v, and each LoRA layer's input copy
    per_layer = Slots(compute=t * (9 * width + 3 * mlp) + lora_rank * 6 * t, norm=2 * t * width,
                      stat=2 * heads * t + 4 * t, cast=t * (7 * width + mlp))
    if checkpointing:
        return ActivationModel(Slots(compute=layers * t * width), per_layer)
    total = Slots()
    for _ in range(layers):
        total += per_layer
    return ActivationModel(total, Slots())


def flux_activations(config: Mapping[str, Any], *, image_tokens: float, text_tokens: int, batch: int,
                     checkpointing: bool, lora_rank: int) -> ActivationModel:
    """FluxTransformer2DModel: per double block ~30·d per token and stream, per single block ~32·d."""
    d = config["num_attention_heads"] * config["attention_head_dim"]
    heads = config["num_attention_heads"]
    img, txt = batch * image_tokens, batch * text_tokens
    joint = img + txt
    # modulated norms (2 in, 2 out), q/k/v + RMS-normed q/k + rotary, joint copies for attention,
    # attention output and its split copy, gates and residuals, 4d GELU MLP (in and product)
    # under autocast each LoRA layer keeps a copy of its input: q/k/v/out and the MLP's in (d) and
    # out (4d) per stream in a double block; q/k/v/MLP-in (d each) and the 5d output in a single one
    lora_copies = 9 * d * joint if lora_rank else 0.0
    double = Slots(compute=joint * (22 * d + 8 * d) + lora_rank * 12 * joint, norm=2 * joint * d,
                   stat=2 * heads * joint, cast=lora_copies)
    single = Slots(compute=joint * (20 * d + 10 * d) + lora_rank * 6 * joint, norm=joint * d,
                   stat=heads * joint, cast=lora_copies)
    layers, singles = config["num_layers"], config["num_single_layers"]
    if checkpointing:
        kept = Slots(compute=(layers + singles) * joint * d)
        return ActivationModel(kept, _larger(double, single))
    kept = Slots()
    for _ in range(layers):
        kept += double
    for _ in range(singles):
        kept += single
    return ActivationModel(kept, Slots())
