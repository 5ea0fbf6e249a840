"""The dataset doctor on the Folders screen: a progress bar while it reads the images, then the
findings, worst first, each with what to do. Enter (when focused) shows the full report.

The doctor runs in a thread worker that only posts messages back; the panel keeps the latest
report for the folders now typed, so the screen can refuse Next exactly when the CLI would
exit 1 (what would stop training). While the doctor is still reading, nothing is blocked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import ProgressBar, Static
from textual.worker import get_current_worker

from engine.problems import Problem, error

SHOWN = 6  # findings listed on the screen; the rest are in the full report
_MARKS = {"error": ("✗", "$error"), "warning": ("!", "$warning"), "info": ("·", "dim")}
_PROGRESS_EVERY = 0.2  # seconds between progress messages


class DoctorPanel(Vertical, can_focus=True):
    DEFAULT_CSS = """
    DoctorPanel { height: auto; padding: 0 1 0 3; }
    DoctorPanel:focus { background: $boost; }
    DoctorPanel ProgressBar { height: 1; }
    DoctorPanel #doctor-findings { height: auto; }
    DoctorPanel .doctor-line { height: auto; padding-left: 2; }
    DoctorPanel .doctor-advice { height: auto; padding-left: 4; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "full_report", "Doctor report")]

    class Progress(Message):
        def __init__(self, request: int, done: int, total: int):
            super().__init__()
            self.request, self.done, self.total = request, done, total

    class Finished(Message):
        def __init__(self, request: int, report: Any = None, failure: str = ""):
            super().__init__()
            self.request, self.report, self.failure = request, report, failure

    class ReportRequested(Message):
        """Enter on the panel: the screen shows the full report (a widget opens no screens itself)."""

        def __init__(self, title: str, text: str):
            super().__init__()
            self.title, self.text = title, text

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.request = 0
        self.report: Any = None  # the DoctorReport for the current request, once finished

    def compose(self) -> ComposeResult:
        yield Static(Content.assemble(("Dataset doctor", "bold $accent")), id="doctor-title")
        yield ProgressBar(show_eta=False, id="doctor-progress")
        yield Static("", id="doctor-status")
        yield Vertical(id="doctor-findings")

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False

    # ------------------------------------------------------------------ running

    def clear(self, text: str) -> None:
        """Forget the last report (the folders changed) and say why nothing is shown."""
        self.request += 1
        self.report = None
        self.workers.cancel_group(self, "doctor")
        self.query_one(ProgressBar).display = False
        self.query_one("#doctor-status", Static).update(Content.styled(text, "dim"))
        self.query_one("#doctor-findings").remove_children()

    def check(self, values: Mapping[str, Any], run_file: str | None = None) -> None:
        """Start the doctor on the folders in `values` (complete typed values)."""
        self.clear("checking…")
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.run_doctor(self.request, dict(values), run_file)

    @work(thread=True, exclusive=True, group="doctor", exit_on_error=False)
    def run_doctor(self, request: int, values: dict, run_file: str | None) -> None:
        import time

        worker = get_current_worker()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done == total or now - last[0] >= _PROGRESS_EVERY:
                last[0] = now
                self.post_message(self.Progress(request, done, total))

        try:
            from engine.config import RunConfig
            from engine.dataset.doctor import DoctorOptions, run_doctor

            options = DoctorOptions.from_config(RunConfig(values), config_path=run_file)
            options.keep_tokens_known = True  # the draft holds the run's real caption settings
            report = run_doctor(options, progress=progress, cancelled=lambda: worker.is_cancelled)
        except Exception as exc:  # noqa: BLE001 - a doctor bug must not take the wizard down
            self.post_message(self.Finished(request, failure=f"the doctor could not run: {exc}"))
            return
        if not worker.is_cancelled:
            self.post_message(self.Finished(request, report))

    def on_doctor_panel_progress(self, message: Progress) -> None:
        message.stop()
        if message.request == self.request:
            self.query_one(ProgressBar).update(total=message.total, progress=message.done)
            self.query_one("#doctor-status", Static).update(
                Content.styled(f"reading images: {message.done}/{message.total}", "dim"))

    def on_doctor_panel_finished(self, message: Finished) -> None:
        message.stop()
        if message.request != self.request:
            return
        self.query_one(ProgressBar).display = False
        self.report = message.report
        status = self.query_one("#doctor-status", Static)
        if message.report is None:
            status.update(Content.styled(message.failure, "$warning"))
            return
        head, lines = findings_content(message.report)
        status.update(head)
        self.query_one("#doctor-findings").mount_all(lines)

    # ------------------------------------------------------------------ results

    def blocking_problems(self) -> list[Problem]:
        """What would stop training, as problems on folders.images (empty while still checking)."""
        if self.report is None:
            return []
        return [error("folders.images", item.message, item.advice) for item in self.report.blocking]

    def action_full_report(self) -> None:
        if self.report is None:
            return
        from engine.dataset.doctor import format_report

        self.post_message(self.ReportRequested("Dataset doctor", format_report(self.report, width=64)))


def findings_content(report: Any) -> tuple[Content, list[Static]]:
    """The summary line, and one line per finding shown (message, then its advice indented)."""
    counts = report.counts()
    if not report.findings:
        return Content.styled(f"{report.image_count} images checked: nothing found", "$success"), []
    verdict = "training would refuse to start" if counts["error"] else "training can start"
    head = Content.styled(f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} note(s): "
                          f"{verdict}", "bold $error" if counts["error"] else "bold")
    lines: list[Static] = []
    for item in report.findings[:SHOWN]:
        mark, style = _MARKS[item.severity]
        lines.append(Static(Content.styled(f"{mark} {item.message}", style), classes="doctor-line"))
        lines.append(Static(Content(f"→ {item.advice}"), classes="doctor-advice"))
    more = len(report.findings) - SHOWN
    tail = f"… {more} more: " if more > 0 else ""
    lines.append(Static(Content.styled(f"{tail}Tab here and press Enter for the full report (balance, tags)", "dim"),
                        classes="doctor-line"))
    return head, lines
