"""The live dashboard: a worker tails the run's event file, the screen folds events into one state
and redraws its panels from it once a second on a clock (not per event, so a fast run costs no more
than a slow one), and each panel repaints only the cells that changed.

`DashboardScreen` is what the wizard pushes after Train; `DashboardApp` wraps it for `monitor`.
The screen dismisses with "detach", "stop" or "quit", so whoever pushed it decides what comes next.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import get_current_worker

from engine.events import EventReader
from themes import DEFAULT_THEME, register_themes
from engine.runs import RunDir, run_status

from ..user_state import UserState
from .control import RunControl
from .graphics import LossPanel, LrPanel, SamplePanel
from .modals import ConfirmStopScreen, QuitLiveRunScreen
from .panels import CheckpointPanel, LogPanel, MemoryPanel, Panel, ProgressPanel, RunHeader, SummaryPanel
from .reducer import DashboardState, apply_event, apply_run_status
from .thumbnail import load_thumbnail

if TYPE_CHECKING:
    from PIL.Image import Image

POLL_INTERVAL_S = 0.25  # how often the worker looks for new lines
REDRAW_INTERVAL_S = 0.8  # the clock: step, ETA and elapsed move at least once a second, whatever the speed
LIVENESS_INTERVAL_S = 1.0  # how often a quiet stream's pid is checked
EVENTS_PER_MESSAGE = 2000  # a long finished run arrives in chunks so the UI stays responsive


class EventsRead(Message):
    """New complete events from the run's file, in order."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__()
        self.events = events


class RunStatusRead(Message):
    """The stream is quiet; this is what the run's pid says (`engine.runs.run_status`)."""

    def __init__(self, status: str) -> None:
        super().__init__()
        self.status = status


class SampleImageRead(Message):
    """The newest sample image, small and in memory (None when it could not be read)."""

    def __init__(self, path: str, image: "Image | None") -> None:
        super().__init__()
        self.path = path
        self.image = image


def registered_name(run: RunDir) -> str:
    """The output name in the run file the engine copied into the run's folder when it registered."""
    try:
        import yaml

        folders = (yaml.safe_load(run.config_copy.read_text(encoding="utf-8")) or {}).get("folders") or {}
        return str(folders.get("output_name") or "")
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return ""


