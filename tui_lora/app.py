"""The wizard app: wires the screens to one draft, saving, quitting and themes.

Importing this module stays cheap: Textual, the settings schema and the first screen only. It
never imports torch, diffusers, transformers, peft or accelerate (a test holds it to that); the
later screens are imported when first opened.

Save & Train is pluggable: `WizardApp(train_launcher=fn)` calls `fn(app, path)` after the run
file is saved (the dashboard integration pushes its screen or starts the run there). Without a
launcher the button is shown disabled, with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual._time import get_time as monotonic  # the clock of Textual's event times

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.theme import Theme

from engine.config import save_run_file
from engine.problems import Problem, ProblemError
from themes import DEFAULT_THEME, THEMES, register_themes, resolve_theme_name

from .checks import disk_problems
from .draft import Draft
from .screens.modals import (
    ConfirmScreen,
    MessageScreen,
    PathPromptScreen,
    QuitUnsavedScreen,
    problems_text,
)
from .screens.start import StartScreen
from .user_state import UserState
from .widgets.step_bar import STEPS, StepBar

TrainLauncher = Callable[["WizardApp", Path], Any]

ONE_PER_STEP = ("ctrl+n", "escape")  # keys that move between steps
KEYS_HELP = (
    "Keys: ↑/↓ and Enter choose · Tab / Shift+Tab move · Esc goes back · Ctrl+N next step · "
    "Ctrl+S save · F1 help · Ctrl+P command palette (change theme) · Ctrl+Q quit."
)


class WizardApp(App[int]):
    """Guided setup of a run file: Start → Model → Folders → Parameters → Review."""

    CSS_PATH = "wizard.tcss"
    TITLE = "tui-lora"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (110, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("f1", "help", "Help"),
    ]

    def __init__(self, draft: Draft | None = None, *, theme: str | None = None,
                 train_launcher: TrainLauncher | None = None, user_state: UserState | None = None):
        super().__init__()
        self.draft = draft or Draft()
        self.train_launcher = train_launcher
        self.user_state = user_state if user_state is not None else UserState.load()
        self._requested_theme = theme
        self._open_draft_on_start = draft is not None
        self._draft_started = draft is not None
        # Files this session may write without asking: the one opened, and any already saved to.
        self._confirmed_paths: set[Path] = {draft.path} if draft is not None and draft.path and draft.path.exists() else set()
        self._opening_since: float | None = None  # a step being built (time.monotonic, as Textual's event times)
        self._ready_at = 0.0

    # ------------------------------------------------------------------ start-up and themes

    def get_default_screen(self) -> Screen:
        return StartScreen()

    def on_mount(self) -> None:
        register_themes(self)
        remembered = self.user_state.theme if self.user_state.theme in self.available_themes else None
        self.theme = self._requested_theme or remembered or DEFAULT_THEME
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        if self._open_draft_on_start:
            if self.draft.path is not None and self.draft.path.exists():
                self.user_state.remember_file(self.draft.path)
                self.user_state.save()
            self.open_step(1)
            self.show_notes()

    def _remember_theme(self, theme: Theme) -> None:
        if self.user_state.theme != theme.name:
            self.user_state.theme = theme.name
            self.user_state.save()

    # ------------------------------------------------------------------ navigation

    def open_step(self, step: int, *, announce: bool = False) -> None:
        """Push step `step`. `announce` (Ctrl+N): the step bar says which step is opening, painted
        before the build, and the push follows that paint (code that pushes more screens after
        this one, e.g. the import's notes, keeps the plain, immediate push)."""
        from .screens.folders import FoldersScreen
        from .screens.model import ModelScreen
        from .screens.parameters import ParametersScreen
        from .screens.review import ReviewScreen

        screens = {1: ModelScreen, 2: FoldersScreen, 3: ParametersScreen, 4: ReviewScreen}
        if step in screens:
            # Building a step takes seconds on a busy machine: say so at once, and take keys pressed
            # meanwhile as meant for the step they were pressed on (see on_event), not the next one.
            self._opening_since = monotonic()
            bar = self.screen.query(StepBar) if announce else None
            if bar:  # painted before the build starts: the words show while it takes its seconds
                bar.first().show_opening(STEPS[step - 1])
                self.call_after_refresh(self.push_screen, screens[step]())
            else:
                self.push_screen(screens[step]())

    def step_ready(self) -> None:
        """Called by a step once it is mounted: keys pressed from now on are meant for it (the
        user sees it a moment later; a key pressed while it was being built was meant for the last)."""
        self._opening_since = None
        self._ready_at = monotonic()

    async def on_event(self, event: events.Event) -> None:
        if (isinstance(event, events.Key) and event.key in ONE_PER_STEP
                and (self._opening_since is not None or event.time < self._ready_at)):
            return  # pressed while a step was still opening: one step per press (Ctrl+N twice skipped one)
        await super().on_event(event)

    def has_draft_in_progress(self) -> bool:
        return self._draft_started

    def _replace_draft(self, draft: Draft, *, steps: int = 1, notes_title: str = "") -> None:
        """Start editing another draft (the caller made sure nothing unsaved is lost)."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.draft = draft
        self._draft_started = True
        if draft.path is not None and draft.path.exists():
            self._confirmed_paths.add(draft.path)
        for step in range(1, steps + 1):
            self.open_step(step)
        self.show_notes(notes_title)

    def _unless_unsaved(self, then: Callable[[], None]) -> None:
        """Run `then`, after asking when the current draft has unsaved changes."""
        if not (self._draft_started and self.draft.dirty):
            then()
            return
        self.push_screen(
            ConfirmScreen("Discard unsaved changes?", "The current run has changes that are not saved. "
                          "Discard them?", confirm="Discard"),
            lambda ok: then() if ok else None,
        )

    def show_notes(self, title: str = "") -> None:
        """What loading the draft reported (parts of a file that could not be used, import notes)."""
        notes = self.draft.notes
        if notes:
            title = title or "Some of the run file could not be used"
            tail = "Check these before saving." if title.startswith("Notes") else "These parts are left out when you save."
            self.push_screen(MessageScreen(title, Content.assemble(problems_text(notes), "\n" + tail)))

    # ------------------------------------------------------------------ start screen actions

    def new_run(self) -> None:
        self._unless_unsaved(lambda: self._replace_draft(Draft()))

    def ask_open(self) -> None:
        self.push_screen(
            PathPromptScreen("Open a run file", "Path of the run file (.yaml):", "", check=_problem_opening,
                             suffixes=(".yaml", ".yml")),
            lambda path: self.open_file(path) if path else None,
        )

    def open_file(self, path: str) -> None:
        from .sources import load_draft

        try:
            draft = load_draft(path)
        except ProblemError as exc:
            self.push_screen(MessageScreen("Cannot open the file", problems_text(exc.problems)))
            return
        if draft.path is not None:
            self.user_state.remember_file(draft.path)
            self.user_state.save()
        self._unless_unsaved(lambda: self._replace_draft(draft))

    def ask_import(self) -> None:
        self.push_screen(
            PathPromptScreen("Import a Kohya SS config", "Kohya SS GUI config (.json), sd-scripts config or "
                             "dataset (.toml), or a file with its command line:", "",
                             suffixes=(".json", ".toml", ".sh", ".txt", ".bat", ".ps1")),
            lambda path: self.import_file(path) if path else None,
        )

    def import_file(self, path: str) -> None:
        from .sources import import_kohya_draft

        try:
            draft = import_kohya_draft(path)
        except ProblemError as exc:
            self.push_screen(MessageScreen("Cannot import the file", problems_text(exc.problems)))
            return
        draft.suggested_path = Path(path).expanduser().absolute().with_suffix(".yaml")
        self._unless_unsaved(lambda: self._replace_draft(draft, notes_title="Notes on the Kohya import"))

    def start_demo(self) -> None:
        from .sources import demo_draft

        try:
            draft = demo_draft()
        except ProblemError as exc:
            self.push_screen(MessageScreen("Cannot prepare the demo", problems_text(exc.problems)))
            return
        # every step is on the stack, so Esc walks back through them from the review
        self._unless_unsaved(lambda: self._replace_draft(draft, steps=4))

    def open_queue(self) -> None:
        from .screens.queue import QueueScreen

        self.push_screen(QueueScreen())

    def get_system_commands(self, screen: Screen):
        yield from super().get_system_commands(screen)
        yield SystemCommand("Run queue", "Runs waiting, training and finished; reorder, remove, open a dashboard",
                            self.open_queue)

    # ------------------------------------------------------------------ checking and saving

    def field_problems(self) -> list[Problem]:
        """Every problem a field would show, on any step (schema checks and disk checks)."""
        return self.draft.problems() + disk_problems(self.draft.values)

    def field_errors(self) -> list[Problem]:
        return [p for p in self.field_problems() if p.is_error]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "save" and not (self._draft_started and getattr(self.screen, "EDITS_DRAFT", False)):
            return False  # only the wizard's steps edit the run file: the start screen, a dashboard
        return True        # or the queue would offer a save that means nothing there

    def action_save(self) -> None:
        self.save_then(None)

    def save_then(self, after: Callable[[Path], None] | None) -> None:
        """Save the draft (asking for a path, or before replacing a file), then call `after`."""
        if not self._draft_started:
            self.notify("Nothing to save yet: start a new run or open one.", severity="warning")
            return
        if isinstance(self.screen, ModalScreen):
            return  # a dialog is open (perhaps this very save's): answer it first
        errors = self.field_errors()
        if errors:
            more = f" (and {len(errors) - 1} more; all are listed on Review)" if len(errors) > 1 else ""
            self.notify(f"{errors[0].field}: {errors[0].message}{more}", title="Cannot save yet", severity="error")
            return
        if self.draft.path is not None:
            self._save_to(self.draft.path, after)
            return
        suggested = self.draft.suggested_path or Path.cwd() / f"{self.draft.typed()['folders.output_name']}.yaml"
        self.push_screen(
            PathPromptScreen("Save the run file", "Save as:", str(suggested), check=_problem_saving,
                             suffixes=(".yaml", ".yml")),
            lambda path: self._save_to(Path(path), after) if path else None,
        )

    def _save_to(self, path: Path, after: Callable[[Path], None] | None) -> None:
        path = path.expanduser().resolve()
        if path.exists() and path not in self._confirmed_paths:
            self.push_screen(
                ConfirmScreen("Replace the existing file?", f"{path} already exists. Replace it with this run?",
                              confirm="Replace"),
                lambda ok: self._write(path, after) if ok else None,
            )
            return
        self._write(path, after)

    def _write(self, path: Path, after: Callable[[Path], None] | None) -> None:
        try:
            save_run_file(self.draft.to_config(), path, overwrite=True)
        except OSError as exc:
            self.notify(f"{path}: {exc.strerror or exc}", title="Could not save", severity="error")
            return
        self._confirmed_paths.add(path)
        self.draft.mark_saved(path)
        self.user_state.remember_file(path)
        self.user_state.save()
        self.notify(f"Saved {path}", title="Saved")
        for screen in self.screen_stack:
            refresh = getattr(screen, "refresh_bar", None)
            if refresh is not None:
                refresh()
        if after is not None:
            after(path)

    def on_save_and_train(self, path: Path) -> None:
        """Hook called with the saved run file by Save & Train: hands it to the train launcher."""
        if self.train_launcher is not None:
            self.train_launcher(self, path)

    def on_add_to_queue(self, path: Path) -> None:
        """Hook called with the saved run file by Add to queue: queue a copy, start the worker."""
        from engine.queue.store import QueueTrouble, read_state

        from .queueing import add_checked, check_files, ensure_worker

        try:
            good, bad = check_files([str(path)])
            if bad:
                self.push_screen(MessageScreen("Cannot queue the run", problems_text(next(iter(bad.values())))))
                return
            (added,) = add_checked(good)
            started = ensure_worker(paused=read_state().paused)
        except QueueTrouble as exc:
            self.notify(str(exc), title="Cannot queue the run", severity="error")
            return
        worker = f"Queue worker started (pid {started.pid})." if started.pid else started.message
        self.notify(f"#{added.entry.id} {added.entry.name} is at place {added.position}; the queue keeps a copy of "
                    f"the file as saved now. {worker}", title="Added to the queue", timeout=8)
        self.open_queue()

    # ------------------------------------------------------------------ help and quitting

    def action_help(self) -> None:
        self.push_screen(MessageScreen("Help", KEYS_HELP))

    async def action_quit(self) -> None:
        if getattr(self.screen, "q_word", "") is None:  # the dashboard of the run Train started: it
            self.screen.action_quit_dashboard()  # asks whether a live run stops or goes on, then exits
            return
        if not (self._draft_started and self.draft.dirty):
            self.exit(0)
            return
        def answered(choice: str | None) -> None:
            if choice == "quit":
                self.exit(0)
            elif choice == "save":
                self.save_then(lambda path: self.exit(0))  # a save that cannot happen says why and stays

        self.push_screen(QuitUnsavedScreen(), answered)


def _problem_opening(text: str) -> str | None:
    path = Path(text).expanduser()
    if not path.is_file():
        return f"{text} is not a file"
    return None


def _problem_saving(text: str) -> str | None:
    path = Path(text).expanduser()
    if path.suffix.lower() not in (".yaml", ".yml"):
        return "run files end in .yaml"
    if path.is_dir():
        return f"{text} is a folder"
    return None


def theme_names() -> list[str]:
    """The documented themes (themes/): each is held to WCAG contrast, Textual's own are not."""
    return list(THEMES)


def run_app(path: str | None = None, theme: str | None = None, *, mouse: bool = True,
            train_launcher: TrainLauncher | None = None) -> int:
    """Open the wizard (on `path` when given: a run file to edit, or a new one to create there)."""
    name = resolve_theme_name(theme)
    if name is not None and name not in theme_names():
        print(f"tui-lora: unknown theme '{theme}'; choose one of: {', '.join(THEMES)}", file=sys.stderr)
        return 2
    draft = None
    if path:
        from .sources import load_draft

        try:
            draft = load_draft(path)
        except ProblemError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 2
    app = WizardApp(draft, theme=name, train_launcher=train_launcher)
    result = app.run(mouse=mouse)
    return int(result or app.return_code or 0)
