"""The event stream: JSON Lines the engine appends and anything (dashboard, CLI, tests) reads.

One object per line with `type`, `time` (unix seconds) and `seq`. Lines are flushed one by one so
a reader tailing the file sees each event at once; a reader must tolerate a partial last line
(the writer may be mid-write), which `EventReader` keeps until it is complete.
No torch here: the UI imports this module.

Fields by type (all optional beyond these; readers ignore what they do not know):
- run_started: run_id, elapsed_s (seconds since the engine began, as in step), output_dir, output_name, config_digest, device (text), mixed_precision
  (resolved), num_processes, batch_size (per process), gradient_accumulation_steps, seed,
  steps_per_epoch, total_steps, total_epochs, dataset {images, reg_images, concepts [{name, images,
  repeats}], buckets {"WxH": count}}, lr_curve {group: [[step, lr], ...]} (the whole schedule,
  sampled), resumed_from_step, vram_estimate {total_bytes, allocated_bytes, lines [[name, bytes]]}
  (the torch-free peak estimate; allocated_bytes compares with the measured peak).
- phase: name ("loading_model" | "caching" | "first_step" | "sampling" | "saving"), label (words for
  a person, e.g. "loading the model"), elapsed_s. Announces a stretch that may take minutes with no
  other event; its `time` is when it began. It lasts until the event that ends it: run_started ends
  loading_model, the last caching event ends caching, a step ends first_step (and any phase), a
  sample ends sampling, a checkpoint ends saving. Readers show what is happening and for how long.
- caching: stage ("latents"), done, total.
- step: the fields of `StepFields` in engine/event_types.py (the one definition, written by the engine
  and read by the dashboard): step, total_steps, epoch, total_epochs, loss, avg_loss, lr {group: value},
  it_per_s, eta_s, elapsed_s, memory {device, allocated, reserved, peak, total | rss, total} in bytes,
  gpu_util (percent, beside memory, when readable), max_norm {keys_scaled, mean, max}.
- epoch_end: epoch, total_epochs, step, avg_loss.
- checkpoint: path, bytes, step, epoch, kind ("epoch" | "manual" | "final" | "stopped" | "state" |
  "rescued": the last save, written to another folder because the output disk was full).
  `epoch` counts the epochs completed when the file was saved, as sd-scripts' train_network.py
  writes `ss_epoch`: 0 for a save inside the first epoch, N for the save at the end of epoch N
  (file `<name>-00000N`), the number of epochs for the final file. Show it as "N epochs done",
  never as the epoch in progress.
- sample: paths [..], prompts [..], step, epoch.
- warning / log: message (warning may add field, hint).
- error: message, hint, traceback_path.
- run_finished: status ("completed" | "stopped" | "failed"), outputs [paths], step, message, aborted
  (true when a second stop ended the run at once, without a final save).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable

EVENT_TYPES = (
    "run_started", "phase", "caching", "step", "epoch_end", "checkpoint", "sample", "warning", "log", "error",
    "run_finished",
)
FINAL_STATUSES = ("completed", "stopped", "failed")


class EventWriter:
    """Appends events to a file; safe to call from the training loop every step."""

    def __init__(self, path: str | os.PathLike, *, clock=time.time):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run
        self._seq = 0
        self._clock = clock
        self._lock = threading.Lock()  # an abort writes the last event from the signal watcher thread

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        with self._lock:
            self._seq += 1
            event = {"type": type, "time": round(self._clock(), 3), "seq": self._seq, **fields}
            self._file.write(json.dumps(event, default=_jsonable, separators=(",", ":")) + "\n")
            self._file.flush()
        return event

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


class EventReader:
    """Incremental reader: each `read_new()` returns the complete events added since the last call."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # empty when the data ended with a newline
        return list(_parse_lines(lines))


def _parse_lines(lines: Iterable[bytes]):
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # a torn line from a killed writer: skip it, keep reading
        if isinstance(event, dict) and "type" in event:
            yield event


def read_events(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete events in a file (a partial last line is ignored)."""
    return EventReader(path).read_new()