class DashboardScreen(Screen[str]):
    CSS_PATH = "dashboard.tcss"
    AUTO_FOCUS = "#body"
    BINDINGS = [
        Binding("s", "stop", "Stop"),
        Binding("c", "save_now", "Save now"),
        Binding("d", "detach", "Detach"),
        Binding("q", "quit_dashboard", "Quit"),
        Binding("f1", "dashboard_help", "Help"),
    ]
    # Short terminals get a compact layout (see dashboard.tcss).
    VERTICAL_BREAKPOINTS = [(0, "-tiny"), (24, "-short"), (32, "-tall")]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]

    def __init__(self, run_dir: str | Path, *, control: RunControl | None = None, name: str | None = None,
                 id: str | None = None, clock: Callable[[], float] = time.time, q_word: str | None = "Quit") -> None:
        """`control` defaults to the pid the run registered in its folder; `clock` gives the wall time.
        `q_word`: what `q` says in the footer where it is shown ("Back" over the queue); None hides it
        (the wizard's own `^q Quit` is there and does the same)."""
        super().__init__(name=name, id=id)
        if q_word != "Quit":  # this screen's own copy of the class's bindings: replace q's entry
            self._bindings.key_to_bindings["q"] = [Binding("q", "quit_dashboard", q_word or "Quit",
                                                           show=q_word is not None)]
        self.q_word = q_word
        self.run = RunDir(Path(run_dir))
        self.control = control if control is not None else RunControl.from_run(self.run)
        self.state = DashboardState()
        self.clock = clock
        self.stop_requested = False  # a first stop was sent: the engine is finishing its step and saving
        self.abort_requested = False  # a second one was sent: the engine ends at once
        self._dirty = True

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        with VerticalScroll(id="body"):  # scrolls (arrows, PgUp/PgDn) only below 80x24
            yield SummaryPanel(id="summary")
            yield ProgressPanel(id="progress")
            with Horizontal(id="charts"):
                yield LossPanel(id="loss")
                yield LrPanel(id="lr")
                yield SamplePanel(id="sample")
            with Horizontal(id="details"):
                yield MemoryPanel(id="memory")
                yield CheckpointPanel(id="checkpoint")
            yield LogPanel(id="log")
        yield Footer()

    def on_mount(self) -> None:
        # Named from the start: run_started (which names the run) comes only after the model loaded.
        self.state.run_id = self.state.run_id or self.run.run_id
        self.state.output_name = self.state.output_name or registered_name(self.run)
        self.set_interval(REDRAW_INTERVAL_S, self.redraw)
        self.redraw()
        self.tail_events()

    # --- the worker: the only code that touches the run's files ---------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="dashboard-tail")
    def tail_events(self) -> None:
        worker = get_current_worker()
        reader = EventReader(self.run.events)
        last_liveness_check = time.monotonic()
        while not worker.is_cancelled:
            events = reader.read_new()
            if not events and time.monotonic() - last_liveness_check >= LIVENESS_INTERVAL_S:
                last_liveness_check = time.monotonic()
                status = self._liveness()
                if status == "lost":
                    events = reader.read_new()  # its last words may have landed just before it exited
                    if not events:
                        self.post_message(RunStatusRead(status))
                        return
            if events:
                for start in range(0, len(events), EVENTS_PER_MESSAGE):
                    self.post_message(EventsRead(events[start:start + EVENTS_PER_MESSAGE]))
                self._load_newest_sample(events)
                if any(event.get("type") == "run_finished" for event in events):
                    return  # nothing follows a final event
            time.sleep(POLL_INTERVAL_S)

    def _liveness(self) -> str | None:
        """run_status from the pid file; without one, the pid we were given; else no verdict yet."""
        if self.run.pid_file.exists():
            return run_status(self.run, [])
        if self.control is not None:
            return "running" if self.control.alive() else "lost"
        return None

    def _load_newest_sample(self, events: list[dict[str, Any]]) -> None:
        for event in reversed(events):
            paths = event.get("paths")
            if event.get("type") == "sample" and isinstance(paths, list) and paths:
                path = str(paths[0])
                self.post_message(SampleImageRead(path, load_thumbnail(path)))
                return

    # --- messages from the worker ---------------------------------------------------------------

    def on_events_read(self, message: EventsRead) -> None:
        was_live = self.state.live
        for event in message.events:
            apply_event(self.state, event)
        self._dirty = True
        if was_live != self.state.live:
            self._ended()

    def on_run_status_read(self, message: RunStatusRead) -> None:
        was_live = self.state.live
        apply_run_status(self.state, message.status)
        self._dirty = True
        if was_live != self.state.live:
            self._ended()

    def _ended(self) -> None:
        """The end of a run shows at once, and the footer drops the keys that no longer do anything."""
        self.redraw()
        self.refresh_bindings()

    def on_sample_image_read(self, message: SampleImageRead) -> None:
        self.query_one(SamplePanel).set_image(message.path, message.image)

    # --- drawing ---------------------------------------------------------------------------------

    def redraw(self) -> None:
        """Called by the clock: a live run redraws every tick (its clocks move), an ended one on change."""
        if not (self._dirty or self.state.live):
            return
        self._dirty = False
        state = self.state
        state.now = self.clock()
        self.set_class(state.finished, "-finished")
        self.query_one("#sample").display = state.sample is not None
        self.query_one(RunHeader).show(state, stopping=self.stop_requested, aborting=self.abort_requested)
        for panel in self.query(Panel):
            panel.show(state)

    # --- keys ------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Stop, Save now and Detach leave the footer once the run has ended: they would do nothing."""
        if action in ("stop", "save_now", "detach") and self.state.finished:
            return False
        return True

    def action_stop(self) -> None:
        if self._refuse_control():
            return
        if self.stop_requested:  # the second stop: no question, the engine ends at once
            self._send_abort()
            return

        def answered(stop: bool | None) -> None:
            if stop:
                self._send_stop()

        self.app.push_screen(ConfirmStopScreen(), answered)

    def action_save_now(self) -> None:
        if self._refuse_control():
            return
        assert self.control is not None
        self.notify(self.control.save_now(), title="Save now")

    def action_detach(self) -> None:
        self.dismiss("detach")

    def action_dashboard_help(self) -> None:
        from .modals import DashboardHelpScreen

        self.app.push_screen(DashboardHelpScreen(self.q_word or "Quit"))

    def action_quit_dashboard(self) -> None:
        if not (self.state.live and self.control is not None and self.control.alive()):
            self.dismiss("quit")
            return

        def answered(choice: str | None) -> None:
            if choice == "stop":
                self._send_stop()
                self.dismiss("stop")
            elif choice == "detach":
                self.dismiss("detach")

        self.app.push_screen(QuitLiveRunScreen(), answered)

    def _refuse_control(self) -> bool:
        """Say why a signal cannot be sent (True), or allow it (False)."""
        if self.control is None:
            self.notify("This run has no pid file, so it cannot be controlled from here.", severity="warning")
            return True
        if self.state.finished:
            self.notify(f"The run has ended ({self.state.status}); there is nothing to control.")
            return True
        return False

    def _send_stop(self) -> None:
        assert self.control is not None
        message = self.control.stop()
        self.stop_requested = message.startswith("Stop requested")
        self._dirty = True
        if self.stop_requested:
            message += " Press s again to abort at once (files already saved stay intact)."
        self.notify(message, title="Stop")
        self.redraw()

    def _send_abort(self) -> None:
        assert self.control is not None
        message = self.control.stop()  # the engine treats a second stop signal as "abort now"
        if message.startswith("Stop requested"):
            self.abort_requested = True
            message = "Abort requested: the run ends without finishing the step; earlier saves stay intact."
        self._dirty = True
        self.notify(message, title="Abort", severity="warning")
        self.redraw()


