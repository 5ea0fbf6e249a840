"""Signals from outside the run: stop (SIGINT/SIGTERM), save-now (SIGUSR1) and hang-up (SIGHUP).

The first stop is graceful: handlers only set flags, and the loop acts on them between steps, so
the current step finishes and a complete file is written. Explicit handlers matter: a process
started in the background by a shell ignores SIGINT unless it installs its own.

When the engine owns its process (`tui-lora train`, `python -m engine train`), a watcher thread
also hears every signal the moment it arrives (through `signal.set_wakeup_fd`), even while the
main thread is deep inside one long tensor operation, where Python-level handlers cannot run:
- a second stop, or any stop before training has begun (loading the model, caching latents),
  ends the process at once through `on_abort`, which records the run as stopped;
- a hang-up (the SSH connection dropped) moves the console output into the run's log and the run
  goes on, so `tui-lora monitor` finds it from a new session.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(Exception):
    """Raised where a stop can be honoured before training begins (loading, caching latents)."""


class RunControl:
    def __init__(self, *, owns_process: bool = False) -> None:
        self.stop_requested = threading.Event()
        self.save_requested = threading.Event()
        self.stop_signal: str | None = None
        self.owns_process = owns_process
        self.training = False  # set once steps run: from then on the first stop is graceful
        # Called on the watcher thread with the reason; the process exits (status 3) right after.
        self.on_abort: Callable[[str], None] | None = None
        self.hangup_log: str | None = None  # where console output goes after a hang-up
        self.on_hangup: list[Callable[[], None]] = []
        self.hung_up = False
        self._stops = 0
        self._previous: dict[int, object] = {}
        self._wakeup: tuple[int, int] | None = None
        self._previous_wakeup = -1
        self._watcher: threading.Thread | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled in the main thread (tests run loops elsewhere)
        wanted = {signal.SIGINT: self._on_stop, signal.SIGTERM: self._on_stop}
        if hasattr(signal, "SIGUSR1"):
            wanted[signal.SIGUSR1] = self._on_save
        if self.owns_process and hasattr(signal, "SIGHUP"):
            wanted[signal.SIGHUP] = self._on_hangup_signal
        for signum, handler in wanted.items():
            self._previous[signum] = signal.signal(signum, handler)
        if self.owns_process:
            self._start_watcher()

    def uninstall(self) -> None:
        """Give the signals back to whoever had them (a library caller's process lives on)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
        if self._wakeup is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            read_end, write_end = self._wakeup
            self._wakeup = None
            os.close(write_end)  # the watcher reads end-of-file and ends
            if self._watcher is not None:
                self._watcher.join(timeout=2)
            os.close(read_end)

    def check_stop(self) -> None:
        if self.stop_requested.is_set():
            raise StopRequested(self.stop_signal or "request")

    # -- Python-level handlers (main thread, between bytecodes) ----------------------------------
    def _on_stop(self, signum, frame) -> None:
        if self._wakeup is not None:
            return  # the watcher has handled it already
        if self.stop_requested.is_set():
            # A second Ctrl+C while the stop is in progress: the user means it.
            raise KeyboardInterrupt
        self.stop_signal = signal.Signals(signum).name
        self.stop_requested.set()

    def _on_save(self, signum, frame) -> None:
        self.save_requested.set()

    def _on_hangup_signal(self, signum, frame) -> None:
        if self._wakeup is None:
            self.hang_up()

    # -- the watcher thread ----------------------------------------------------------------------
    def _start_watcher(self) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)  # the C-level handler must never block
        try:
            self._previous_wakeup = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(read_end)
            os.close(write_end)
            return
        self._wakeup = (read_end, write_end)
        self._watcher = threading.Thread(target=self._watch, args=(read_end,), name="signal-watcher", daemon=True)
        self._watcher.start()

    def _watch(self, read_end: int) -> None:
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                self.handle_signal(signum)

    def handle_signal(self, signum: int) -> None:
        """What each signal means to a run (the watcher calls it; tests may too)."""
        if signum in STOP_SIGNALS:
            self._stops += 1
            if self._stops == 1:
                self.stop_signal = signal.Signals(signum).name
                self.stop_requested.set()
            if self._stops > 1 or not self.training:
                name = signal.Signals(signum).name
                reason = (f"stopped at once by a second stop ({name})" if self._stops > 1 else
                          f"stopped by {name} before training began")
                self.abort(reason)
        elif hasattr(signal, "SIGUSR1") and signum == signal.SIGUSR1:
            self.save_requested.set()
        elif hasattr(signal, "SIGHUP") and signum == signal.SIGHUP:
            self.hang_up()

    def abort(self, reason: str) -> None:
        """End the process now: the run records why, unfinished temporary files go, saved ones stay."""
        try:
            if self.on_abort is not None:
                self.on_abort(reason)
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os._exit(3)

    def hang_up(self) -> None:
        """The terminal is gone: console output goes to the run's log from now on, the run goes on."""
        if self.hung_up:
            return
        self.hung_up = True
        target = self.hangup_log or os.devnull
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            fd = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        try:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
        except OSError:
            pass
        for callback in self.on_hangup:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a display detail must not end the run
                pass
        print("the terminal closed (hang-up): the run goes on; this log continues here", flush=True)
