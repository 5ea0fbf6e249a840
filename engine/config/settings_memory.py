"""Memory savers: 16-bit training state, block swapping, offloaded checkpoints, quantized frozen weights.

Each trades speed or a little precision for GPU memory; `engine/vram/savers.py` counts what each
saves and `engine/vram/fixes.py` ranks them for the card a run plans for. Which blocks a family can
swap, and which block groups FLUX.1 can train alone, are the family object's facts
(`ModelFamily.swap_split`, `train_block_groups`), so nothing here names a family's layers.
"""

from __future__ import annotations

from typing import Any, Mapping

from engine import families
from ..problems import Problem, error, warning
from engine.schema import Setting

QUANTIZATIONS = ("none", "fp8", "nf4", "int8")
TEXT_QUANTIZATIONS = ("none", "fp8", "int8")


def base_quantization(values: Mapping[str, Any]) -> str:
    """How the frozen denoiser is stored: `fp8_base: true` is the Kohya spelling of `fp8`."""
    chosen = values.get("training.base_quantization") or "none"
    return "fp8" if values.get("training.fp8_base") and chosen == "none" else chosen


def _named_family(values: Mapping[str, Any]) -> families.ModelFamily | None:
    name = values.get("model.family")
    return families.REGISTRY.get(name) if name in families.REGISTRY else None


def _swap_applies(values: Mapping[str, Any]) -> str | None:
    family = _named_family(values)
    return family.swap_unsupported if family is not None and family.swap_unsupported else None


def _offload_applies(values: Mapping[str, Any]) -> str | None:
    return None if values.get("training.gradient_checkpointing") else "needs gradient checkpointing"


def _text_quant_applies(values: Mapping[str, Any]) -> str | None:
    if text_encoders_leave(values):
        return "the text encoders leave the GPU once their outputs are cached (no sample prompts)"
    return None


def _train_blocks_applies(values: Mapping[str, Any]) -> str | None:
    family = _named_family(values)
    if family is not None and not family.train_block_groups:
        return f"only for families with separate block groups (this run is {family.label})"
    return None


def text_encoders_leave(values: Mapping[str, Any]) -> bool:
    """The engine drops the text encoders after caching their outputs (engine/train/text_cache.py):
    only when nothing needs them later (no sample prompts, no text-encoder training)."""
    lr = values.get("optimizer.text_encoder_lr")
    trained = (values.get("optimizer.learning_rate") if lr is None else lr) != 0
    return bool(values.get("training.cache_text_encoder_outputs")) and not trained and not values.get("sampling.prompts")


MEMORY_SETTINGS = [
    Setting(
        "training.full_bf16", "bool", False, "Full bf16 training",
        "Keep the LoRA, its gradients and the optimizer's state in bf16 too: about half their memory.",
        "Normally only the maths runs in 16 bits while the LoRA's own numbers, their gradients and "
        "the optimizer's running averages stay in 32-bit floats. With this on they are stored in "
        "bf16 as well, as sd-scripts' full_bf16 does. That halves their memory (most useful with "
        "large ranks); bf16's short mantissa rounds very small updates away, so the loss curve "
        "drifts a little from a 32-bit run. Needs mixed precision bf16.",
        "advanced", kohya="full_bf16", tier="expected",
    ),
    Setting(
        "training.full_fp16", "bool", False, "Full fp16 training",
        "Keep the LoRA, its gradients and the optimizer's state in fp16 (older GPUs without bf16).",
        "Like full bf16 but in fp16, for GPUs without bf16. fp16 has more precision but a small "
        "range, so the loss is scaled up before the backward pass and the fp16 gradients are "
        "unscaled before each step (the gradient scaler is told to accept them, as sd-scripts does). "
        "A run can overflow; bf16 is safer where the GPU has it. Needs mixed precision fp16.",
        "advanced", kohya="full_fp16", tier="expected",
    ),
    Setting(
        "training.blocks_to_swap", "int", 0, "Blocks to swap",
        "Keep this many transformer blocks in CPU memory, each brought to the GPU just before it runs.",
        "The frozen weights of the last N blocks live in CPU memory. During the forward pass each one "
        "is copied to the GPU just before it runs while a block already done goes back, and the "
        "backward pass does the same in reverse; the copies run beside the computation. This saves "
        "about the size of N blocks of GPU memory and costs time on every step (more with a slow "
        "PCIe link). Counted as sd-scripts counts for FLUX.1: half of N double blocks and twice the "
        "rest in single blocks. 0 turns it off.",
        "advanced", kohya="blocks_to_swap", minimum=0, tier="expected", applies=_swap_applies,
    ),
    Setting(
        "training.cpu_offload_checkpointing", "bool", False, "Offload checkpoints to the CPU",
        "With gradient checkpointing, park each block's saved input in CPU memory until the backward pass.",
        "Gradient checkpointing keeps only each block's input for the backward pass. Those inputs "
        "still add up at large sizes; with this on they are copied to CPU memory as the forward pass "
        "makes them and back when the backward pass needs them. Saves their memory for a few "
        "percent of speed. Needs gradient checkpointing.",
        "advanced", kohya="cpu_offload_checkpointing", tier="expected", applies=_offload_applies,
    ),
    Setting(
        "training.base_quantization", "choice", "none", "Base model storage",
        "Store the frozen denoiser in fp8, nf4 (4-bit) or int8: a half to a quarter of its memory.",
        "The base model never changes while a LoRA trains, so its big linear layers can be stored in "
        "fewer bits and widened for each layer's maths. fp8 halves them (the same as 'base model in "
        "fp8'); int8 (bitsandbytes' LLM.int8) also halves them and keeps a scale per row; nf4 "
        "(bitsandbytes' 4-bit normal-float, as QLoRA does) stores about a quarter. Fewer bits mean a "
        "slightly different base model during training, so expect a small loss offset; the LoRA "
        "itself is trained and saved at full precision.",
        "advanced", choices=QUANTIZATIONS, tier="expected",
    ),
    Setting(
        "training.text_encoder_quantization", "choice", "none", "Text encoder storage",
        "Keep the text encoders on the GPU in fp8 or int8: half their memory (T5-XXL: 9 → 4.5 GiB).",
        "When the text encoders stay on the GPU (they encode captions every step, or draw sample "
        "prompts), their linear layers can be stored in 8 bits and widened for each layer's maths. "
        "FLUX.1's T5-XXL drops from about 9 GiB to 4.5. Captions come out very slightly different "
        "from the 16-bit encoders.",
        "advanced", choices=TEXT_QUANTIZATIONS, tier="expected", applies=_text_quant_applies,
    ),
]

