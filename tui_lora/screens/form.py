"""The frame every wizard step shares, and forms generated from the settings schema.

`StepScreen` holds the step bar, the body, the help panel and the footer, and the keys Esc (back),
Ctrl+N (next) and F1 (full help). `FormScreen` fills its body with one `SettingField` per schema
setting of its screen(s), keeps the draft in step with the fields, marks problems where they are,
and refuses Next while a field on it holds an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, VerticalScroll
from textual.content import Content
from textual.events import DescendantFocus
from textual.screen import Screen
from textual.widget import Widget

from engine.config import SETTINGS, Setting, problem_key
from engine.problems import Problem

from ..checks import path_check
from ..draft import Draft
from ..widgets.help_panel import WELCOME, HelpPanel, help_content
from ..widgets.key_bar import KeyBar
from ..widgets.setting_field import SettingField
from ..widgets.step_bar import StepBar
from .modals import MessageScreen

if TYPE_CHECKING:
    from ..app import WizardApp

KEYS_HELP = (
    "Keys: Tab / Shift+Tab move between fields · ↑/↓ or Enter open a list · Enter or Space toggles "
    "a switch · → accepts a path completion · Ctrl+N next step · Esc back · Ctrl+S save · "
    "Ctrl+P command palette (themes) · Ctrl+Q quit."
)


class StepScreen(Screen):
    STEP: ClassVar[int | None] = None
    HAS_HELP_PANEL: ClassVar[bool] = True
    EDITS_DRAFT: ClassVar[bool] = True  # Ctrl+S saves from here (see WizardApp.check_action)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+n", "next", "Next"),
        Binding("f1", "help", "Help"),
        # Read a long explanation without leaving the field (shift+arrows select text in inputs).
        Binding("ctrl+down", "scroll_help(1)", "Scroll help", show=False),
        Binding("ctrl+up", "scroll_help(-1)", "Scroll help", show=False),
    ]

    @property
    def wizard(self) -> WizardApp:
        return self.app  # type: ignore[return-value]

    @property
    def draft(self) -> Draft:
        return self.wizard.draft

    def compose(self) -> ComposeResult:
        yield StepBar(self.STEP, id="step-bar")
        with Container(id="body"):
            yield from self.compose_body()
            if self.HAS_HELP_PANEL:
                yield HelpPanel(id="help")
        yield KeyBar()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.refresh_bar()
        self.wizard.step_ready()  # mounted: built, about to be drawn (see WizardApp.on_event)

    def on_screen_resume(self) -> None:
        self.refresh_bar()

    def refresh_bar(self) -> None:
        path = self.draft.path
        name = path.name if path else "new run"
        self.query_one(StepBar).show(name, self.draft.dirty)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_next(self) -> None:
        self.wizard.open_step((self.STEP or 0) + 1, announce=True)

    def action_scroll_help(self, lines: int) -> None:
        for panel in self.query(HelpPanel):
            panel.scroll_relative(y=lines * max(1, panel.size.height - 1), animate=False)

    def action_help(self) -> None:
        panels = self.query(HelpPanel)
        text = panels.first().text + "\n\n" if panels else ""
        self.app.push_screen(MessageScreen("Help", Content(text + KEYS_HELP)))


class FormScreen(StepScreen):
    """A step whose body is schema fields; subclasses say which schema screens they show."""

    SCHEMA_SCREENS: ClassVar[tuple[str, ...]] = ()

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="form", can_focus=False):
            for screen in self.SCHEMA_SCREENS:
                yield from self.compose_fields(screen)

    def compose_fields(self, screen: str) -> Iterable[Widget]:
        for setting in SETTINGS.on_screen(screen):
            yield SettingField(setting, self.draft.values[setting.key], placeholder=self.draft.empty_text(setting),
                               empty_ok=_empty_ok(setting))
            yield from self.extras_after(setting.key)

    @property
    def checks_pending(self) -> bool:
        """Hook: True while a check waits for typing to pause (tests wait on it)."""
        return False

    def extras_after(self, key: str) -> Iterable[Widget]:
        """Widgets a subclass places right after a field (a dataset summary, an offer button)."""
        return ()

    def on_mount(self) -> None:
        super().on_mount()
        self.refresh_fields()
        first = next((f for f in self.query(SettingField) if not f.control.disabled), None)
        if first is not None:
            first.control.focus()
        self.call_after_refresh(self.sync_focus)  # focus set while mounting sends no event here

    # ------------------------------------------------------------------ fields and values

    def fields(self) -> dict[str, SettingField]:
        """The screen's fields by key (fixed once mounted, so looked up once)."""
        if getattr(self, "_fields", None) is None:
            self._fields = {f.setting.key: f for f in self.query(SettingField)}
        return self._fields

    def on_setting_field_changed(self, event: SettingField.Changed) -> None:
        event.stop()
        if self.draft.set(event.key, event.value):
            self.value_changed(event.key)
            self.refresh_fields()
            self.refresh_bar()

    def value_changed(self, key: str) -> None:
        """Hook: a field's value changed (the draft already holds it)."""

    def set_field(self, key: str, value) -> None:
        """Change a value from code: the draft and, when it is on this screen, the field."""
        self.draft.set(key, value)
        field = self.fields().get(key)
        if field is not None:
            field.set_value(value)

    def extra_problems(self) -> list[Problem]:
        """Hook: problems found outside the schema (a model check, an existing output file)."""
        return []

    def notes(self) -> dict[str, str]:
        """Hook: neutral notes per field."""
        return {}

    def field_problems(self) -> tuple[dict[str, list[Problem]], dict[str, str]]:
        """Problems and notes per field key on this screen."""
        keys = self.fields()
        problems: dict[str, list[Problem]] = {key: [] for key in keys}
        notes: dict[str, str] = {}
        found = self.draft.problems() + self.extra_problems()
        for key, field in keys.items():
            if field.setting.kind == "path":
                path_problems, note = path_check(key, str(self.draft.values[key]))
                found += path_problems
                if note:
                    notes[key] = note
        for problem in found:
            key = problem_key(problem)
            if key in problems and problem not in problems[key]:
                problems[key].append(problem)
        notes.update(self.notes())
        return problems, notes

    def refresh_fields(self) -> None:
        problems, notes = self.field_problems()
        for key, field in self.fields().items():
            errors = [p for p in problems[key] if p.is_error]
            reason = None if errors else self.draft.disabled_reason(field.setting)
            field.show_state(problems[key], reason, notes.get(key, ""))
            field.set_placeholder(self.draft.empty_text(field.setting))
        self.refresh_help()

    def blocking_errors(self) -> list[Problem]:
        problems, _ = self.field_problems()
        return [p for key in problems for p in problems[key] if p.is_error]

    def action_next(self) -> None:
        errors = self.blocking_errors()
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            self.notify(f"{first.field}: {first.message}{more}", title="Fix this before going on",
                        severity="error")
            self.focus_field(problem_key(first))
            return
        super().action_next()

    def focus_field(self, key: str) -> None:
        field = self.fields().get(key)
        if field is None:
            return
        target = field if field.can_focus else field.control
        target.focus()
        field.scroll_visible(animate=False)

    # ------------------------------------------------------------------ help follows focus

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        self.sync_focus()

    def sync_focus(self) -> None:
        """Highlight the focused field and show its explanation."""
        setting = self.focused_setting()
        for key, field in self.fields().items():
            field.set_class(setting is not None and key == setting.key, "-focused")
        self.refresh_help()

    def focused_setting(self) -> Setting | None:
        node = self.focused
        while node is not None and not isinstance(node, SettingField):
            node = node.parent
        return node.setting if isinstance(node, SettingField) else None

    def refresh_help(self) -> None:
        setting = self.focused_setting()
        panel = self.query_one(HelpPanel)
        if setting is None:
            panel.show(Content(WELCOME))
            return
        field = self.fields()[setting.key]
        panel.show(help_content(setting, disabled_reason=self.draft.disabled_reason(setting),
                                empty_text=self.draft.empty_text(setting), message=field.message_text))
        # The panel's height follows the text: keep the focused field in view once the form has shrunk.
        self.call_after_refresh(field.scroll_visible, animate=False)


def _empty_ok(setting: Setting) -> bool:
    """Whether an empty input is a valid value for the field (the schema decides the rest)."""
    if setting.model_default is not None or setting.optional:
        return True
    return setting.kind in ("str", "list", "int_list") or (setting.kind == "path" and not setting.required)
