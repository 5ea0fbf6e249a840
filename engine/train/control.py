"""Signals from outside the run: stop (SIGINT/SIGTERM) and save-now (SIGUSR1).

Handlers only set flags; the loop acts on them between steps, so a stop always finishes the
current step and writes a complete file. Explicit handlers matter: a process started in the
background by a shell ignores SIGINT unless it installs its own.
"""

from __future__ import annotations

import signal
import threading


class RunControl:
    def __init__(self) -> None:
        self.stop_requested = threading.Event()
        self.save_requested = threading.Event()
        self.stop_signal: str | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled in the main thread (tests run loops elsewhere)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGTERM, self._on_stop)
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, self._on_save)

    def _on_stop(self, signum, frame) -> None:  # noqa: ANN001
        if self.stop_requested.is_set():
            # A second Ctrl+C while the stop is in progress: the user means it.
            raise KeyboardInterrupt
        self.stop_signal = signal.Signals(signum).name
        self.stop_requested.set()

    def _on_save(self, signum, frame) -> None:  # noqa: ANN001
        self.save_requested.set()
