"""The queue in words: one row per entry and a summary line, shared by `tui-lora queue` and the
Queue screen so both say the same thing. Reads files; no Textual."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from engine.events import read_events
from engine.queue.store import Entry, QueueState
from engine.queue.worker_claims import WorkerInfo


@dataclass
class Row:
    id: int
    position: str  # "1" for the next waiting entry, "" once started
    status: str
    name: str  # folders.output_name
    source: str  # the run file it was added from
    note: str


def _progress(entry: Entry) -> str:
    step = total = None
    for event in read_events(Path(entry.run_path) / "events.jsonl"):
        total = event.get("total_steps", total)
        step = event.get("step", step)
    if step is None:
        return "starting"
    return f"step {step}/{total}" if total else f"step {step}"


def _short(path: str) -> str:
    home = str(Path.home())
    return "~" + path[len(home):] if path.startswith(home + "/") else path


def entry_rows(state: QueueState, *, everything: bool = False) -> list[Row]:
    """The current batch (everything: every entry kept), in queue order."""
    entries = state.entries if everything else [e for e in state.entries if e.batch == state.batch or not e.finished_state]
    waiting = state.queued()
    rows = []
    for entry in entries:
        position = str(waiting.index(entry) + 1) if entry in waiting else ""
        if entry.status == "running":
            where = f" on GPU {','.join(map(str, entry.devices))}" if entry.devices else ""
            note = f"{_progress(entry)}{where} · run {entry.run_id}"
            if entry.reason:
                note += f" · {entry.reason}"
        elif entry.status == "queued":
            note = entry.reason or ("next" if position == "1" else f"added {time.strftime('%H:%M', time.localtime(entry.added))}")
            if entry.processes > 1:
                note = f"needs {entry.processes} GPUs · {note}"
        else:
            note = entry.reason
        if entry.history and entry.status != "queued":
            note = f"resumed after a lost run · {note}"
        rows.append(Row(entry.id, position, entry.status, entry.name, _short(entry.source), note))
    return rows


def summary_line(state: QueueState, workers: list[WorkerInfo]) -> str:
    batch = state.current_batch()
    done = sum(1 for e in batch if e.finished_state)
    parts = [f"{len(state.queued())} waiting", f"{len(state.running())} running", f"{done} finished"]
    if workers:
        parts.append("worker " + ", ".join(f"pid {w.pid} ({w.devices_text})" for w in workers))
    elif state.queued() and not state.paused:
        parts.append("no worker (`tui-lora queue run` starts one)")
    else:
        parts.append("no worker")
    text = "queue: " + " · ".join(parts)
    if state.paused:
        text += "\npaused" + (f": {state.pause_reason}" if state.pause_reason else "") + " — `tui-lora queue resume` goes on"
    return text


def queue_label(state: QueueState, run_id: str) -> str:
    """`queue 2/5` for the run of a queue entry ('' when the run is not from the queue)."""
    entry = state.find_run(run_id)
    if entry is None:
        return ""
    k, total = state.position(entry)
    return f"queue {k}/{total}"
