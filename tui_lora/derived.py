"""The numbers the Review screen derives from the settings and the dataset scan.

Step counts come from the engine's own scan and schedule arithmetic (`engine.plan`,
`engine.optim.numbers`), so the review shows the numbers the run will use; the file size is
counted from the model's layer shapes (`engine.lora_size`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.config import RunConfig
from engine.optim.numbers import warmup_steps as _engine_warmup_steps

from engine.lora_size import estimate_file_size


@dataclass(frozen=True)
class Derived:
    steps_per_epoch: int | None  # None: the dataset has not been scanned (or cannot be)
    epochs: int
    total_steps: int | None
    warmup_steps: int | None
    text_encoder_stop_step: int | None  # None: never stops (or unknown, see total_steps)
    scale: float  # alpha / rank
    conv_scale: float | None  # conv alpha / conv rank, for networks with conv layers
    size_bytes: int | None
    size_note: str


def warmup_steps(values: Mapping[str, Any], total: int) -> int:
    """round(warmup % × total / 100); 0 for schedules without warmup (constant, adafactor)."""
    return _engine_warmup_steps(values["optimizer.scheduler"], values["optimizer.warmup_percent"], total)


def text_encoder_stop_step(values: Mapping[str, Any], total: int) -> int | None:
    """ceil(total × stop % / 100); None when the text encoder trains to the end or not at all."""
    percent = values["training.stop_text_encoder_percent"]
    if percent <= 0 or values["optimizer.text_encoder_lr"] == 0:
        return None
    return math.ceil(total * percent / 100)


def derive(values: Mapping[str, Any], steps_per_epoch: int | None) -> Derived:
    """`values` are complete typed values (Draft.typed()); `steps_per_epoch` from the scan."""
    epochs = values["training.max_train_epochs"] or values["training.epochs"]
    total = steps_per_epoch * epochs if steps_per_epoch is not None else None
    has_conv = values["network.type"] != "lora"
    size, note = estimate_file_size(values)
    return Derived(
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        total_steps=total,
        warmup_steps=warmup_steps(values, total) if total is not None else None,
        text_encoder_stop_step=text_encoder_stop_step(values, total) if total is not None else None,
        scale=values["network.alpha"] / values["network.rank"],
        conv_scale=values["network.conv_alpha"] / values["network.conv_rank"] if has_conv else None,
        size_bytes=size,
        size_note=note,
    )


def format_bytes(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return ""


def scan_for(values: Mapping[str, Any]):
    """Scan the dataset the typed values point at, exactly as the run will (slow: call in a
    thread). Raises ImportError when the scanner is not available, so the caller can say so."""
    from engine.plan import scan_for as engine_scan_for

    return engine_scan_for(RunConfig(values))
