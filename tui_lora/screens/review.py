"""Step 4, Review: the run file as it will be saved, the numbers derived from it, its problems,
and Save / Save & Train."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Static, TextArea

from engine.config import SETTINGS, RunConfig, dump_run_yaml, problem_key
from engine.plan import RunPlan, plan_before_scan, plan_run, scan_for
from engine.problems import Problem

from ..dashboard.formatting import size as format_size
from ..draft import field_text
from ..widgets.vram_panel import SHOWN_FIXES, VramPanel
from .form import StepScreen

_WHERE = {"model": "Model", "folders": "Folders", "basic": "Parameters › Basic", "advanced": "Parameters › Advanced"}


def derived_content(plan: RunPlan, scan_note: str) -> Content:
    def steps(value: int | None) -> str:
        return str(value) if value is not None else "—"

    rows = [
        ("Steps per epoch", steps(plan.steps_per_epoch) + (f"  ({scan_note})" if scan_note else "")),
        ("Epochs", str(plan.epochs)),
        ("Total steps", steps(plan.total_steps)),
        ("Warmup steps", steps(plan.warmup_steps)),
        ("Text encoder stops at", "never" if plan.total_steps is not None and plan.text_encoder_stop_step is None
         else f"step {steps(plan.text_encoder_stop_step)}"),
        ("LoRA scale (alpha / rank)", f"{plan.lora_scale:g}"),
    ]
    if plan.conv_scale is not None:
        rows.append(("Conv scale (conv alpha / rank)", f"{plan.conv_scale:g}"))
    size = f"≈ {format_size(plan.estimated_file_bytes)}" if plan.estimated_file_bytes is not None else "unknown"
    rows.append(("Estimated file size", size))
    parts: list = [("Derived numbers", "bold $accent")]
    for label, value in rows:
        parts += ["\n", (f"  {label:<31}", "dim"), value]
    parts += ["\n", (f"  (size: {plan.file_size_note})", "dim")]
    return Content.assemble(*parts)


def problems_content(problems: list[Problem], dataset_problems: list[Problem]) -> Content:
    if not problems and not dataset_problems:
        return Content.assemble(("Problems", "bold $accent"), "\n  ✓ none found")
    parts: list = [("Problems", "bold $accent")]
    for problem in problems + dataset_problems:
        setting = SETTINGS.get(problem_key(problem))
        where = f" [{_WHERE[setting.screen]}]" if setting else ""
        word, style = ("✗ error", "$error") if problem.is_error else ("! warning", "$warning")
        hint = f" ({problem.hint})" if problem.hint else ""
        parts += ["\n", (f"  {word}: {problem.field}{where}: {problem.message}{hint}", style)]
    return Content.assemble(*parts)


class ReviewScreen(StepScreen):
    STEP = 4
    HAS_HELP_PANEL = False
    BINDINGS: ClassVar[list[BindingType]] = [Binding("f5", "save_and_train", "Train now"),
                                              Binding("f6", "add_to_queue", "Add to queue")] + [
        Binding(str(n), f"apply_fix({n - 1})", f"fix {n}", show=False) for n in range(1, SHOWN_FIXES + 1)]

    class Scanned(Message):
        def __init__(self, summary=None, failure: str = ""):
            super().__init__()
            self.summary = summary
            self.failure = failure

    class EnvironmentChecked(Message):
        """What training would hit on this machine (engine.train.preflight.environment_problems)."""

        def __init__(self, problems: list[Problem], complete: bool):
            super().__init__()
            self.problems = problems
            self.complete = complete  # all the checks (after the scan), not only the quick ones

    def __init__(self) -> None:
        super().__init__()
        self.summary = None
        self.environment: list[Problem] = []
        self.environment_complete = False
        self.scan_note = "scanning the dataset…"

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="review", can_focus=False):
            yield Static(id="derived")
            yield VramPanel(id="vram")
            yield Static(id="review-problems")
            with Horizontal(id="review-buttons"):
                yield Button("Save (Ctrl+S)", id="save", variant="primary", compact=True)
                yield Button("Train now (F5)", id="save-train", compact=True)
                yield Button("Add to queue (F6)", id="add-queue", compact=True)
            yield Static(id="train-note")
            yield Static(Content.assemble(("Run file as it will be saved", "bold $accent")), classes="section-title")
            yield TextArea("", id="yaml", read_only=True, show_line_numbers=False, soft_wrap=False, compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        launcher = self.wizard.train_launcher
        train = self.query_one("#save-train", Button)
        train.disabled = launcher is None
        note = "" if launcher else ("Train now is not available here: save, then run "
                                    "`tui-lora train <file>` in a shell, or add the run to the queue.")
        self.query_one("#train-note", Static).update(Content(note))
        self.refresh_review()
        self.query_one("#save", Button).focus()
        if self.wizard.field_errors():
            self.scan_note = "fix the errors first"
        else:
            self.run_scan(self.draft.typed())
            self.check_environment(self.draft.to_config())

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.refresh_review()

    def refresh_review(self) -> None:
        problems = self.wizard.field_problems()
        errors = [p for p in problems if p.is_error]
        dataset = (self.summary.problems if self.summary is not None else []) + self.environment
        cfg = RunConfig(self.draft.typed())
        plan = plan_run(cfg, self.summary) if self.summary is not None else plan_before_scan(cfg)
        self.query_one("#derived", Static).update(derived_content(plan, self.scan_note))
        self.query_one("#review-problems", Static).update(problems_content(problems, dataset))
        buckets = list(self.summary.buckets) if self.summary is not None else None
        self.query_one(VramPanel).show(self.draft.typed(), buckets)
        yaml_view = self.query_one("#yaml", TextArea)
        if errors:
            yaml_view.load_text("# The run file is written once the errors above are fixed.\n")
        else:
            text = dump_run_yaml(self.draft.to_config())
            if yaml_view.text != text:
                yaml_view.load_text(text)

    @work(thread=True, exclusive=True, group="review-scan", exit_on_error=False)
    def run_scan(self, typed: dict) -> None:
        try:
            self.post_message(self.Scanned(scan_for(RunConfig(typed))))
        except Exception as exc:  # noqa: BLE001 - a scanner bug must not take the wizard down
            self.post_message(self.Scanned(failure=f"could not scan: {exc}"))

    @work(thread=True, exclusive=True, group="review-environment", exit_on_error=False)
    def check_environment(self, config, plan: RunPlan | None = None) -> None:
        """The engine's own start-up checks (one definition: engine.train.preflight), so what would
        refuse the run after F5 shows here first: before the scan the quick ones (output files, the
        model cache, packages), after it all of them."""
        from engine.train import preflight  # may probe the network: off the UI thread

        path = self.draft.path
        where = {"run_file": str(path) if path else None, "yaml_text": dump_run_yaml(config)}
        try:
            if plan is None:
                found = preflight.output_problems(config, **where) + preflight.environment_problems(config)
            else:
                found = [p for p in preflight.preflight(config, plan, load_libraries=False, **where)
                         if p not in plan.problems and p not in plan.dataset.problems]
            self.post_message(self.EnvironmentChecked(found, complete=plan is not None))
        except Exception:  # noqa: BLE001 - a failed check must not take the wizard down; training checks again
            return

    def on_review_screen_environment_checked(self, message: EnvironmentChecked) -> None:
        if self.environment_complete and not message.complete:
            return  # the quick checks finished after all of them did
        self.environment_complete = message.complete
        self.environment = message.problems
        self.refresh_review()

    def on_review_screen_scanned(self, message: Scanned) -> None:
        self.summary = message.summary
        self.scan_note = message.failure
        if self.summary is not None:
            config = self.draft.to_config()
            self.check_environment(config, plan_run(config, self.summary))
        self.refresh_review()

    def dataset_errors(self) -> list[Problem]:
        """Errors that block Save & Train beyond the fields': the dataset's and this machine's."""
        found = self.summary.errors if self.summary is not None else []
        return found + [p for p in self.environment if p.is_error]

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.wizard.action_save()
        elif event.button.id == "save-train":
            self.action_save_and_train()
        elif event.button.id == "add-queue":
            self.action_add_to_queue()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next":
            return False  # the last step: no Next in the footer
        if action == "save_and_train" and self.wizard.train_launcher is None:
            return None  # shown dimmed; the note under the buttons says why
        return True

    def action_apply_fix(self, index: int) -> None:
        """Apply the numbered way to fit: the draft and any open form's fields take the new values."""
        fixes = self.query_one(VramPanel).fixes
        if index >= len(fixes):
            return
        fix = fixes[index]
        for key, value in fix.changes.items():
            text = field_text(SETTINGS[key], value)
            for screen in self.app.screen_stack:
                if hasattr(screen, "set_field"):
                    screen.set_field(key, text)
            self.draft.set(key, text)
        self.notify(f"{fix.label}: saves about {fix.saving_bytes / 1024 ** 3:.1f} GiB", title="Applied")
        self.refresh_review()

    def action_next(self) -> None:
        self.notify("This is the last step: Ctrl+S saves the run file.", severity="information")

    def action_save_and_train(self) -> None:
        if self.wizard.train_launcher is None:
            self.notify("Training from the wizard is not connected in this build; save, then run "
                        "`tui-lora train <file>`.", severity="warning")
            return
        if self._dataset_ready():
            self.wizard.save_then(self.wizard.on_save_and_train)

    def action_add_to_queue(self) -> None:
        """Save, then queue a copy of the run file: it trains when its turn comes, in the background."""
        if self._dataset_ready():
            self.wizard.save_then(self.wizard.on_add_to_queue)

    def _dataset_ready(self) -> bool:
        if self.summary is None:
            self.notify("The dataset is still being scanned; try again in a moment.", severity="warning")
            return False
        errors = self.dataset_errors()
        if errors:
            self.notify(f"{errors[0].field}: {errors[0].message}", title="This run cannot be trained here",
                        severity="error")
            return False
        return True