class DashboardApp(App[str]):
    """The dashboard on its own, for `tui-lora monitor`; exits with the screen's result."""

    TITLE = "tui-lora monitor"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, run_dir: str | Path, *, control: RunControl | None = None, mouse: bool = True,
                 clock: Callable[[], float] = time.time, note: str | None = None) -> None:
        """`note`: a message shown on opening (e.g. that nothing runs and an ended run is shown)."""
        super().__init__()
        self.run_dir = Path(run_dir)
        self.control = control
        self.mouse = mouse
        self.clock = clock
        self.note = note

    def use_wizard_theme(self) -> None:
        """The wizard's themes, held to WCAG contrast (themes/contrast.py), and the one the user chose
        there: Textual's default theme put the STOPPED badge at about 1:1 in 16 colours."""
        register_themes(self)
        remembered = UserState.load().theme
        self.theme = remembered if remembered in self.available_themes else DEFAULT_THEME

    def on_mount(self) -> None:
        self.use_wizard_theme()
        self.push_screen(DashboardScreen(self.run_dir, control=self.control, clock=self.clock), self.exit)
        if self.note:
            self.notify(self.note, title="Nothing running", timeout=12)

    @property
    def dashboard(self) -> DashboardScreen:
        screen = next((s for s in self.screen_stack if isinstance(s, DashboardScreen)), None)
        if screen is None:
            raise LookupError("the dashboard screen is not mounted yet")
        return screen

    def run(self, **kwargs: Any) -> str | None:  # type: ignore[override]
        kwargs.setdefault("mouse", self.mouse)
        return super().run(**kwargs)
