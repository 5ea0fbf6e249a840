"""The pieces a `DashboardState` is made of, each with the few numbers derived from it.

Plain dataclasses (no Textual, no I/O); `reducer.py` fills them from events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .charts import BoundedSeries, interpolate

LOSS_SMOOTHING = 0.9  # EMA weight of the past, bias-corrected like TensorBoard's smoothing


@dataclass
class Progress:
    step: int = 0
    total_steps: int | None = None
    epoch: int = 0
    total_epochs: int | None = None
    steps_per_epoch: int | None = None
    it_per_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.step / self.total_steps) if self.total_steps else None

    @property
    def epoch_steps_done(self) -> int | None:
        """Steps done inside the current epoch (1-based epochs)."""
        if not self.steps_per_epoch or self.epoch <= 0:
            return None
        return max(0, min(self.steps_per_epoch, self.step - (self.epoch - 1) * self.steps_per_epoch))


@dataclass
class Phase:
    """A long stretch between events (loading the model, caching, the first step, sampling, saving)."""

    name: str
    label: str
    since: float  # unix time it began (the event's time)
    done: int | None = None  # for phases that count (caching i/N)
    total: int | None = None


@dataclass
class Caching:
    stage: str = "latents"
    done: int = 0
    total: int = 0

    @property
    def active(self) -> bool:
        return self.total > 0 and self.done < self.total


@dataclass
class Loss:
    current: float | None = None
    smoothed: float | None = None
    average: float | None = None  # the engine's running average (avg_loss)
    minimum: float | None = None
    history: BoundedSeries = field(default_factory=BoundedSeries)
    _ema: float = 0.0
    _ema_count: int = 0

    def add(self, step: int, value: float) -> None:
        self.current = value
        if not math.isfinite(value):
            return  # a NaN/inf loss is shown, but must not poison the EMA or the chart
        self._ema = LOSS_SMOOTHING * self._ema + (1 - LOSS_SMOOTHING) * value
        self._ema_count += 1
        self.smoothed = self._ema / (1 - LOSS_SMOOTHING ** self._ema_count)
        self.minimum = value if self.minimum is None else min(self.minimum, value)
        self.history.add(step, value)


@dataclass
class LearningRates:
    current: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # the whole schedule
    history: dict[str, BoundedSeries] = field(default_factory=dict)  # seen values, when no curve

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys([*self.curves, *self.current]))

    def scheduled(self, group: str, step: float) -> float | None:
        """The schedule's value at `step` (None without a curve for that group)."""
        return interpolate(self.curves.get(group, []), step)


@dataclass
class Memory:
    device: str | None = None  # "cuda" | "cpu" | other torch device types
    allocated: int | None = None
    reserved: int | None = None
    peak: int | None = None
    total: int | None = None
    rss: int | None = None
    gpu_util: float | None = None

    @property
    def on_cpu(self) -> bool:
        return self.device == "cpu"


@dataclass
class Checkpoint:
    path: str
    bytes: int | None = None
    step: int | None = None
    epoch: int | None = None
    kind: str = ""


@dataclass
class Sample:
    paths: list[str]
    prompts: list[str]
    step: int | None = None
    epoch: int | None = None


@dataclass
class LogLine:
    time: float | None  # seconds since the run started, when known
    level: str  # "info" | "warning" | "error"
    text: str


@dataclass
class Outcome:
    """How the run ended: set by run_finished (or by liveness for lost runs)."""

    status: str
    outputs: list[str] = field(default_factory=list)
    message: str = ""
    step: int | None = None


@dataclass
class RunError:
    message: str
    hint: str = ""
    traceback_path: str = ""
