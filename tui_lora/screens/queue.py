"""The Queue screen: waiting, running and finished runs; reorder and remove with keys, pause and
resume, and open the running run's dashboard.

A thread worker reads the queue's state (and each running entry's events) once a second and
posts rows; the screen only draws them. Changes go through the queue's locked transactions, the
same ones `tui-lora queue` uses, so the screen and a shell never undo each other's edits.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from engine.queue.store import QueueTrouble, move_entry, read_state, transaction

from ..queue_rows import Row, entry_rows, queue_label, summary_line
from ..widgets.key_bar import KeyBar

REFRESH_S = 1.0
STATUS_WORDS = {"running": "$accent", "completed": "$success", "failed": "$error", "lost": "$error",
                "skipped": "$warning", "stopped": "$warning", "queued": ""}


class QueueRead(Message):
    def __init__(self, rows: list[Row], summary: str) -> None:
        super().__init__()
        self.rows = rows
        self.summary = summary


class QueueScreen(Screen):
    DEFAULT_CSS = """
    QueueScreen #queue-title { height: auto; padding: 0 1; }
    QueueScreen #queue-summary { height: auto; padding: 0 1; color: $text-muted; }
    QueueScreen DataTable { height: 1fr; margin: 1 0 0 0; }
    QueueScreen #queue-note { height: auto; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open", "Open dashboard"),
        Binding("left_square_bracket", "move(-1)", "Move up", key_display="["),
        Binding("right_square_bracket", "move(1)", "Move down", key_display="]"),
        Binding("x,delete", "remove", "Remove", key_display="x"),
        Binding("p", "pause", "Pause/resume"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self._force = False  # redraw on the next read even when nothing changed

    def compose(self) -> ComposeResult:
        yield Static(Content.assemble(("Run queue", "bold $accent"), "  ",
                                      ("runs train one after another, also after you close the terminal", "dim")),
                     id="queue-title")
        yield Static(id="queue-summary")
        table = DataTable(id="queue-table", cursor_type="row", zebra_stripes=False)
        table.add_column("ID", width=3)
        table.add_column("#", width=2)
        table.add_column("Status", width=9)
        table.add_column("Run", width=16)
        table.add_column("Note")
        yield table
        yield Static(id="queue-note")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.read_queue()

    # --- reading (a thread; the only code here that touches files) ---------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="queue-read")
    def read_queue(self) -> None:
        from engine.queue.worker_claims import live_workers

        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                state = read_state()
                self.post_message(QueueRead(entry_rows(state), summary_line(state, live_workers())))
            except (OSError, QueueTrouble) as exc:
                self.post_message(QueueRead([], f"cannot read the queue: {exc}"))
            time.sleep(REFRESH_S)

    def on_queue_read(self, message: QueueRead) -> None:
        self.query_one("#queue-summary", Static).update(Content(message.summary))
        self.query_one("#queue-note", Static).update(
            Content("" if message.rows else "Nothing queued. On the Review step, 'Add to queue' (F6) puts a run "
                    "here; or run `tui-lora queue add run.yaml`."))
        if not self._force and [r.__dict__ for r in message.rows] == [r.__dict__ for r in self.rows]:
            return
        self._force = False
        table = self.query_one(DataTable)
        selected = self.selected()
        self.rows = message.rows
        table.clear()
        for row in self.rows:
            style = STATUS_WORDS.get(row.status, "")
            table.add_row(str(row.id), row.position, Content.styled(row.status, style) if style else row.status,
                          row.name, row.note, key=str(row.id))
        if selected is not None and any(r.id == selected.id for r in self.rows):
            table.move_cursor(row=table.get_row_index(str(selected.id)))

    def selected(self) -> Row | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def refresh_now(self) -> None:
        self._force = True
        self.read_queue()

    # --- keys -------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss()

    def action_move(self, step: int) -> None:
        row = self.selected()
        if row is None or row.status != "queued":
            self.notify("Only waiting runs can be moved.", severity="warning")
            return
        try:
            with transaction() as state:
                entry = state.get(row.id)
                if entry is None or entry.status != "queued":
                    return
                move_entry(state, entry, state.queued().index(entry) + 1 + step)
        except QueueTrouble as exc:
            self.notify(str(exc), severity="error")
        self.refresh_now()

    def action_remove(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row.status == "running":
            self.notify("This run is training: open its dashboard (Enter) and stop it (s); the queue then goes on.",
                        severity="warning")
            return
        try:
            with transaction() as state:
                entry = state.get(row.id)
                if entry is not None and entry.status != "running":
                    state.entries.remove(entry)
                    if entry.status == "queued":
                        Path(entry.snapshot).unlink(missing_ok=True)
        except QueueTrouble as exc:
            self.notify(str(exc), severity="error")
            return  # nothing was removed: the queue's file could not be read or written
        self.notify(f"Removed #{row.id} from the queue.")
        self.refresh_now()

    def action_pause(self) -> None:
        from ..queueing import ensure_worker

        try:
            with transaction() as state:
                state.paused = not state.paused
                state.pause_reason = "paused by the user" if state.paused else ""
                paused, waiting = state.paused, bool(state.queued())
        except QueueTrouble as exc:
            self.notify(str(exc), severity="error")
            return
        if paused:
            self.notify("Paused: the current run finishes, nothing new starts.")
        else:
            try:
                started = ensure_worker().message if waiting else "Nothing is waiting."
            except QueueTrouble as exc:  # a full disk or a folder in the way of the start lock
                started = str(exc)
            self.notify("Resumed. " + started)
        self.refresh_now()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()  # Enter on a row: the table answers it before the screen's binding
        self.action_open()

    def action_open(self) -> None:
        row = self.selected()
        entry = read_state().get(row.id) if row is not None else None
        if entry is None or not entry.run_path or not Path(entry.run_path).is_dir():
            self.notify("This run has not started yet: there is no dashboard to show.", severity="warning")
            return
        self.app.push_screen(queue_dashboard(entry.run_path, queue_label(read_state(), entry.run_id)))


def queue_dashboard(run_path: str, label: str):
    """The run's dashboard with `queue k/M` in its header."""
    from ..queue_monitor import QueueDashboardScreen

    return QueueDashboardScreen(run_path, label, q_word="Back")  # q returns to the queue, as Esc does
