"""Small dialogs: confirm (Enter confirms, Esc cancels), save-or-quit, ask for a path, show a message."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from engine.problems import Problem

from ..widgets.path_suggester import PathSuggester


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question. Enter answers yes, Esc answers no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "answer(True)", "Confirm"),  # a focused button answers Enter itself
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, title: str, message: str, *, confirm: str = "Confirm", cancel: str = "Cancel"):
        super().__init__(classes="dialog-screen")
        self.title_text, self.message, self.confirm, self.cancel = title, message, confirm, cancel

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content(self.title_text), classes="dialog-title")
            yield Static(Content(self.message), classes="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.confirm} (Enter)", id="confirm", variant="primary", compact=True)
                yield Button(f"{self.cancel} (Esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#confirm", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class QuitUnsavedScreen(ModalScreen[str | None]):
    """Quitting with unsaved changes: Save (s, then quit), Quit without saving (q), Cancel (Esc)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "answer('save')", "Save and quit"),
        Binding("q", "answer('quit')", "Quit without saving"),
        Binding("escape", "answer(None)", "Cancel"),
    ]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content("Save before quitting?"), classes="dialog-title")
            yield Static(Content("This run has changes that are not saved. Save them, quit and lose them, "
                                 "or go back?"), classes="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (s)", id="save", variant="primary", compact=True)
                yield Button("Quit (q)", id="quit", variant="warning", compact=True)
                yield Button("Cancel (Esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#save", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_answer(self, choice: str | None) -> None:
        self.dismiss(choice)


class PathPromptScreen(ModalScreen[str | None]):
    """Asks for a path; `check` may refuse it with a message shown in the dialog."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, prompt: str, value: str = "", *,
                 check: Callable[[str], str | None] | None = None, suffixes: tuple[str, ...] = ()):
        super().__init__(classes="dialog-screen")
        self.title_text, self.prompt, self.value = title, prompt, value
        self.check = check
        self.suffixes = suffixes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content(self.title_text), classes="dialog-title")
            yield Static(Content(self.prompt + "  (→ completes a name, Enter accepts, Esc cancels)"),
                         classes="dialog-message")
            yield Input(self.value, id="path-input", suggester=PathSuggester(suffixes=self.suffixes))
            yield Static("", id="path-error", classes="dialog-error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        problem = "give a path" if not text else (self.check(text) if self.check else None)
        if problem:
            self.query_one("#path-error", Static).update(Content("✗ " + problem))
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class MessageScreen(ModalScreen[None]):
    """Text to read (help, or problems found while loading); Enter or Esc closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("enter", "close", "Close", show=False),
    ]

    def __init__(self, title: str, body: Content | str):
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.body = body if isinstance(body, Content) else Content(body)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-tall"):
            yield Static(Content(self.title_text), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self.body)
            yield Static(Content("↑/↓ scroll · Enter or Esc closes"), classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one(".dialog-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)


def problems_text(problems: list[Problem]) -> Content:
    """A list of problems, one a line, each saying whether it is an error or a warning."""
    parts: list = []
    for problem in problems:
        word, style = ("✗ error", "$error") if problem.is_error else ("! warning", "$warning")
        hint = f" ({problem.hint})" if problem.hint else ""
        parts.append((f"{word}: {problem.field}: {problem.message}{hint}\n", style))
    return Content.assemble(*parts)
