"""Signals from outside the run: stop (SIGINT/SIGTERM) and save-now (SIGUSR1).

Handlers only set flags; the loop acts on them between steps, so a stop always finishes the
current step and writes a complete file. Explicit handlers matter: a process started in the
background by a shell ignores SIGINT unless it installs its own.
"""

from __future__ import annotations

import signal
import threading


class StopRequested(Exception):
    """Raised where a stop can be honoured before training begins (loading, caching latents)."""


class RunControl:
    def __init__(self) -> None:
        self.stop_requested = threading.Event()
        self.save_requested = threading.Event()
        self.stop_signal: str | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled in the main thread (tests run loops elsewhere)
        wanted = {signal.SIGINT: self._on_stop, signal.SIGTERM: self._on_stop}
        if hasattr(signal, "SIGUSR1"):
            wanted[signal.SIGUSR1] = self._on_save
        for signum, handler in wanted.items():
            self._previous[signum] = signal.signal(signum, handler)

    def uninstall(self) -> None:
        """Give the signals back to whoever had them (a library caller's process lives on)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def check_stop(self) -> None:
        if self.stop_requested.is_set():
            raise StopRequested(self.stop_signal or "request")

    def _on_stop(self, signum, frame) -> None:
        if self.stop_requested.is_set():
            # A second Ctrl+C while the stop is in progress: the user means it.
            raise KeyboardInterrupt
        self.stop_signal = signal.Signals(signum).name
        self.stop_requested.set()

    def _on_save(self, signum, frame) -> None:
        self.save_requested.set()
