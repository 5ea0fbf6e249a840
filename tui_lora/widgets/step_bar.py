"""The one-line bar at the top: where the user is in the wizard and whether work is unsaved."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

STEPS = ("Model", "Folders", "Parameters", "Review")
UNSAVED = " • unsaved"


class StepBar(Static):
    """`tui-lora › 1 Model › 2 Folders …  run.yaml • unsaved`; the current step stands out.

    `• unsaved` is the one part that must never be cut: at 80 columns the file name gives way
    first (shortened in the middle), then the names of the steps other than the current one.
    """

    def __init__(self, step: int | None, **kwargs):
        super().__init__(**kwargs)
        self.step = step
        self._shown: tuple[str, bool] = ("", False)

    def show(self, file_name: str, unsaved: bool) -> None:
        self._shown = (file_name, unsaved)
        content = self.build(file_name, unsaved, self._width())
        if str(content) != str(self.visual):
            self.update(content, layout=False)  # always one line high

    def show_opening(self, step_name: str) -> None:
        """While the next step is being built (seconds on a busy machine): say so in place of the file."""
        self.update(self.build(f"opening {step_name}…", False, self._width()), layout=False)

    def on_resize(self) -> None:
        self.show(*self._shown)

    def _width(self) -> int:
        width = self.content_size.width or (self.app.size.width - 2 if self.is_attached else 0)
        return width if width > 0 else 78

    def build(self, file_name: str, unsaved: bool, width: int) -> Content:
        tail = UNSAVED if unsaved else ""
        for short_steps in (False, True):
            steps = self._steps(short_steps)
            room = width - len(steps.plain) - 2 - len(tail)
            if room >= min(len(file_name), 4) or short_steps:
                name = _middle(file_name, max(0, room))
                parts: list = [steps, ("  " + name if name else "", "dim")]
                if tail:
                    parts.append((tail, "bold"))
                return Content.assemble(*parts)
        raise AssertionError("unreachable")  # pragma: no cover

    def _steps(self, short: bool) -> Content:
        parts: list = [("tui-lora", "bold")]
        if self.step is not None:
            parts.append(" ")
            for number, name in enumerate(STEPS, 1):
                if number > 1:
                    parts.append((" › ", "dim"))
                current = number == self.step
                label = f"{number} {name}" if current or not short else str(number)
                parts.append((f" {label} " if current else label, "bold reverse" if current else ""))
        return Content.assemble(*parts)


def _middle(text: str, width: int) -> str:
    """`text` in at most `width` cells, cut in the middle: `my_very…_v2.yaml`."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ""
    keep = width - 1
    return text[: keep - keep // 2] + "…" + text[len(text) - keep // 2:]
