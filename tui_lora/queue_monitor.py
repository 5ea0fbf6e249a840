"""`tui-lora monitor` when the queue is working: the dashboard of the queue's run, with `queue 2/5`
in its header, moving on to the next run when one ends.

A thread reads the queue's state once a second and posts what it found; the app swaps the
dashboard when the run it shows has finished and the queue has started another.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from textual import events, work
from textual.message import Message
from textual.worker import get_current_worker

from engine.queue.store import Entry, QueueState, QueueTrouble, read_state

from .dashboard.panels import RunHeader
from .dashboard.screen import DashboardApp, DashboardScreen
from .queue_rows import queue_label

FOLLOW_S = 1.0


class QueueDashboardScreen(DashboardScreen):
    """A dashboard whose header also says where the run stands in the queue."""

    CSS_PATH = str(Path(__file__).parent / "dashboard" / DashboardScreen.CSS_PATH)  # relative to the base's module

    def __init__(self, run_dir: str | Path, label: str = "", **kwargs) -> None:
        super().__init__(run_dir, **kwargs)
        self.label = label

    def on_mount(self) -> None:  # Textual then runs DashboardScreen.on_mount too
        self.set_label(self.label)

    def set_label(self, label: str) -> None:
        self.label = label
        header = self.query_one(RunHeader)
        if header.note != label:
            header.note = label
            header.refresh()


class QueueSeen(Message):
    def __init__(self, label: str, next_entry: Entry | None, next_label: str) -> None:
        super().__init__()
        self.label = label
        self.next_entry = next_entry
        self.next_label = next_label


class QueueMonitorApp(DashboardApp):
    """`monitor` that follows the queue from one run to the next."""

    TITLE = "tui-lora monitor (queue)"

    def __init__(self, entry: Entry, label: str, *, mouse: bool = True) -> None:
        super().__init__(entry.run_path, mouse=mouse)
        self.run_id = entry.run_id
        self.label = label

    def on_mount(self, event: events.Mount) -> None:
        event.prevent_default()  # instead of DashboardApp's plain dashboard
        self.use_wizard_theme()
        self.push_screen(QueueDashboardScreen(self.run_dir, self.label), self.exit)
        self.follow_queue()

    @work(thread=True, exclusive=True, exit_on_error=False, group="queue-follow")
    def follow_queue(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                state = read_state()
            except QueueTrouble:  # a damaged queue file: the run on screen goes on being shown
                time.sleep(FOLLOW_S)
                continue
            following = [e for e in state.running() if e.run_id != self.run_id and Path(e.run_path).is_dir()]
            upcoming = following[0] if following else None
            self.post_message(QueueSeen(queue_label(state, self.run_id), upcoming,
                                        queue_label(state, upcoming.run_id) if upcoming else ""))
            time.sleep(FOLLOW_S)

    def on_queue_seen(self, message: QueueSeen) -> None:
        screen = self.screen
        if not isinstance(screen, QueueDashboardScreen):
            return  # a dialog is open; look again next time
        screen.set_label(message.label)
        if message.next_entry is None or not screen.state.finished:
            return
        ended = f"{screen.state.output_name or self.run_id} {screen.state.status}"
        self.run_id, self.run_dir = message.next_entry.run_id, Path(message.next_entry.run_path)
        self.pop_screen()
        self.push_screen(QueueDashboardScreen(self.run_dir, message.next_label), self.exit)
        self.notify(f"{ended}; now showing {message.next_entry.name} ({message.next_label})", title="Queue")


def queue_entry_to_follow(state: QueueState) -> Entry | None:
    """The queue run `monitor` should show: a running one, else (while a worker is still busy
    with the queue) the one that ran last."""
    from engine.queue.worker_claims import live_workers
    from engine.runs import RunDir, run_status

    running = [e for e in state.running() if Path(e.run_path).is_dir()]
    alive = [e for e in running if run_status(RunDir(Path(e.run_path))) == "running"]
    if alive or running:
        return (alive or running)[0]
    if state.queued() and live_workers():
        started = [e for e in state.current_batch() if e.run_path and Path(e.run_path).is_dir()]
        return started[-1] if started else None
    return None


def monitor_queue(*, mouse: bool = True) -> int | None:
    """Follow the queue when it is working; None when there is nothing to follow (plain monitor)."""
    from engine.runs import find_run

    try:
        state = read_state()
    except QueueTrouble:  # `tui-lora queue` says what is wrong with it; the plain monitor still works
        return None
    entry = queue_entry_to_follow(state)
    if entry is None:
        return None
    newest = find_run(None)
    if newest is not None and newest.status == "running" and state.find_run(newest.run_id) is None:
        return None  # a run started outside the queue is newer: monitor shows it as before
    label = queue_label(state, entry.run_id)
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        from engine.events import read_events
        from engine.runs import RunDir, run_status

        from .dashboard import text_summary
        from .dashboard.reducer import apply_run_status, build_state

        run = RunDir(Path(entry.run_path))
        events = read_events(run.events)
        print(label)
        print(text_summary(apply_run_status(build_state(events), run_status(run, events))))
        return 0
    from .dashboard import farewell

    app = QueueMonitorApp(entry, label, mouse=mouse)
    print(farewell(app.run(), app.run_id))
    return 0
