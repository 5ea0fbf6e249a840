"""The dashboard's state as a function of the event stream (see engine/events.py for the fields).

`apply_event(state, event)` folds one event into a `DashboardState`; `build_state(events)` folds
a whole list. Deterministic and free of I/O and Textual, so `monitor` on a finished run shows the
same numbers the live view showed, and tests can assert them directly. For speed the reducer
updates the state in place (histories are bounded) and returns it.

Two inputs are not events: liveness (when a stream stops without `run_finished`,
`apply_run_status(state, run_status(...))` marks the run lost once its process is gone) and the
wall clock (`state.now`, set by the screen each tick), which keeps elapsed time and "step N in
progress for m:ss" moving while the engine is busy and writes nothing.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from engine.event_types import MemoryFields, StepFields

from .charts import BoundedSeries
from .formatting import epochs_done, file_name, size
from .parts import (LOSS_SMOOTHING, Caching, Checkpoint, LearningRates, LogLine, Loss, Memory, Outcome, Phase,
                    Progress, RunError, Sample)

__all__ = ["DashboardState", "apply_event", "apply_run_status", "build_state", "FINAL", "LOG_LINES_KEPT",
           "LOSS_SMOOTHING", "Caching", "Checkpoint", "LearningRates", "LogLine", "Loss", "Memory", "Outcome",
           "Phase", "Progress", "RunError", "Sample", "current_activity", "elapsed_now"]

FINAL = ("completed", "stopped", "failed")
LOG_LINES_KEPT = 200
LR_CURVE_POINTS = 1024
SLOW_STEP_S = 5.0  # a step taking longer than this (and 3x the usual) is shown as "in progress for m:ss"


@dataclass
class DashboardState:
    status: str = "waiting"  # waiting | running | completed | stopped | failed | lost
    run_id: str = ""
    output_dir: str = ""
    output_name: str = ""
    device: str = ""
    mixed_precision: str = ""
    num_processes: int = 1
    batch_size: int | None = None  # per process
    grad_accumulation: int = 1
    seed: int | None = None
    dataset_images: int | None = None
    reg_images: int | None = None
    bucket_count: int | None = None
    resumed_from_step: int | None = None
    vram_estimate: int | None = None  # estimated peak allocated bytes (run_started), beside the measured peak
    started_at: float | None = None
    last_event_at: float | None = None
    clock_origin: float | None = None  # unix time the engine began (its events' elapsed_s count from it)
    last_step_at: float | None = None
    phase: Phase | None = None  # a long stretch the engine announced and has not finished yet
    now: float | None = None  # the wall clock, set by whoever draws the state (None: events only)
    progress: Progress = field(default_factory=Progress)
    caching: Caching | None = None
    loss: Loss = field(default_factory=Loss)
    lr: LearningRates = field(default_factory=LearningRates)
    memory: Memory = field(default_factory=Memory)
    max_norm: dict[str, float] | None = None
    log: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LOG_LINES_KEPT))
    warnings_seen: int = 0
    checkpoint: Checkpoint | None = None
    checkpoints_saved: int = 0
    sample: Sample | None = None
    error: RunError | None = None
    outcome: Outcome | None = None
    events_seen: int = 0

    @property
    def finished(self) -> bool:
        """No more events will come: the run ended (normally or not) or its process is gone."""
        return self.status in FINAL or self.status == "lost"

    @property
    def live(self) -> bool:
        return not self.finished

    @property
    def global_batch(self) -> int | None:
        if self.batch_size is None:
            return None
        return self.batch_size * max(1, self.num_processes) * max(1, self.grad_accumulation)


def build_state(events: Iterable[dict[str, Any]]) -> DashboardState:
    state = DashboardState()
    for event in events:
        apply_event(state, event)
    return state


def apply_event(state: DashboardState, event: dict[str, Any]) -> DashboardState:
    """Fold one event into the state; unknown types and malformed fields are ignored."""
    handler = _HANDLERS.get(str(event.get("type")))
    state.events_seen += 1
    when = _num(event, "time")
    if when is not None:
        state.last_event_at = when
        # The run began at its earliest known moment: the first event, or earlier by its elapsed_s.
        elapsed = _num(event, "elapsed_s")
        origin = when - elapsed if elapsed is not None else when
        state.clock_origin = origin if state.clock_origin is None else min(state.clock_origin, origin)
    if handler is not None:
        handler(state, event)
    if state.status in ("waiting", "lost") and event.get("type") != "run_finished":
        # Any event proves the engine is alive (a "lost" verdict can race the last write).
        state.status = "running"
        state.outcome = None
    return state


def elapsed_now(state: DashboardState) -> float | None:
    """Seconds since the engine began: from the wall clock while the run is live, else from its events."""
    if state.live and state.now is not None and state.clock_origin is not None:
        return max(0.0, state.now - state.clock_origin)
    return state.progress.elapsed_s


def current_activity(state: DashboardState) -> tuple[str, float] | None:
    """What the engine is busy with that no event reports yet, and for how many seconds.

    An announced phase (loading the model, caching, the first step, sampling, saving), or a step
    that takes far longer than usual. None when the run is ended, the clock unknown, or all is routine.
    """
    if not state.live or state.now is None:
        return None
    if state.phase is not None:
        phase = state.phase
        label = phase.label
        if phase.total:
            label += f" {phase.done or 0}/{phase.total}"
        return label, max(0.0, state.now - phase.since)
    progress = state.progress
    if state.last_step_at is None or (progress.total_steps and progress.step >= progress.total_steps):
        return None
    waited = state.now - state.last_step_at
    usual = 1.0 / progress.it_per_s if progress.it_per_s else 0.0
    if waited >= max(SLOW_STEP_S, 3 * usual):
        return f"step {progress.step + 1} in progress", waited
    return None


def apply_run_status(state: DashboardState, status: str) -> DashboardState:
    """Take liveness from `engine.runs.run_status`: a stream without run_finished whose pid is gone is lost."""
    if status == "lost" and not state.finished:
        state.status = "lost"
        state.progress.eta_s = None
        state.outcome = Outcome("lost", step=state.progress.step,
                                message="The engine process is gone and wrote no final event (killed or crashed).")
        _log(state, None, "error", "run lost: the engine process ended without a final event")
    return state


# --- handlers, one per event type ---------------------------------------------------------------

def _on_run_started(state: DashboardState, event: dict[str, Any]) -> None:
    state.started_at = _num(event, "time")
    _end_phase(state, "loading_model")
    for name in ("run_id", "output_dir", "output_name", "device", "mixed_precision"):
        if event.get(name) is not None:
            setattr(state, name, str(event[name]))
    state.num_processes = _int(event, "num_processes") or 1
    state.batch_size = _int(event, "batch_size")
    state.grad_accumulation = _int(event, "gradient_accumulation_steps") or 1
    state.seed = _int(event, "seed")
    state.resumed_from_step = _int(event, "resumed_from_step")
    estimate = event.get("vram_estimate") if isinstance(event.get("vram_estimate"), dict) else {}
    state.vram_estimate = _int(estimate, "allocated_bytes")
    progress = state.progress
    progress.total_steps = _int(event, "total_steps") or progress.total_steps
    progress.total_epochs = _int(event, "total_epochs") or progress.total_epochs
    progress.steps_per_epoch = _int(event, "steps_per_epoch") or progress.steps_per_epoch
    if state.resumed_from_step:
        progress.step = state.resumed_from_step
    dataset = event.get("dataset") if isinstance(event.get("dataset"), dict) else {}
    state.dataset_images = _int(dataset, "images")
    state.reg_images = _int(dataset, "reg_images")
    if isinstance(dataset.get("buckets"), dict):
        state.bucket_count = len(dataset["buckets"])
    curves = event.get("lr_curve")
    if isinstance(curves, dict):
        for group, points in curves.items():
            state.lr.curves[str(group)] = _curve(points)
    where = f" on {state.device}" if state.device else ""
    precision = f" ({state.mixed_precision})" if state.mixed_precision not in ("", "no") else ""
    steps = f", {progress.total_steps} steps" if progress.total_steps else ""
    resumed = f", resumed from step {state.resumed_from_step}" if state.resumed_from_step else ""
    _log(state, event, "info", f"started{where}{precision}{steps}{resumed}")


def _on_caching(state: DashboardState, event: dict[str, Any]) -> None:
    caching = state.caching or Caching()
    caching.stage = str(event.get("stage") or caching.stage)
    caching.done = _int(event, "done") or 0
    caching.total = _int(event, "total") or caching.total
    state.caching = caching
    when = _num(event, "time")
    if state.progress.step == 0 and when is not None and state.started_at is not None:
        state.progress.elapsed_s = when - state.started_at  # no step has reported its own clock yet
    if state.phase is not None and state.phase.name == "caching":
        state.phase.done, state.phase.total = caching.done, caching.total
    if caching.total and caching.done >= caching.total:
        _end_phase(state, "caching")
        _log(state, event, "info", f"cached {caching.stage} for {caching.total} images")


def _on_step(state: DashboardState, event: dict[str, Any]) -> None:
    step = StepFields.parse(event)  # the engine writes it from the same class: one layout
    progress = state.progress
    progress.step = step.step or progress.step
    progress.total_steps = step.total_steps or progress.total_steps
    progress.epoch = step.epoch or progress.epoch
    progress.total_epochs = step.total_epochs or progress.total_epochs
    progress.it_per_s = step.it_per_s
    progress.elapsed_s = step.elapsed_s
    eta = step.eta_s
    if eta is None and progress.it_per_s and progress.total_steps:
        eta = max(0, progress.total_steps - progress.step) / progress.it_per_s
    progress.eta_s = eta
    if state.caching is not None and state.caching.active:
        state.caching.done = state.caching.total  # training started, so caching is over
    state.phase = None  # a step ends whatever came before it
    state.last_step_at = _num(event, "time")
    if step.loss is not None:
        state.loss.add(progress.step, step.loss)
    if step.avg_loss is not None:
        state.loss.average = step.avg_loss
    for group, lr in step.lr.items():
        state.lr.current[group] = lr
        if group not in state.lr.curves:
            state.lr.history.setdefault(group, BoundedSeries()).add(progress.step, lr)
    if step.memory is not None:
        _read_memory(state.memory, step.memory)
    if step.gpu_util is not None:
        state.memory.gpu_util = step.gpu_util
    if step.max_norm is not None:
        state.max_norm = step.max_norm


def _read_memory(memory: Memory, reading: MemoryFields) -> None:
    memory.device = reading.device or memory.device or ""
    for name in ("allocated", "reserved", "peak", "total", "rss"):
        value = getattr(reading, name)
        if value is not None:
            setattr(memory, name, value)


def _on_epoch_end(state: DashboardState, event: dict[str, Any]) -> None:
    epoch = _int(event, "epoch")
    total = _int(event, "total_epochs") or state.progress.total_epochs
    if epoch:
        state.progress.epoch = max(state.progress.epoch, epoch)
    average = _num(event, "avg_loss")
    tail = f", average loss {average:.4f}" if average is not None and math.isfinite(average) else ""
    _log(state, event, "info", f"epoch {epoch}/{total or '?'} finished{tail}")


def _on_phase(state: DashboardState, event: dict[str, Any]) -> None:
    when = _num(event, "time")
    name = str(event.get("name") or "")
    if when is None or not name:
        return
    label = str(event.get("label") or name.replace("_", " "))
    state.phase = Phase(name, label, when, _int(event, "done"), _int(event, "total"))
    _log(state, event, "info", label)


def _end_phase(state: DashboardState, name: str) -> None:
    if state.phase is not None and state.phase.name == name:
        state.phase = None


def _on_checkpoint(state: DashboardState, event: dict[str, Any]) -> None:
    _end_phase(state, "saving")
    path = str(event.get("path") or "")
    state.checkpoint = Checkpoint(path, _int(event, "bytes"), _int(event, "step"), _int(event, "epoch"),
                                  str(event.get("kind") or ""))
    state.checkpoints_saved += 1
    facts = [size(state.checkpoint.bytes) if state.checkpoint.bytes is not None else "",
             f"step {state.checkpoint.step}" if state.checkpoint.step is not None else "",
             epochs_done(state.checkpoint.epoch)]
    detail = ", ".join(fact for fact in facts if fact)
    _log(state, event, "info", f"saved {file_name(path)}" + (f" ({detail})" if detail else ""))


def _on_sample(state: DashboardState, event: dict[str, Any]) -> None:
    _end_phase(state, "sampling")
    paths, prompts = _strings(event.get("paths")), _strings(event.get("prompts"))
    state.sample = Sample(paths, prompts, _int(event, "step"), _int(event, "epoch"))
    at = f" at step {state.sample.step}" if state.sample.step is not None else ""
    _log(state, event, "info", f"{len(paths)} sample image{'s' if len(paths) != 1 else ''}{at}")


def _on_warning(state: DashboardState, event: dict[str, Any]) -> None:
    state.warnings_seen += 1
    text = str(event.get("message") or "warning")
    if event.get("field"):
        text = f"{event['field']}: {text}"
    if event.get("hint"):
        text += f" ({event['hint']})"
    _log(state, event, "warning", text)


def _on_log(state: DashboardState, event: dict[str, Any]) -> None:
    _log(state, event, "info", str(event.get("message") or ""))


def _on_error(state: DashboardState, event: dict[str, Any]) -> None:
    state.error = RunError(str(event.get("message") or "unknown error"), str(event.get("hint") or ""),
                           str(event.get("traceback_path") or ""))
    _log(state, event, "error", state.error.message)
    if state.error.hint:
        _log(state, event, "error", f"hint: {state.error.hint}")


def _on_run_finished(state: DashboardState, event: dict[str, Any]) -> None:
    status = event.get("status")
    status = status if status in FINAL else "failed"
    outputs = _strings(event.get("outputs"))
    step = _int(event, "step")
    if step is not None:
        state.progress.step = max(state.progress.step, step)
    state.status = status
    state.phase = None
    state.outcome = Outcome(status, outputs, str(event.get("message") or ""), state.progress.step)
    state.progress.eta_s = 0.0 if status == "completed" else None
    when = _num(event, "time")
    origin = state.clock_origin if state.clock_origin is not None else state.started_at
    if origin is not None and when is not None:
        state.progress.elapsed_s = max(state.progress.elapsed_s or 0.0, when - origin)
    message = f": {state.outcome.message}" if state.outcome.message else ""
    _log(state, event, "error" if status == "failed" else "info", f"run {status}{message}")


_HANDLERS = {
    "run_started": _on_run_started,
    "caching": _on_caching,
    "phase": _on_phase,
    "step": _on_step,
    "epoch_end": _on_epoch_end,
    "checkpoint": _on_checkpoint,
    "sample": _on_sample,
    "warning": _on_warning,
    "log": _on_log,
    "error": _on_error,
    "run_finished": _on_run_finished,
}


# --- small readers that never raise on a malformed field ----------------------------------------

def _log(state: DashboardState, event: dict[str, Any] | None, level: str, text: str) -> None:
    when = _num(event, "time") if event is not None else state.last_event_at
    # the clock the elapsed time and the result use (the engine's start), so "0:39" means one moment
    origin = state.clock_origin if state.clock_origin is not None else state.started_at
    offset = when - origin if when is not None and origin is not None else None
    state.log.append(LogLine(offset, level, text))


def _num(fields: dict[str, Any], name: str) -> float | None:
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(fields: dict[str, Any], name: str) -> int | None:
    value = _num(fields, name)
    return int(value) if value is not None and math.isfinite(value) else None


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value if item] if isinstance(value, list) else []


def _curve(points: Any) -> list[tuple[float, float]]:
    curve = []
    for point in points if isinstance(points, list) else []:
        if isinstance(point, (list, tuple)) and len(point) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in point):
            curve.append((float(point[0]), float(point[1])))
    curve.sort()
    if len(curve) > LR_CURVE_POINTS:  # keep memory bounded whatever the engine sends
        stride = math.ceil(len(curve) / LR_CURVE_POINTS)
        curve = curve[::stride] + ([curve[-1]] if (len(curve) - 1) % stride else [])
    return curve
