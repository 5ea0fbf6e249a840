"""Controlling a run from the UI: signals to the engine's pid (docs/design.md, "Process model").

SIGINT asks the engine to finish the step, save and exit; SIGUSR1 asks for a checkpoint at the
next step. Both are no-ops, with a message saying so, once the process is gone. When the control
comes from a run folder, "alive" means the run's own process (its recorded start time still
matches), so a pid that a finished run left behind and the system gave to another program is
never signalled.
"""

from __future__ import annotations

import os
import signal

from engine.runs import RunDir, pid_alive, run_pid


class RunControl:
    def __init__(self, pid: int, run: RunDir | None = None):
        self.pid = pid
        self.run = run

    @classmethod
    def from_run(cls, run: RunDir) -> "RunControl | None":
        """Control over the pid the run registered, or None when its pid file is missing or unreadable."""
        try:
            pid = int(run.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return cls(pid, run) if pid > 0 else None

    def alive(self) -> bool:
        if self.run is not None:
            return run_pid(self.run) == self.pid
        return pid_alive(self.pid)

    def stop(self) -> str:
        """Ask the run to save and exit; returns what happened, in words for the UI."""
        return self._send(signal.SIGINT, "Stop requested: the run saves its LoRA, then exits.")

    def save_now(self) -> str:
        """Ask for a checkpoint at the next step; the run goes on."""
        return self._send(signal.SIGUSR1, "Checkpoint requested: it is saved after the current step.")

    def _send(self, signum: signal.Signals, done: str) -> str:
        if not self.alive():
            return f"The run has already ended (process {self.pid} is gone); nothing was sent."
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            return f"The run has already ended (process {self.pid} is gone); nothing was sent."
        except PermissionError:
            return f"Not allowed to signal process {self.pid}: it belongs to another user."
        return done

    def __repr__(self) -> str:
        return f"RunControl(pid={self.pid})"
