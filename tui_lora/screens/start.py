"""The first screen: new run, open a run file, import a Kohya SS config, recent files, the demo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ..widgets.key_bar import KeyBar
from ..widgets.step_bar import StepBar

if TYPE_CHECKING:
    from ..app import WizardApp

ACTIONS = {
    "continue": ("Continue the current run", "Go back to the run you were editing."),
    "new": ("New run", "Start from the defaults: pick a base model, your image folders, then the parameters."),
    "open": ("Open a run file (.yaml)…", "Edit a run file made earlier by this wizard or by hand."),
    "import": ("Import a Kohya SS config (.json)…",
               "Turn a config saved by the Kohya SS GUI into a new run; what cannot be carried over is listed."),
    "queue": ("Run queue", "Runs waiting to train, training now and finished: reorder or remove them, pause the "
              "queue, open a run's dashboard."),
    "demo": ("Try the demo (tiny model, generated images, CPU)",
             ("The built-in tiny model and a small generated dataset: a complete run that trains on a CPU "
              "in about a minute. Nothing is downloaded.")),
}
INTRO = "Every setting is explained where you type it. Use ↑/↓ and Enter, or the letter keys below."
KEYS = {"new": "n", "open": "o", "import": "i", "queue": "r", "demo": "d"}


class StartScreen(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "choose('new')", "New"),
        Binding("o", "choose('open')", "Open"),
        Binding("i", "choose('import')", "Import Kohya"),
        Binding("r", "choose('queue')", "Queue"),
        Binding("d", "choose('demo')", "Demo"),
        # The first screen has nothing to go back to: Esc and q leave, asking first if work is unsaved.
        Binding("q,escape", "app.quit", "Quit", show=False),  # the footer already shows ^q Quit
    ]

    @property
    def wizard(self) -> WizardApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StepBar(None, id="step-bar")
        with Vertical(id="start"):
            yield Static(Content.assemble(("Set up a LoRA training run", "bold $accent"), "\n",
                                          (INTRO, "dim")),
                         id="start-title")
            yield OptionList(id="start-options")
            yield Static(id="start-description")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(StepBar).show("", False)
        self.fill_options()
        self.query_one(OptionList).focus()

    def on_screen_resume(self) -> None:
        self.fill_options()

    def fill_options(self) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        actions = list(ACTIONS)
        if not self.wizard.has_draft_in_progress():
            actions.remove("continue")
        for action in actions:
            key = KEYS.get(action)
            label = ACTIONS[action][0] + (f"  ({key})" if key else "")
            options.add_option(Option(Content(label), id=action))
        recent = self.wizard.user_state.recent
        if recent:
            options.add_option(None)
            options.add_option(Option(Content.assemble(("Recent run files", "bold")), id="recent-title", disabled=True))
            for index, path in enumerate(recent):
                missing = "" if Path(path).exists() else "  (missing)"
                options.add_option(Option(Content(_short(path) + missing), id=f"recent-{index}",
                                          disabled=bool(missing)))
        options.highlighted = 0
        self.show_description()

    def show_description(self) -> None:
        options = self.query_one(OptionList)
        index = options.highlighted
        text = ""
        if index is not None:
            option_id = options.get_option_at_index(index).id or ""
            if option_id in ACTIONS:
                text = ACTIONS[option_id][1]
            elif option_id.startswith("recent-"):
                text = "Open " + self.wizard.user_state.recent[int(option_id.split("-")[1])]
        self.query_one("#start-description", Static).update(Content(text))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.show_description()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        option_id = event.option.id or ""
        if option_id.startswith("recent-"):
            self.wizard.open_file(self.wizard.user_state.recent[int(option_id.split("-")[1])])
        elif option_id in ACTIONS:
            self.action_choose(option_id)

    def action_choose(self, action: str) -> None:
        {
            "continue": lambda: self.wizard.open_step(1),
            "new": self.wizard.new_run,
            "open": self.wizard.ask_open,
            "import": self.wizard.ask_import,
            "queue": self.wizard.open_queue,
            "demo": self.wizard.start_demo,
        }[action]()


def _short(path: str) -> str:
    home = str(Path.home())
    return "~" + path[len(home):] if path.startswith(home + "/") else path
