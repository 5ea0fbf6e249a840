"""One schema setting on a form: label, the right control for its kind, its hint, and a message line.

The control follows the setting's kind: a Switch for booleans, a Select for choices, a text area
for sample prompts, a table for the per-folder overrides and an Input for everything else (numbers with a validator built from the
schema). The message line shows, in words, an error, a warning, why the field does not apply, or
a neutral note ("folder found"). A field that does not apply keeps its place with its control
disabled; the field itself then takes focus, so its explanation can still be read.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Input, Select, Static, Switch, TextArea

from engine.config import Setting, coerce
from engine.problems import Problem

from .path_input import PathInput
from .path_suggester import PathSuggester
from .subsets_table import SubsetsTable


class SchemaValidator(Validator):
    """Accepts what the schema's lenient parser accepts; the failure text is the schema's."""

    def __init__(self, setting: Setting, empty_ok: bool):
        super().__init__()
        self.setting = setting
        self.empty_ok = empty_ok

    def validate(self, value: str) -> ValidationResult:
        if self.empty_ok and not value.strip():
            return self.success()
        _, problem = coerce(self.setting, value, lenient=True)
        return self.failure(problem.message) if problem else self.success()


def control_id(key: str) -> str:
    return "control-" + key.replace(".", "-").replace("_", "-")


def field_id(key: str) -> str:
    return "field-" + key.replace(".", "-").replace("_", "-")


class SettingField(Widget):
    """A labelled control for one setting; posts `SettingField.Changed` when its value changes.

    Laid out as a two-column grid (label | control) over a notes line (hint and message in one
    widget): a form has dozens of these, and every widget saved makes each key press lighter."""

    class Changed(Message):
        def __init__(self, field: SettingField, value: Any):
            super().__init__()
            self.field = field
            self.key = field.setting.key
            self.value = value

    def __init__(self, setting: Setting, value: Any, *, placeholder: str = "", empty_ok: bool = False):
        super().__init__(id=field_id(setting.key), classes="setting-field")
        self.setting = setting
        self._value = value
        self._placeholder = placeholder
        self._empty_ok = empty_ok
        self.message_kind = ""  # "error", "warning", "disabled", "note" or ""
        self.message_text = ""

    def compose(self) -> ComposeResult:
        yield Static(Content(self.setting.label), classes="field-label")
        if self.setting.kind == "bool" or self.setting.suffix:
            with Horizontal(classes="field-control"):
                yield self._make_control()
                # on/off in words beside the switch: legible without colour
                side = _on_off(self._value) if self.setting.kind == "bool" else self.setting.suffix
                yield Static(Content(side), classes="field-side")
        else:
            yield self._make_control()
        yield Static(self._notes(), classes="field-notes")

    def _make_control(self) -> Widget:
        s, cid = self.setting, control_id(self.setting.key)
        if s.kind == "bool":
            return Switch(bool(self._value), animate=False, id=cid)
        if s.kind == "choice":
            return Select([(str(c), c) for c in s.choices], value=self._value, allow_blank=False,
                          compact=True, id=cid)
        if s.kind == "subsets":
            return SubsetsTable(self._value, id=cid)
        if s.kind == "prompts":
            area = TextArea(str(self._value), id=cid, soft_wrap=True, tab_behavior="focus",
                            show_line_numbers=False, compact=True)
            area.placeholder = "one per line: a photo of mychar --n blurry --d 42"  # fits at 80 columns
            return area
        suggester = PathSuggester(folders_only=s.key.startswith("folders.") or s.key == "model.config_dir") \
            if s.kind == "path" or s.key == "model.path" else None
        return (PathInput if suggester is not None else Input)(
            str(self._value),
            placeholder=self._placeholder,
            id=cid,
            compact=True,
            suggester=suggester,
            validators=[SchemaValidator(s, self._empty_ok)],
            valid_empty=self._empty_ok,
        )

    # ------------------------------------------------------------------ value

    @property
    def control(self) -> Widget:
        return self.query_one("#" + control_id(self.setting.key))

    @property
    def value(self) -> Any:
        control = self.control
        if isinstance(control, TextArea):
            return control.text
        return control.value

    def set_value(self, value: Any) -> None:
        """Change the control's value from code (e.g. the quick pick sets the family flags)."""
        control = self.control
        if isinstance(control, TextArea):
            if control.text != value:
                control.load_text(str(value))
        elif control.value != value:
            control.value = value

    def set_placeholder(self, text: str) -> None:
        control = self.control
        if isinstance(control, Input) and control.placeholder != text:
            control.placeholder = text

    def _changed(self, value: Any) -> None:
        self.post_message(self.Changed(self, value))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._changed(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.screen.focus_next()  # Enter moves on, like Tab

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.query_one(".field-side", Static).update(_on_off(event.value), layout=False)
        self._changed(event.value)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.NULL:
            self._changed(event.value)

    def on_subsets_table_changed(self, event: SubsetsTable.Changed) -> None:
        event.stop()
        self._changed(event.value)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self._changed(event.text_area.text)

    # ------------------------------------------------------------------ state

    def show_state(self, problems: list[Problem], disabled_reason: str | None, note: str = "") -> None:
        """Mark the field: disabled with its reason, or its first error / warning, or a note."""
        control = self.control
        disabled = disabled_reason is not None
        if control.disabled != disabled:
            control.disabled = disabled
        self.can_focus = disabled  # keep a disabled field reachable, to read why
        errors = [p for p in problems if p.is_error]
        warnings = [p for p in problems if not p.is_error]
        if disabled:
            kind, text = "disabled", f"not used: {disabled_reason}"
        elif errors:
            kind, text = "error", "✗ error: " + _sentence(errors[0])
        elif warnings:
            kind, text = "warning", "! warning: " + _sentence(warnings[0])
        elif note:
            kind, text = "note", "✓ " + note
        else:
            kind, text = "", ""
        if (kind, text) == (self.message_kind, self.message_text):
            return
        self.message_kind, self.message_text = kind, text
        self.set_classes(_classes(self, kind))
        self.query_one(".field-notes", Static).update(self._notes())

    def _notes(self) -> Content:
        """The hint, then the message line styled by its kind."""
        parts: list = [(self.setting.hint, "dim")]
        if self.message_text:
            parts += ["\n", (self.message_text, _MESSAGE_STYLES[self.message_kind])]
        return Content.assemble(*parts)


_MESSAGE_STYLES = {"error": "bold $text-error", "warning": "$text-warning", "disabled": "italic dim",
                   "note": "dim"}


def _classes(field: SettingField, kind: str) -> set[str]:
    keep = {c for c in field.classes if c not in ("-error", "-warning", "-disabled", "-note")}
    return keep | ({f"-{kind}"} if kind else set())


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _sentence(problem: Problem) -> str:
    return f"{problem.message} ({problem.hint})" if problem.hint else problem.message
