"""Step 2, Folders: images, regularisation, output and logging folders, with a live dataset summary.

Folders are checked as they are typed (by the form); the dataset is scanned in a worker thread
once typing pauses, and its concept folders fill the per-folder table (Enter edits a folder's own
values). An output name whose LoRA already exists is offered the next free versioned
name (`name_v2`) with one key press.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual import work
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button

from engine.config import RunConfig
from engine.output_names import next_free_name
from engine.plan import scan_for
from engine.problems import Problem, warning

from ..checks import output_file
from ..widgets.dataset_summary import DatasetSummaryView
from ..widgets.doctor_panel import DoctorPanel
from ..widgets.subsets_table import SubsetsTable
from .form import FormScreen
from .modals import MessageScreen
from .subset_form import SubsetFormScreen

_SCAN_DELAY = 0.4
_SCAN_KEYS = {"folders.images", "folders.regularization", "dataset.subsets"}


class FoldersScreen(FormScreen):
    STEP = 2
    SCHEMA_SCREENS = ("folders",)
    BINDINGS: ClassVar[list[BindingType]] = [Binding("f4", "use_free_name", "Free name", show=False)]

    class Scanned(Message):
        def __init__(self, request: tuple, summary=None, failure: str = ""):
            super().__init__()
            self.request = request
            self.summary = summary
            self.failure = failure

    def __init__(self) -> None:
        super().__init__()
        self._timer = None
        self._request: tuple | None = None

    def extras_after(self, key: str) -> Iterable[Widget]:
        if key == "folders.regularization":
            yield DatasetSummaryView(id="dataset-summary")
            yield DoctorPanel(id="doctor")
        if key == "folders.output_name":
            yield Button("", id="use-free-name", compact=True, classes="offer")

    def on_mount(self) -> None:
        super().on_mount()
        self.schedule_scan()

    # ------------------------------------------------------------------ output name offer

    def free_name(self) -> str | None:
        """The next free versioned name when the LoRA file already exists, else None."""
        typed = self.draft.typed()
        if typed["overwrite"] or self.draft.values["folders.output_name"] != typed["folders.output_name"]:
            return None
        if not output_file(typed).exists():
            return None
        return next_free_name(typed["folders.output"], typed["folders.output_name"], typed["model.save_as"])

    def extra_problems(self) -> list[Problem]:
        name = self.free_name()
        if name is None:
            return []
        return [warning("folders.output_name", f"{output_file(self.draft.typed())} already exists",
                        f"use '{name}' (F4), or turn on 'overwrite'")]

    def refresh_fields(self) -> None:
        super().refresh_fields()
        offer = self.query_one("#use-free-name", Button)
        name = self.free_name()
        offer.display = name is not None
        if name is not None:
            offer.label = f"Use '{name}' instead (F4)"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "use-free-name":
            event.stop()
            self.action_use_free_name()

    def action_use_free_name(self) -> None:
        name = self.free_name()
        if name is not None:
            self.set_field("folders.output_name", name)
            self.refresh_fields()
            self.refresh_bar()
            self.fields()["folders.output_name"].control.focus()

    # ------------------------------------------------------------------ dataset scan

    def value_changed(self, key: str) -> None:
        if key in _SCAN_KEYS or key == "training.caption_extension":
            self.schedule_scan()

    # ------------------------------------------------------------------ per-folder values

    def on_subsets_table_edit_requested(self, message: SubsetsTable.EditRequested) -> None:
        message.stop()
        table = message.table

        def done(entry) -> None:
            if entry is not None:
                table.apply(message.folder, entry)  # posts Changed: the field updates the draft
                table.focus()

        self.app.push_screen(SubsetFormScreen(message.folder, message.entry, self.draft.typed(), message.concept), done)

    @property
    def checks_pending(self) -> bool:
        return self._timer is not None

    def schedule_scan(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        view = self.query_one(DatasetSummaryView)
        self.query_one(DoctorPanel).clear("")  # the old findings no longer apply
        if not str(self.draft.values["folders.images"]).strip():
            view.show_waiting("Give the image folder to see what it holds.")
            return
        view.show_waiting("scanning…")
        self._timer = self.set_timer(_SCAN_DELAY, self.start_scan)

    def start_scan(self) -> None:
        self._timer = None
        typed = self.draft.typed()
        self._request = tuple(str(typed[k]) for k in sorted(_SCAN_KEYS))
        self.run_scan(self._request, typed)
        self.query_one(DoctorPanel).check(typed, str(self.draft.path) if self.draft.path else None)

    def blocking_errors(self) -> list[Problem]:
        # Next is refused for what would stop training: the fields' errors and the doctor's errors.
        return super().blocking_errors() + self.query_one(DoctorPanel).blocking_problems()

    @work(thread=True, exclusive=True, group="dataset-scan", exit_on_error=False)
    def run_scan(self, request: tuple, typed: dict) -> None:
        try:
            summary = scan_for(RunConfig(typed))
        except Exception as exc:  # noqa: BLE001 - a scanner bug must not take the wizard down
            self.post_message(self.Scanned(request, failure=f"could not scan: {exc}"))
            return
        self.post_message(self.Scanned(request, summary))

    def on_doctor_panel_report_requested(self, message: DoctorPanel.ReportRequested) -> None:
        self.app.push_screen(MessageScreen(message.title, message.text))

    def on_folders_screen_scanned(self, message: Scanned) -> None:
        if message.request != self._request:
            return
        view = self.query_one(DatasetSummaryView)
        if message.summary is None:
            view.show_waiting(message.failure)
        else:
            view.show_summary(message.summary)
            self.query_one(SubsetsTable).show_concepts(message.summary.concepts)
