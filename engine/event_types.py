"""The typed contract of the events whose layout two sides must agree on: the engine writes them
with `to_fields()`, the dashboard reads them with `parse()`. One definition, so a field cannot
move on one side only (the GPU load once sat inside `memory` while the dashboard looked for it
beside it, and nothing noticed). No torch here: the UI imports this module.

`parse` is forgiving, as every reader of the stream must be (engine/events.py): a field of the
wrong type reads as absent, never as an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def _number(value: Any) -> float | None:
    # NaN stays: a NaN loss is news the dashboard shows
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _whole(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and math.isfinite(number) else None


def _numbers(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {str(k): float(v) for k, v in value.items() if _number(v) is not None}


@dataclass
class MemoryFields:
    """`step.memory`, in bytes: on a GPU allocated/reserved/peak/total, on the CPU rss/total."""

    device: str = ""  # "cuda" | "cpu" | another torch device type
    allocated: int | None = None
    reserved: int | None = None
    peak: int | None = None
    total: int | None = None
    rss: int | None = None

    def to_fields(self) -> dict[str, Any]:
        return {"device": self.device, **{name: value for name, value in self.__dict__.items()
                                          if name != "device" and value is not None}}

    @classmethod
    def parse(cls, data: Any) -> "MemoryFields | None":
        if not isinstance(data, dict):
            return None
        return cls(str(data.get("device") or ""), *(_whole(data.get(name)) for name in
                                                    ("allocated", "reserved", "peak", "total", "rss")))


@dataclass
class StepFields:
    """A `step` event. `gpu_util` (percent busy, when NVML can tell) sits beside `memory`, not in it."""

    step: int
    total_steps: int
    epoch: int  # counting from 1: the epoch in progress
    total_epochs: int
    loss: float | None = None
    avg_loss: float | None = None
    lr: dict[str, float] = field(default_factory=dict)
    it_per_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None
    memory: MemoryFields | None = None
    gpu_util: float | None = None
    max_norm: dict[str, float] | None = None  # keys_scaled, mean, max (scale_weight_norms only)

    def to_fields(self) -> dict[str, Any]:
        fields = {name: value for name, value in self.__dict__.items() if name not in ("memory", "gpu_util", "max_norm")}
        if self.memory is not None:
            fields["memory"] = self.memory.to_fields()
        if self.gpu_util is not None:
            fields["gpu_util"] = self.gpu_util
        if self.max_norm is not None:
            fields["max_norm"] = self.max_norm
        return fields

    @classmethod
    def parse(cls, event: dict[str, Any]) -> "StepFields":
        return cls(
            step=_whole(event.get("step")) or 0, total_steps=_whole(event.get("total_steps")) or 0,
            epoch=_whole(event.get("epoch")) or 0, total_epochs=_whole(event.get("total_epochs")) or 0,
            loss=_number(event.get("loss")), avg_loss=_number(event.get("avg_loss")), lr=_numbers(event.get("lr")),
            it_per_s=_number(event.get("it_per_s")), eta_s=_number(event.get("eta_s")),
            elapsed_s=_number(event.get("elapsed_s")), memory=MemoryFields.parse(event.get("memory")),
            gpu_util=_number(event.get("gpu_util")),
            max_norm=_numbers(event["max_norm"]) if isinstance(event.get("max_norm"), dict) else None)
