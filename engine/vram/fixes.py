"""Changes that make a run fit, each with the memory it saves and what it costs, and a plan for a card.

Each fix is a set of setting values the wizard can apply with one key; its saving is the drop of the
estimated peak when only that change is made. Its cost (`Cost`) says what the saving is paid with:
slower steps, or a training that is not quite the same. Without a card size the fixes are ranked by
saving; for a card (`hardware.vram_gb`, or the GPU NVML reports) the cheapest fixes that make the run
fit come first, then the rest by saving per unit of cost. `plan_to_fit` combines the cheapest fixes
until the estimate fits the card (block swapping takes the fewest blocks that fit), then drops any
fix the others made unnecessary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from engine import families

from ..config.text_encoder import text_encoder_trained
from .estimate import estimate_vram
from .optimizer_state import is_eight_bit
from .parts import ModelParts, model_parts
from .savers import base_kind, text_encoders_leave

_EIGHT_BIT_OF = {"AdamW": "AdamW8bit", "Lion": "Lion8bit"}


@dataclass(frozen=True)
class Cost:
    speed: float = 0.0  # extra time per step, as a fraction (0.25: a quarter slower)
    quality: float = 0.0  # 0 none, 1 rounding-level, 2 a slightly different base, 3 a different training
    note: str = ""

    @property
    def weight(self) -> float:
        """One number to rank by: a 10 % slower step weighs as much as one step of quality."""
        return max(0.0, self.speed) * 10 + self.quality + 0.01


@dataclass
class Fix:
    label: str
    changes: dict[str, Any]
    saving_bytes: int
    cost: Cost = field(default_factory=Cost)


def candidate_changes(values: Mapping[str, Any], known_keys: set[str] | None = None) -> list[tuple[str, dict]]:
    """Possible changes for these values; settings not in `known_keys` (the schema) are never offered."""
    return [(label, changes) for label, changes, _ in _candidates(values, known_keys)]


def _candidates(values: Mapping[str, Any], known_keys: set[str] | None) -> list[tuple[str, dict, Cost]]:
    def known(*keys: str) -> bool:
        return known_keys is None or all(key in known_keys for key in keys)

    found: list[tuple[str, dict, Cost]] = []
    add = found.append
    if not values.get("training.gradient_checkpointing"):
        add(("turn on gradient checkpointing (slower steps)", {"training.gradient_checkpointing": True},
             Cost(0.25, 0, "each block runs twice")))
    name = values.get("optimizer.name") or "AdamW8bit"
    if not is_eight_bit(name) and name in _EIGHT_BIT_OF:
        add((f"use the 8-bit optimizer {_EIGHT_BIT_OF[name]}", {"optimizer.name": _EIGHT_BIT_OF[name]},
             Cost(0, 0.5, "8-bit optimizer state")))
    elif not is_eight_bit(name) and name not in ("Adafactor", "SGDNesterov"):
        add(("use the 8-bit optimizer AdamW8bit", {"optimizer.name": "AdamW8bit"}, Cost(0, 1, "another optimizer")))
    trains_text = text_encoder_trained(values)
    if known("training.cache_text_encoder_outputs") and not values.get("training.cache_text_encoder_outputs"):
        add(("cache text-encoder outputs (trains the UNet only)",
             {"training.cache_text_encoder_outputs": True, "optimizer.text_encoder_lr": 0.0},
             Cost(-0.05, 3 if trains_text else 0, "the text encoder is not trained" if trains_text else "")))
    elif trains_text:
        add(("train the UNet only (text_encoder_lr 0)", {"optimizer.text_encoder_lr": 0.0},
             Cost(-0.05, 3, "the text encoder is not trained")))
    batch = int(values.get("training.batch_size") or 1)
    if batch > 1:
        accumulation = int(values.get("training.gradient_accumulation_steps") or 1)
        half = batch // 2
        add((f"batch {half} × accumulation {accumulation * batch // half} (same effective batch)",
             {"training.batch_size": half, "training.gradient_accumulation_steps": accumulation * batch // half},
             Cost(0.15, 0, "smaller batches use the GPU less well")))
    precision = values.get("training.mixed_precision")
    if precision == "no":
        add(("train in bf16 mixed precision", {"training.mixed_precision": "bf16"}, Cost(-0.3, 1, "16-bit maths")))
    sixteen = "fp16" if precision == "fp16" else "bf16"
    quant = base_kind(values)
    swapping = int(values.get("training.blocks_to_swap") or 0) > 0
    if known("training.fp8_base") and quant == "none":
        add(("hold the base model in fp8", {"training.fp8_base": True, **_mixed(values)},
             Cost(0.05, 2, "a slightly rounded base model")))
    if known("training.base_quantization") and quant in ("none", "fp8") and not swapping:
        add(("hold the base model in nf4 (4-bit, QLoRA)",
             {"training.base_quantization": "nf4", "training.fp8_base": False},
             Cost(0.2, 2.5, "a 4-bit base model")))
    if known("training.full_bf16", "training.full_fp16") and not values.get(f"training.full_{sixteen}"):
        add((f"keep the LoRA and optimizer state in {sixteen} (full_{sixteen})",
             {f"training.full_{sixteen}": True, "training.mixed_precision": sixteen}, Cost(0, 1, "16-bit updates")))
    if known("training.text_encoder_quantization") and not text_encoders_leave(values, trains_text) \
            and (values.get("training.text_encoder_quantization") or "none") == "none":
        add(("keep the text encoders in fp8", {"training.text_encoder_quantization": "fp8", **_mixed(values)},
             Cost(0.02, 1, "slightly rounded captions")))
    if known("training.cpu_offload_checkpointing") and values.get("training.gradient_checkpointing") \
            and not values.get("training.cpu_offload_checkpointing") and not swapping:
        add(("park checkpointed activations on the CPU", {"training.cpu_offload_checkpointing": True},
             Cost(0.15, 0, "copies over PCIe")))
    family = families.REGISTRY.get(values.get("model.family") or "")
    if known("training.blocks_to_swap") and family is not None and not family.swap_unsupported \
            and quant not in ("nf4", "int8"):
        current = int(values.get("training.blocks_to_swap") or 0)
        for count in (8, 16, 24, 35):
            if count > current:
                add((f"swap {count} transformer blocks through CPU memory",
                     {"training.blocks_to_swap": count, "training.cpu_offload_checkpointing": False},
                     _swap_cost(count)))
    if known("flux.train_blocks") and family is not None and family.train_block_groups \
            and (values.get("flux.train_blocks") or "all") == "all":
        add(("train the single-stream blocks only (flux.train_blocks: single)", {"flux.train_blocks": "single"},
             Cost(-0.1, 3, "half the layers learn")))
    if not values.get("training.cache_latents", True):
        add(("cache latents (the VAE leaves the GPU)", {"training.cache_latents": True}, Cost(-0.1, 0.5, "no crops")))
    width, height = values.get("training.max_resolution") or (512, 512)
    step = int(values.get("buckets.step") or 64)
    smaller = [max(step, int(width * 3 / 4) // step * step), max(step, int(height * 3 / 4) // step * step)]
    if smaller != [width, height]:
        add((f"train at {smaller[0]}×{smaller[1]} (max resolution)", {"training.max_resolution": smaller},
             Cost(-0.3, 4, "less detail learnt")))
    return found


def _mixed(values: Mapping[str, Any]) -> dict[str, Any]:
    return {"training.mixed_precision": "bf16"} if values.get("training.mixed_precision") == "no" else {}


def _swap_cost(count: int) -> Cost:
    return Cost(0.1 + count * 0.012, 0, "weights cross the PCIe link every step")


def ways_to_fit(values: Mapping[str, Any], known_keys: set[str] | None = None,
                parts: ModelParts | None = None, gpu_bytes: int | None = None) -> list[Fix]:
    """Every change that lowers the estimate: largest saving first, or for a card the cheapest that fit first."""
    parts = parts or model_parts(values)
    if parts is None:
        return []
    base = estimate_vram(values, parts=parts)
    fixes = []
    for label, changes, cost in _candidates(values, known_keys):
        changed = estimate_vram({**values, **changes}, parts=parts)
        saving = base.total_bytes - changed.total_bytes
        if saving > 0:
            fixes.append(Fix(label, changes, saving, cost))
    if not gpu_bytes:
        return sorted(fixes, key=lambda fix: fix.saving_bytes, reverse=True)
    need = base.total_bytes - gpu_bytes

    def rank(fix: Fix) -> tuple:
        enough = fix.saving_bytes >= need
        return (not enough, fix.cost.weight if enough else -fix.saving_bytes / fix.cost.weight)
    return sorted(fixes, key=rank)


def plan_to_fit(values: Mapping[str, Any], gpu_bytes: int, known_keys: set[str] | None = None,
                parts: ModelParts | None = None, most: int = 4) -> tuple[dict[str, Any], list[Fix]] | None:
    """The cheapest set of fixes (by summed cost, at most `most` of them) that makes the run fit
    `gpu_bytes`: ({changes}, fixes); ({}, []) when it fits already, None when nothing does."""
    from itertools import combinations

    parts = parts or model_parts(values)
    if parts is None:
        return None
    if estimate_vram(values, parts=parts).total_bytes <= gpu_bytes:
        return {}, []
    pool: dict[str, tuple[dict, Cost]] = {}
    # fixes that only make sense once checkpointing is on (offloading its activations) join the pool
    for start in (values, {**values, "training.gradient_checkpointing": True}):
        for label, changes, cost in _candidates(start, known_keys):
            pool.setdefault(label, (changes, cost))
    items = list(pool.items())
    best: tuple[float, int, dict, list] | None = None
    for size in range(1, most + 1):
        for combo in combinations(items, size):
            weight = sum(cost.weight for _, (_, cost) in combo)
            if best is not None and weight >= best[0]:
                continue
            merged = _merge([changes for _, (changes, _) in combo])
            if merged is None:
                continue
            trial = {**values, **merged}
            if int(trial.get("training.blocks_to_swap") or 0) and base_kind(trial) in ("nf4", "int8"):
                continue  # quantized layers cannot swap (settings_memory refuses it)
            total = estimate_vram(trial, parts=parts).total_bytes
            if total <= gpu_bytes:
                best = (weight, total, merged, [Fix(label, changes, 0, cost) for label, (changes, cost) in combo])
    if best is None:
        return None
    _, _, merged, fixes = best
    return {k: v for k, v in merged.items() if values.get(k) != v}, fixes


def _merge(change_sets: list[dict]) -> dict | None:
    """The union of the changes; None when two set one setting to different values."""
    merged: dict[str, Any] = {}
    for changes in change_sets:
        for key, value in changes.items():
            if key in merged and merged[key] != value:
                return None
            merged[key] = value
    return merged
