"""How a run ended, kept in the state folder when its own events file could not take the news.

A run that ends on a full disk cannot append `run_finished` to its events file (it sits on the
full disk), so readers would call it `lost`, and the note saying where its weights were rescued to
would be gone. The ending goes to `<state>/run_endings.jsonl` instead (the state folder is usually
on another disk; if that is full too, nothing more can be done). `runs` and `monitor` read it.
Torch-free.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

MAX_BYTES = 4 * 1024 * 1024
FILE_NAME = "run_endings.jsonl"


def record_ending(state: Path, run_path: Path, status: str, message: str, hint: str = "") -> bool:
    """Append the ending; False when that fails too."""
    line = json.dumps({"path": str(run_path), "status": status, "message": message, "hint": hint,
                       "time": round(time.time(), 3)}) + "\n"
    try:
        state.mkdir(parents=True, exist_ok=True)
        with open(state / FILE_NAME, "a", encoding="utf-8") as handle:
            handle.write(line)
        return True
    except OSError:
        return False


def read_endings(state: Path) -> dict[str, dict[str, Any]]:
    """Run folder → its recorded ending {status, message, hint}; damaged lines are skipped."""
    import stat

    try:
        with open(state / FILE_NAME, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return {}
            data = handle.read(MAX_BYTES)
    except OSError:
        return {}
    endings: dict[str, dict[str, Any]] = {}
    for line in data.splitlines():
        try:
            entry = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            continue
        if isinstance(entry, dict) and isinstance(entry.get("path"), str) and entry.get("status") in (
                "completed", "stopped", "failed"):
            endings[entry["path"]] = {"status": entry["status"], "message": str(entry.get("message") or ""),
                                      "hint": str(entry.get("hint") or "")}
    return endings
