"""Helpers for the queue tests: run files on the tiny model, waiting, and cleaning up workers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from engine.config import save_run_file
from engine.queue.store import read_state
from engine.queue.worker_claims import live_workers


def write_run(tiny_config, folder: Path, name: str, **overrides) -> Path:
    """A run file for the tiny model at 64 px (2 steps) writing `<name>.safetensors`."""
    return save_run_file(tiny_config(folders__output_name=name, **overrides), folder / f"{name}.yaml")


def wait_for(predicate, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def statuses() -> list[str]:
    return [e.status for e in read_state().entries]


def queue_drained() -> bool:
    state = read_state()
    return bool(state.entries) and not state.queued() and not state.running() and not live_workers()


def kill_workers() -> None:
    """Teardown: no worker (or run it started) outlives its test."""
    for worker in live_workers():
        if worker.pid == os.getpid():
            continue
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
