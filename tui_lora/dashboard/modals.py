"""The dashboard's two questions: confirm a stop, and stop-or-detach when quitting a live run."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

MODAL_CSS = """
{name} {
    align: center middle;
    background: $background 60%;
}
{name} > Vertical {
    width: 60;
    max-width: 100%;
    height: auto;
    border: thick $warning 70%;
    background: $surface;
    padding: 1 2;
}
{name} Label { width: 100%; margin-bottom: 1; }
{name} Label.key-line { margin-bottom: 0; }
{name} Horizontal { height: auto; align-horizontal: center; }
{name} Button { margin: 0 1; min-width: 12; }
"""


class ConfirmStopScreen(ModalScreen[bool]):
    """Stop the run? y/Enter stops it (it saves, then exits), n/Esc cancels."""

    DEFAULT_CSS = MODAL_CSS.replace("{name}", "ConfirmStopScreen")
    BINDINGS = [
        Binding("y", "answer(True)", "Stop the run"),
        Binding("n,escape", "answer(False)", "Cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Stop the run? It finishes the current step, saves the LoRA, then exits.")
            with Horizontal():
                yield Button("Stop (y)", id="stop", variant="warning")
                yield Button("Cancel (n)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "stop")

    def action_answer(self, stop: bool) -> None:
        self.dismiss(stop)


class QuitLiveRunScreen(ModalScreen[str | None]):
    """Quitting while the run is live: stop it (s), or detach and leave it running (d); Esc cancels."""

    DEFAULT_CSS = MODAL_CSS.replace("{name}", "QuitLiveRunScreen")
    BINDINGS = [
        Binding("s", "answer('stop')", "Stop the run"),
        Binding("d", "answer('detach')", "Detach"),
        Binding("escape", "answer(None)", "Cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("The run is still going. Stop it (it saves, then exits), or detach and leave it "
                        "running? You can come back with `tui-lora monitor`.")
            with Horizontal():
                yield Button("Stop (s)", id="stop", variant="warning")
                yield Button("Detach (d)", id="detach", variant="primary")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#detach", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_answer(self, choice: str | None) -> None:
        self.dismiss(choice)


DASHBOARD_KEYS = (
    ("s", "stop the run: it finishes the step, saves the LoRA, then exits; s again aborts at once"),
    ("c", "save now: a checkpoint of the LoRA as it is, the run goes on"),
    ("d", "detach: close this view, the run goes on; come back with `tui-lora monitor`"),
    ("q", "{q}: a live run asks first whether to stop it or leave it running"),
    ("↑/↓ PgUp/PgDn", "scroll when the terminal is smaller than the dashboard"),
    ("F1", "this help; Esc or Enter closes it"),
)


class DashboardHelpScreen(ModalScreen[None]):
    """The dashboard's own keys (F1), not the wizard's."""

    DEFAULT_CSS = MODAL_CSS.replace("{name}", "DashboardHelpScreen").replace("$warning 70%", "$primary")
    BINDINGS = [Binding("escape,enter,f1,q", "close", "Close")]

    def __init__(self, q_word: str = "Quit") -> None:
        super().__init__()
        self.q_word = q_word

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Dashboard keys")
            for key, words in DASHBOARD_KEYS:
                yield Label(f"{key:<14}{words.format(q=self.q_word.lower())}", classes="key-line")

    def action_close(self) -> None:
        self.dismiss(None)
