"""What the wizard remembers between sessions: recent run files and the chosen theme.

Stored as one small JSON file in the user's state folder (`$XDG_STATE_HOME/tui-lora/wizard.json`,
beside the run index). A missing or damaged file means "nothing remembered", never an error:
losing this file must not stop anyone from working.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import write_text_atomic
from engine.runs import state_dir

STATE_FILE = "wizard.json"
MAX_RECENT = 8


def data_dir() -> Path:
    """tui-lora's data folder (`$XDG_DATA_HOME/tui-lora`): where the demo's files live."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tui-lora"


@dataclass
class UserState:
    theme: str | None = None
    recent: list[str] = field(default_factory=list)  # absolute paths, newest first

    @classmethod
    def load(cls, path: Path | None = None) -> UserState:
        path = path or state_dir() / STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        theme = data.get("theme") if isinstance(data.get("theme"), str) else None
        recent = [p for p in data.get("recent", []) if isinstance(p, str)][:MAX_RECENT]
        return cls(theme=theme, recent=recent)

    def save(self, path: Path | None = None) -> bool:
        """Write the state; False (and nothing raised) when the folder is not writable."""
        path = path or state_dir() / STATE_FILE
        text = json.dumps({"theme": self.theme, "recent": self.recent}, indent=2)
        try:
            write_text_atomic(path, text + "\n", overwrite=True)
        except OSError:
            return False
        return True

    def remember_file(self, file: str | os.PathLike) -> None:
        """Put a run file at the top of the recent list (once)."""
        absolute = str(Path(file).expanduser().resolve())
        self.recent = [absolute] + [p for p in self.recent if p != absolute]
        del self.recent[MAX_RECENT:]
