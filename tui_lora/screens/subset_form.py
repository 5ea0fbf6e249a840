"""The edit form for one concept folder's own values (an entry of `dataset.subsets`).

Every key has a row: a text field (empty: the folder name or the run-wide value decides, shown as
its placeholder) or a list of `run-wide` / `on` / `off`. Enter in a text field applies (the schema
judges the entry; a problem is shown and nothing is applied), Esc cancels, F8 clears every value.
(Ctrl+S stays the app's save.)
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static

from engine.config.settings_subsets import ENTRY_KEYS, RUN_WIDE, SETTING_KEY, parse_subsets
from engine.config import SETTINGS

from ..draft import format_number

INHERIT = "run-wide"


class SubsetFormScreen(ModalScreen[dict[str, Any] | None]):
    """Dismisses with the folder's typed entry (only image_dir when every value was cleared), or
    None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("f8", "clear", "Clear all"),
    ]
    DEFAULT_CSS = """
    SubsetFormScreen .subset-row { height: 1; }
    SubsetFormScreen .subset-label { width: 20; }
    SubsetFormScreen .subset-row Input, SubsetFormScreen .subset-row Select { width: 1fr; }
    """

    def __init__(self, folder: str, entry: Mapping[str, Any], typed: Mapping[str, Any], concept: Any | None = None):
        super().__init__(classes="dialog-screen")
        self.folder = folder
        self.entry = dict(entry)
        self.typed = typed  # the run's values: placeholders show what an empty field means
        self.concept = concept

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content(f"Own values of {self.folder}"), classes="dialog-title")
            for key, (kind, label, _) in ENTRY_KEYS.items():
                if key == "image_dir":
                    continue
                with Horizontal(classes="subset-row"):
                    yield Static(Content(label), classes="subset-label")
                    yield self._control(key, kind)
            yield Static("", id="subset-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply (Enter)", id="apply", variant="primary", compact=True)
                yield Button("Clear all (F8)", id="clear", compact=True)
                yield Button("Cancel (Esc)", id="cancel", compact=True)

    def _control(self, key: str, kind: str):
        cid = "subset-" + key.replace("_", "-")
        if kind == "bool":
            current = self.entry.get(key)
            value = INHERIT if current is None else ("on" if current else "off")
            return Select([(f"{INHERIT} ({self._inherited(key)})", INHERIT), ("on", "on"), ("off", "off")],
                          value=value, allow_blank=False, compact=True, id=cid)
        shown = self.entry.get(key)
        text = "" if shown is None else format_number(shown) if kind in ("int", "float") else str(shown)
        return Input(text, placeholder=f"empty: {self._inherited(key)}", compact=True, id=cid)

    def _inherited(self, key: str) -> str:
        """What the folder trains with when the entry leaves `key` out."""
        run_key = RUN_WIDE[key]
        if run_key is not None:
            value = self.typed.get(run_key)
            return ("on" if value else "off") if isinstance(value, bool) else str(value)
        if key == "num_repeats":
            return "from the folder name" if self.concept is None else f"folder name ({self.concept.repeats})"
        if key == "class_tokens":
            return "the folder name's words"
        if key == "is_reg":
            return "by its folder"
        return "off"

    def on_mount(self) -> None:
        self.query(Input).first().focus()

    def raw_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"image_dir": self.entry.get("image_dir", self.folder)}
        for key, (kind, _, _) in ENTRY_KEYS.items():
            if key == "image_dir":
                continue
            control = self.query_one("#subset-" + key.replace("_", "-"))
            if isinstance(control, Select):
                if control.value != INHERIT:
                    entry[key] = control.value == "on"
            elif control.value.strip():
                entry[key] = control.value
        return entry

    def action_apply(self) -> None:
        typed, problem = parse_subsets(SETTINGS[SETTING_KEY], [self.raw_entry()], True)
        if problem:
            where = problem.field.replace(f"{SETTING_KEY}[0].", "")
            hint = f" ({problem.hint})" if problem.hint else ""
            self.query_one("#subset-error", Static).update(Content(f"✗ {where}: {problem.message}{hint}"))
            return
        self.dismiss(typed[0])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()

    def action_clear(self) -> None:
        for control in self.query(Input):
            control.value = ""
        for select in self.query(Select):
            select.value = INHERIT

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        {"apply": self.action_apply, "clear": self.action_clear, "cancel": self.action_cancel}[event.button.id]()