MEMORY_FLUX_SETTINGS = [
    Setting(
        "flux.train_blocks", "choice", "all", "Blocks to train",
        "all, single or double: train LoRA layers in every block or in one kind only.",
        "FLUX.1 has double-stream blocks (image and text apart) and single-stream blocks (joined). "
        "Training one kind only makes the LoRA, its gradients and its optimizer state smaller and "
        "the backward pass shorter. sd-scripts' lora_flux network argument of the same name; it is "
        "written into the file's ss_network_args.",
        "advanced", kohya="train_blocks", choices=("all", "single", "double"), tier="expected", ss_extra=False,
        applies=_train_blocks_applies,
    ),
]

# Keys the Kohya GUI saves for FLUX.1 only (read only when the config trains FLUX.1).
FLUX_GUI_KEYS = ("blocks_to_swap", "train_blocks")  # offloaded checkpoints work for every family


def memory_rules(v: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    precision = v["training.mixed_precision"]
    if v["training.full_bf16"] and v["training.full_fp16"]:
        out.append(error("training.full_fp16", "full bf16 and full fp16 cannot both be on", "turn one of them off"))
    for key, wanted in (("training.full_bf16", "bf16"), ("training.full_fp16", "fp16")):
        if v[key] and precision != wanted:
            out.append(error(key, f"stores the training state in {wanted}, so mixed precision must be {wanted} "
                             f"(it is {precision})", f"set training.mixed_precision: {wanted}, or turn {key.split('.')[1]} off"))
    swap = v["training.blocks_to_swap"]
    reason = _swap_applies(v)
    if swap and reason:
        out.append(error("training.blocks_to_swap", f"block swapping is {reason}", "set training.blocks_to_swap: 0"))
    quant = base_quantization(v)
    if v["training.fp8_base"] and v["training.base_quantization"] not in ("none", "fp8"):
        out.append(error("training.base_quantization", f"{v['training.base_quantization']} conflicts with "
                         "training.fp8_base: true", "turn fp8_base off, or set base_quantization: fp8"))
    if swap and quant in ("nf4", "int8"):
        out.append(error("training.blocks_to_swap", f"{quant} layers keep quantisation state the swap does not "
                         "move", "use base_quantization fp8 (or none) with block swapping"))
    if quant == "fp8" and not v["training.fp8_base"] and precision == "no":
        out.append(error("training.base_quantization", "fp8 weights are computed in bf16 or fp16, and mixed "
                         "precision is off", "set training.mixed_precision: bf16 (or fp16)"))
    if v["training.text_encoder_quantization"] == "fp8" and precision == "no":
        out.append(error("training.text_encoder_quantization", "fp8 weights are computed in bf16 or fp16, and "
                         "mixed precision is off", "set training.mixed_precision: bf16, or choose int8"))
    if v["training.cpu_offload_checkpointing"] and not v["training.gradient_checkpointing"]:
        out.append(error("training.cpu_offload_checkpointing", "offloads what gradient checkpointing keeps, and "
                         "checkpointing is off", "turn training.gradient_checkpointing on"))
    if swap and v["training.cpu_offload_checkpointing"]:
        out.append(error("training.cpu_offload_checkpointing", "cannot be combined with block swapping (as in "
                         "sd-scripts): both move the same transfers over the PCIe link",
                         "turn one of them off (block swapping saves more)"))
    if v["training.text_encoder_quantization"] != "none" and text_encoders_leave(v):
        out.append(warning("training.text_encoder_quantization", f"does nothing: {_text_quant_applies(v)}",
                           "set it to none, or keep it for runs with sample prompts"))
    blocks_reason = _train_blocks_applies(v)
    if v["flux.train_blocks"] != "all" and blocks_reason:
        out.append(warning("flux.train_blocks", f"does nothing: {blocks_reason}", "remove flux.train_blocks"))
    return out
