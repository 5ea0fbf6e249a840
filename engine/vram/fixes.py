"""Changes that make a run fit, each with the memory it saves, best first.

Each fix is a set of setting values the wizard can apply with one key; its saving is the drop
of the estimated peak when only that change is made, so the ranking is by real effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..config.text_encoder import text_encoder_trained
from .estimate import estimate_vram
from .optimizer_state import is_eight_bit
from .parts import ModelParts, model_parts

_EIGHT_BIT_OF = {"AdamW": "AdamW8bit", "Lion": "Lion8bit"}


@dataclass
class Fix:
    label: str
    changes: dict[str, Any]
    saving_bytes: int


def candidate_changes(values: Mapping[str, Any], known_keys: set[str] | None = None) -> list[tuple[str, dict]]:
    """Possible changes for these values; settings not in `known_keys` (the schema) are never offered."""
    def known(key: str) -> bool:
        return known_keys is None or key in known_keys

    found: list[tuple[str, dict]] = []
    if not values.get("training.gradient_checkpointing"):
        found.append(("turn on gradient checkpointing (slower steps)", {"training.gradient_checkpointing": True}))
    name = values.get("optimizer.name") or "AdamW8bit"
    if not is_eight_bit(name) and name in _EIGHT_BIT_OF:
        found.append((f"use the 8-bit optimizer {_EIGHT_BIT_OF[name]}", {"optimizer.name": _EIGHT_BIT_OF[name]}))
    elif not is_eight_bit(name) and name not in ("Adafactor", "SGDNesterov"):
        found.append(("use the 8-bit optimizer AdamW8bit", {"optimizer.name": "AdamW8bit"}))
    if known("training.cache_text_encoder_outputs") and not values.get("training.cache_text_encoder_outputs"):
        found.append(("cache text-encoder outputs (trains the UNet only)",
                      {"training.cache_text_encoder_outputs": True, "optimizer.text_encoder_lr": 0.0}))
    else:
        if text_encoder_trained(values):
            found.append(("train the UNet only (text_encoder_lr 0)", {"optimizer.text_encoder_lr": 0.0}))
    batch = int(values.get("training.batch_size") or 1)
    if batch > 1:
        accumulation = int(values.get("training.gradient_accumulation_steps") or 1)
        half = batch // 2
        found.append((f"batch {half} × accumulation {accumulation * batch // half} (same effective batch)",
                      {"training.batch_size": half, "training.gradient_accumulation_steps": accumulation * batch // half}))
    if known("training.fp8_base") and not values.get("training.fp8_base"):
        found.append(("hold the base model in fp8", {"training.fp8_base": True}))
    if values.get("training.mixed_precision") == "no":
        found.append(("train in bf16 mixed precision", {"training.mixed_precision": "bf16"}))
    if not values.get("training.cache_latents", True):
        found.append(("cache latents (the VAE leaves the GPU)", {"training.cache_latents": True}))
    width, height = values.get("training.max_resolution") or (512, 512)
    step = int(values.get("buckets.step") or 64)
    smaller = [max(step, int(width * 3 / 4) // step * step), max(step, int(height * 3 / 4) // step * step)]
    if smaller != [width, height]:
        found.append((f"train at {smaller[0]}×{smaller[1]} (max resolution)", {"training.max_resolution": smaller}))
    return found


def ways_to_fit(values: Mapping[str, Any], known_keys: set[str] | None = None,
                parts: ModelParts | None = None) -> list[Fix]:
    """Every change that lowers the estimate, largest saving first."""
    parts = parts or model_parts(values)
    if parts is None:
        return []
    base = estimate_vram(values, parts=parts)
    fixes = []
    for label, changes in candidate_changes(values, known_keys):
        changed = estimate_vram({**values, **changes}, parts=parts)
        saving = base.total_bytes - changed.total_bytes
        if saving > 0:
            fixes.append(Fix(label, changes, saving))
    return sorted(fixes, key=lambda fix: fix.saving_bytes, reverse=True)
