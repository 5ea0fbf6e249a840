"""Completes file and folder names as a path is typed (→ accepts, as in a shell)."""

from __future__ import annotations

import os
from pathlib import Path

from textual.suggester import Suggester


class PathSuggester(Suggester):
    """Suggests the first entry of the typed folder that starts with the typed name."""

    def __init__(self, *, folders_only: bool = False, suffixes: tuple[str, ...] = ()):
        # no cache: the disk changes while the wizard is open
        super().__init__(use_cache=False, case_sensitive=True)
        self.folders_only = folders_only
        self.suffixes = suffixes

    async def get_suggestion(self, value: str) -> str | None:
        if not value or "\n" in value or value.endswith("/"):
            return None  # nothing typed of the next name yet
        folder_text, slash, partial = value.rpartition("/")
        folder = Path(os.path.expanduser(folder_text or "/")) if slash else Path(".")
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return None
        for name in names:
            if not name.startswith(partial) or name == partial or (name.startswith(".") and not partial.startswith(".")):
                continue
            is_dir = (folder / name).is_dir()
            if self.folders_only and not is_dir:
                continue
            if self.suffixes and not is_dir and not name.lower().endswith(self.suffixes):
                continue
            prefix = value[: len(value) - len(partial)]
            return prefix + name + ("/" if is_dir else "")
        return None
