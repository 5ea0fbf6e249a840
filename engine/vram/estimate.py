"""The peak-VRAM estimate of a run: named lines that add up to the peak, from the settings alone.

Torch-free. What the engine does decides each line (engine/train/setup.py and loop.py): the
denoiser and text encoders are held in the mixed-precision dtype (the denoiser in fp8 when fp8_base
is set: engine/networks/fp8.py stores only the denoiser's linears so; T5 stays 16-bit), the
VAE in fp32 and moved off the GPU once latents are cached (unless samples are drawn), LoRA
parameters and their gradients in fp32, optimizer state as optimizer_state.py lists, and the
activations of one forward/backward pass at the largest bucket (activations.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config.text_encoder import text_encoder_trained
import engine.vram.activations as act  # the module itself: `from . import` would read the package, which imports this file
import engine.vram.savers as savers

from engine import families
from .counts import denoiser_parameters, text_encoder_parameters, vae_parameters
from .lora_params import LokrSplit, denoiser_layers, network_shapes, text_encoder_layers
from .optimizer_state import optimizer_state_bytes
from .parts import ModelParts, model_parts

GIB = 1024 ** 3
CUDA_CONTEXT = 512 * 1024 ** 2  # driver context + cuBLAS/cuDNN handles: outside torch's allocator
ALLOCATOR_SLACK = 0.08  # reserved beyond allocated (block rounding, fragmentation)
_DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1}


@dataclass
class Line:
    name: str
    bytes: int
    detail: str = ""


@dataclass
class VramEstimate:
    lines: list[Line] = field(default_factory=list)
    family: str = ""
    source: str = ""
    resolution: tuple[int, int] = (0, 0)

    @property
    def allocated_bytes(self) -> int:
        """What torch.cuda.max_memory_allocated should show (every line but context and slack)."""
        return sum(line.bytes for line in self.lines if not line.name.startswith(("CUDA context", "allocator")))

    @property
    def total_bytes(self) -> int:
        return sum(line.bytes for line in self.lines)

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB

    def fits(self, gpu_bytes: int) -> bool:
        return self.total_bytes <= gpu_bytes

    def to_event(self) -> dict[str, Any]:
        return {"total_bytes": self.total_bytes, "allocated_bytes": self.allocated_bytes,
                "lines": [[line.name, line.bytes] for line in self.lines]}


def mixed_precision_of(values: Mapping[str, Any]) -> str:
    wanted = values.get("training.mixed_precision") or "auto"
    return {"auto": "bf16", "no": "fp32"}.get(wanted, wanted)  # auto: bf16 on a current GPU


def largest_area(values: Mapping[str, Any], buckets: list[tuple[int, int]] | None) -> tuple[int, int]:
    """The largest training size: the biggest bucket in the data, else the max resolution."""
    if buckets:
        return max(buckets, key=lambda size: size[0] * size[1])
    width, height = values.get("training.max_resolution") or (512, 512)
    return int(width), int(height)


def estimate_vram(values: Mapping[str, Any], buckets: list[tuple[int, int]] | None = None,
                  parts: ModelParts | None = None) -> VramEstimate | None:
    """The estimate for typed run values (a RunConfig's `.values`); None when the model is unknown."""
    parts = parts or model_parts(values)
    if parts is None:
        return None
    walk = families.get(parts.family).memory_walk() if parts.family in families.REGISTRY else None
    if walk is not None:
        return _walked_estimate(walk, values, buckets, parts)
    precision = mixed_precision_of(values)
    compute_bytes = _DTYPE_BYTES[precision]
    autocast = precision != "fp32"
    quant = savers.base_kind(values)
    batch = int(values.get("training.batch_size") or 1)
    checkpointing = bool(values.get("training.gradient_checkpointing"))
    train_te = text_encoder_trained(values)
    network_type = values.get("network.type") or "lora"
    rank = int(values.get("network.rank") or 8)
    conv_rank = int(values.get("network.conv_rank") or 0) if network_type not in ("lora", "dylora") else 0
    optimizer = values.get("optimizer.name") or "AdamW8bit"
    width, height = largest_area(values, buckets)
    estimate = VramEstimate(family=parts.family, source=parts.source, resolution=(width, height))
    lines = estimate.lines

    # -- weights
    counts = parts.counts  # a family that counts its own denoiser (None: the UNet/FLUX.1 walk here)
    denoiser = counts.parameters(parts.denoiser) if counts else denoiser_parameters(parts.denoiser)
    weight_dtype = precision if quant == "none" else quant
    per_weight = savers.weight_bytes_per_parameter(quant, compute_bytes)
    kind = "transformer" if parts.is_flux or counts else "UNet"
    swap = int(values.get("training.blocks_to_swap") or 0)
    split = families.get(parts.family).swap_split(swap) if parts.family in families.REGISTRY else {}
    off, flight = savers.swapped_parameters(parts.denoiser, split)
    swapped = f"; {off / 1e6:,.0f}M in {swap} swapped blocks off the GPU" if off else ""
    lines.append(Line(f"{kind} weights", int((denoiser - off) * per_weight),
                      f"{denoiser / 1e6:,.0f}M parameters in {weight_dtype}{swapped}"))
    if off:
        lines.append(Line("swapped blocks in flight", int(flight * per_weight),
                          "one block per swapped list arriving while another leaves"))
    cached_text = savers.text_encoders_leave(values, train_te)
    text_kind = values.get("training.text_encoder_quantization") or "none"
    for index, config in enumerate(parts.text_encoders):
        count = text_encoder_parameters(config)
        is_t5 = "d_model" in config
        name = f"text encoder {index + 1} weights" + (" (T5)" if is_t5 else "")
        if cached_text:
            lines.append(Line(name, 0, "off the GPU: its outputs are cached"))
            continue
        stored = precision if text_kind == "none" else f"{text_kind} (linear layers)"
        why = ", kept for sample prompts" if values.get("training.cache_text_encoder_outputs") and not train_te else ""
        lines.append(Line(name, savers.text_encoder_bytes(config, count, text_kind, compute_bytes),
                          f"{count / 1e6:,.0f}M parameters in {stored}{why}"))
    vae = vae_parameters(parts.vae)
    vae_leaves = bool(values.get("training.cache_latents", True)) and not values.get("sampling.prompts")
    lines.append(Line("VAE weights", 0 if vae_leaves else vae * 4,
                      "off the GPU once latents are cached" if vae_leaves else f"{vae / 1e6:,.0f}M parameters in fp32"))

    # -- the network and its training state
    unit = int(values.get("network.dylora_unit") or 1)
    lokr = LokrSplit(int(values.get("network.lokr_factor") or -1), bool(values.get("network.lokr_decompose_both")),
                     bool(values.get("network.lokr_full_matrix")))
    train_blocks = str(values.get("flux.train_blocks") or "all")
    layers = counts.lora_layers(parts.denoiser) if counts else denoiser_layers(parts.denoiser, network_type, train_blocks)
    shapes = network_shapes(layers, rank=rank, conv_rank=conv_rank,
                            network_type=network_type, lokr=lokr, dylora_unit=unit)
    if train_te:
        for config in parts.text_encoders:
            shapes += network_shapes(text_encoder_layers(config), rank=rank, conv_rank=conv_rank,
                                     network_type=network_type, lokr=lokr, dylora_unit=unit)
    numbers = sum(math.prod(shape) for shape, _ in shapes)
    held = savers.trained_bytes(values)
    held_name = "fp32" if held == 4 else ("bf16" if values.get("training.full_bf16") else "fp16")
    lines.append(Line("LoRA parameters", held * numbers,
                      f"{numbers / 1e6:,.2f}M numbers in {held_name}, {network_type} rank {rank}"))
    lines.append(Line("LoRA gradients", held * numbers, f"{held_name}, one per parameter"))
    lines.append(Line("optimizer state", optimizer_state_bytes(optimizer, shapes, held), optimizer))

    # -- activations
    model = _activations(parts, values, width, height, batch, checkpointing, rank, network_type, train_te)
    kept = int(model.kept.bytes(compute_bytes, autocast))
    recompute = int(model.recompute.bytes(compute_bytes, autocast))
    detail = f"batch {batch} at {width}×{height}, {precision}, checkpointing {'on' if checkpointing else 'off'}"
    if checkpointing and values.get("training.cpu_offload_checkpointing"):
        kept = savers.offloaded_activations(kept, savers.checkpoint_units(parts.denoiser))
        detail += ", block inputs parked on the CPU"
    lines.append(Line("activations", kept, detail))
    working = recompute + _backward_scratch(parts, values, width, height, batch, compute_bytes, quant != "none")
    lines.append(Line("backward working memory", working,
                      "one checkpointed block rebuilt at a time, gradient buffers" if checkpointing
                      else "gradient buffers of the largest layers"))
    if not vae_leaves and not values.get("training.cache_latents", True):
        lines.append(Line("VAE encoding (before the forward pass)", 0, "smaller than the training pass"))

    allocated = estimate.allocated_bytes
    lines.append(Line("CUDA context", CUDA_CONTEXT, "driver and library handles, outside torch's count"))
    lines.append(Line("allocator overhead", int(allocated * ALLOCATOR_SLACK), "reserved beyond allocated"))
    return estimate


def flux_text_tokens(values: Mapping[str, Any], parts: ModelParts) -> int:
    """T5 tokens per caption: the setting, else the variant's own length ([schnell] 256, [dev] 512)."""
    from engine.families.flux1 import reference as ref  # torch-free facts

    configured = values.get("flux.t5xxl_max_token_length")
    if configured:
        return int(configured)
    # the reference configs are [dev]'s; the [schnell] hub id names the other variant
    schnell = str(values.get("model.path") or "").lower() == ref.HUB_IDS["schnell"].lower()
    return ref.T5_MAX_TOKENS["schnell" if schnell else ref.variant_of_config(parts.denoiser)]


def _activations(parts: ModelParts, values: Mapping[str, Any], width: int, height: int, batch: int,
                 checkpointing: bool, rank: int, network_type: str, train_te: bool) -> act.ActivationModel:
    scale = parts.vae_scale
    windows = max(1, int(values.get("training.max_token_length") or 75) // 75)
    counts = parts.counts
    if counts:
        found = counts.activations(parts.denoiser, image_tokens=counts.image_tokens(parts.denoiser, width // scale, height // scale),
                                   text_tokens=counts.text_tokens(values), batch=batch, checkpointing=checkpointing,
                                   lora_rank=rank)
        model = act.ActivationModel(act.Slots(**found["kept"]), act.Slots(**found["recompute"]))
    elif parts.is_flux:
        image_tokens = (width // scale // 2) * (height // scale // 2)
        text_tokens = flux_text_tokens(values, parts)
        model = act.flux_activations(parts.denoiser, image_tokens=image_tokens, text_tokens=text_tokens,
                                     batch=batch, checkpointing=checkpointing, lora_rank=rank)
    else:
        latent_tokens = (width // scale) * (height // scale)
        text_tokens = 75 * windows + 2
        model = act.unet_activations(parts.denoiser, latent_tokens=latent_tokens, batch=batch,
                                     text_tokens=text_tokens, checkpointing=checkpointing, lora_rank=rank,
                                     lora_on_resnets=network_type not in ("lora", "dylora"))
    if train_te:
        for config in parts.text_encoders:
            if "hidden_size" not in config:
                continue  # T5 is never trained
            te = act.clip_activations(config, tokens=77 * windows, batch=batch, lora_rank=rank,
                                      checkpointing=checkpointing)
            model.kept += te.kept
            model.recompute = act._larger(model.recompute, te.recompute)
    return model


def _backward_scratch(parts: ModelParts, values: Mapping[str, Any], width: int, height: int, batch: int,
                      compute_bytes: int, fp8: bool) -> int:
    # `fp8`: the frozen weights are stored in fewer bits (fp8, int8, nf4): one layer is widened at a time
    """Gradients in flight at the widest layer: its output gradient and its input gradient."""
    scale = parts.vae_scale
    counts = parts.counts
    if counts:
        return counts.backward_scratch(parts.denoiser, image_tokens=counts.image_tokens(parts.denoiser, width // scale, height // scale),
                                       text_tokens=counts.text_tokens(values), batch=batch, compute_bytes=compute_bytes, fp8=fp8)
    if parts.is_flux:
        d = parts.denoiser["num_attention_heads"] * parts.denoiser["attention_head_dim"]
        tokens = batch * ((width // scale // 2) * (height // scale // 2) + 512)
        widest = tokens * 5 * d
        upcast = 2 * 5 * d * d if fp8 else 0  # one fp8 layer upcast at a time
        return int(2 * widest * compute_bytes + upcast)
    tokens = batch * (width // scale) * (height // scale)
    widest = tokens * 8 * parts.denoiser["block_out_channels"][0]  # GEGLU projection at full size
    return int(2 * widest * compute_bytes)


def _walked_estimate(walk: Any, values: Mapping[str, Any], buckets: list[tuple[int, int]] | None,
                     parts: ModelParts) -> VramEstimate:
    """The estimate of a family that walks its own layers (`ModelFamily.memory_walk`): the same lines."""
    precision = mixed_precision_of(values)
    compute_bytes = _DTYPE_BYTES[precision]
    autocast = precision != "fp32"
    fp8 = bool(values.get("training.fp8_base"))
    batch = int(values.get("training.batch_size") or 1)
    checkpointing = bool(values.get("training.gradient_checkpointing"))
    rank = int(values.get("network.rank") or 8)
    optimizer = values.get("optimizer.name") or "AdamW8bit"
    width, height = largest_area(values, buckets)
    estimate = VramEstimate(family=parts.family, source=parts.source, resolution=(width, height))
    lines = estimate.lines
    denoiser = walk.denoiser_parameters(parts.denoiser)
    weight_dtype = "fp8" if fp8 else precision
    lines.append(Line("transformer weights", denoiser * _DTYPE_BYTES[weight_dtype],
                      f"{denoiser / 1e6:,.0f}M parameters in {weight_dtype}"))
    cached = bool(values.get("training.cache_text_encoder_outputs")) and not values.get("sampling.prompts")
    for index, config in enumerate(parts.text_encoders):
        count = walk.text_encoder_parameters(config)
        lines.append(Line(f"text encoder {index + 1} weights", 0 if cached else count * compute_bytes,
                          "off the GPU: its outputs are cached" if cached else f"{count / 1e6:,.0f}M parameters in {precision}"))
    vae = vae_parameters(parts.vae)
    vae_leaves = bool(values.get("training.cache_latents", True)) and not values.get("sampling.prompts")
    lines.append(Line("VAE weights", 0 if vae_leaves else vae * 4,
                      "off the GPU once latents are cached" if vae_leaves else f"{vae / 1e6:,.0f}M parameters in fp32"))
    shapes = network_shapes(walk.lora_layers(parts.denoiser), rank=rank, conv_rank=0, network_type="lora")
    numbers = sum(math.prod(shape) for shape, _ in shapes)
    lines.append(Line("LoRA parameters", 4 * numbers, f"{numbers / 1e6:,.2f}M numbers in fp32, lora rank {rank}"))
    lines.append(Line("LoRA gradients", 4 * numbers, "fp32, one per parameter"))
    lines.append(Line("optimizer state", optimizer_state_bytes(optimizer, shapes, 4), optimizer))
    image = walk.image_tokens(width, height, parts.vae_scale)
    text = walk.text_tokens(values)
    kept, recompute = walk.activations(parts.denoiser, image_tokens=image, text_tokens=text, batch=batch,
                                       checkpointing=checkpointing, lora_rank=rank)
    lines.append(Line("activations", int(act.Slots(**kept).bytes(compute_bytes, autocast)),
                      f"batch {batch} at {width}×{height}, {precision}, checkpointing {'on' if checkpointing else 'off'}"))
    working = act.Slots(**recompute).bytes(compute_bytes, autocast) + walk.backward_scratch(
        parts.denoiser, image_tokens=image, text_tokens=text, batch=batch, compute_bytes=compute_bytes, fp8=fp8)
    lines.append(Line("backward working memory", int(working),
                      "one checkpointed block rebuilt at a time, gradient buffers" if checkpointing
                      else "gradient buffers of the largest layers"))
    allocated = estimate.allocated_bytes
    lines.append(Line("CUDA context", CUDA_CONTEXT, "driver and library handles, outside torch's count"))
    lines.append(Line("allocator overhead", int(allocated * ALLOCATOR_SLACK), "reserved beyond allocated"))
    return estimate
