"""A refused start told to whoever watches the run's folder.

The app's launcher makes `<output>/.runs/<run_id>` and opens the dashboard on it before the engine
has checked anything. When the engine then refuses the run (its output files exist, a package is
missing, ...), the dashboard would only see a process that ended without a word ("lost"). So the
refusal is written there as the two events a failed run ends with: `error` (the engine's own
message and hint) and `run_finished` (status failed). Only into a folder the launcher made: a run
started from a shell leaves nothing behind, as before.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .events import EventWriter
from .problems import Problem
from .runs import RunDir

_SAFE_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")  # as the engine accepts for --run-id


def refusal_text(problems: list[Problem]) -> tuple[str, str]:
    """The message and hint the engine prints for a refusal, as one line each."""
    errors = [p for p in problems if p.is_error] or list(problems)
    message = "; ".join(f"{p.field}: {p.message}" for p in errors) or "the run was refused"
    hint = "; ".join(p.hint for p in errors if p.hint)
    return message, hint


def record_refusal(output_dir: str | os.PathLike, run_id: str | None, problems: list[Problem]) -> bool:
    """Write the refusal into the launcher's run folder; False when there is none to write into."""
    if not run_id or not _SAFE_RUN_ID.fullmatch(run_id):
        return False
    run = RunDir(Path(output_dir).resolve() / ".runs" / run_id)
    if not run.path.is_dir() or run.events.exists():
        return False  # no launcher folder, or the run got far enough to report its own end
    message, hint = refusal_text(problems)
    try:
        with EventWriter(run.events) as events:
            events.emit("error", message=message, hint=hint)
            events.emit("run_finished", status="failed", outputs=[], step=0,
                        message=f"nothing was started: {message}")
    except OSError:
        return False  # a full disk: the console log still has the words
    return True
