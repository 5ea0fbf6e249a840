"""The one-line bar at the top: where the user is in the wizard and whether work is unsaved."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

STEPS = ("Model", "Folders", "Parameters", "Review")


class StepBar(Static):
    """`tui-lora › 1 Model › 2 Folders …  run.yaml • unsaved`; the current step stands out."""

    def __init__(self, step: int | None, **kwargs):
        super().__init__(**kwargs)
        self.step = step

    def show(self, file_name: str, unsaved: bool) -> None:
        parts: list = [("tui-lora", "bold")]
        if self.step is not None:
            parts.append(" ")
            for number, name in enumerate(STEPS, 1):
                if number > 1:
                    parts.append((" › ", "dim"))
                current = number == self.step
                parts.append((f" {number} {name} " if current else f"{number} {name}", "bold reverse" if current else ""))
        parts.append(("  " + file_name, "dim"))
        if unsaved:
            parts.append((" • unsaved", "bold"))
        content = Content.assemble(*parts)
        if str(content) != str(self.visual):
            self.update(content, layout=False)  # always one line high
