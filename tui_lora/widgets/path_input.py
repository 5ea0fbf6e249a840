"""A path field where Tab takes the greyed-out completion, as in a shell.

Textual's Input takes a suggestion with → only; Tab moved focus on and left the half-typed path
behind, with a "does not exist" error under it. Here Tab completes while a completion shows, and
moves on (as everywhere else) when none does.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input


class PathInput(Input):
    BINDINGS = [Binding("tab", "complete_or_next", "Complete", show=False)]

    def action_complete_or_next(self) -> None:
        if self.cursor_at_end and len(self._suggestion) > len(self.value):
            self.value = self._suggestion
            self.cursor_position = len(self.value)
        else:
            self.screen.focus_next()
