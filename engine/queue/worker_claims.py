"""Which queue workers are alive, and which devices each one holds.

A worker proves it is alive by holding a lock: `queue/workers/<pid>.lock` for as long as it runs.
The kernel drops the lock when the process ends, however it ends (kill -9 included), so a stale
`<pid>.json` beside a free lock means a dead worker, and a reused pid cannot pass for it: the pid
and its start time (from /proc) are recorded only to be shown. Devices are claimed the same way,
one lock per GPU (`queue/devices/gpu<N>.lock`, or `cpu.lock` on a machine without GPUs), held for
the worker's whole life: two workers can never hold the same GPU, so two runs never share one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from .store import queue_dir

CLAIM_WAIT_S = 2.0  # a probe by another process holds a lock for a moment; wait that out


def workers_dir() -> Path:
    return queue_dir() / "workers"


def devices_dir() -> Path:
    return queue_dir() / "devices"


def process_start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' when unknown)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


@dataclass
class WorkerInfo:
    pid: int
    start_time: str
    gpus: list[int] = field(default_factory=list)  # empty: the CPU
    started: float = 0.0
    log: str = ""

    @property
    def devices_text(self) -> str:
        return "GPU " + ",".join(map(str, self.gpus)) if self.gpus else "CPU"


def _lock_held(path: Path) -> bool:
    """True when another open file holds the lock (the probe takes and drops it otherwise)."""
    if not path.exists():
        return False
    probe = FileLock(str(path))
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


def worker_alive(pid: int) -> bool:
    return bool(pid) and _lock_held(workers_dir() / f"{pid}.lock")


def live_workers() -> list[WorkerInfo]:
    """Workers holding their liveness lock now; files of dead ones are removed."""
    found = []
    folder = workers_dir()
    for info_file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            info = WorkerInfo(**json.loads(info_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if worker_alive(info.pid):
            found.append(info)
        else:
            info_file.unlink(missing_ok=True)
            info_file.with_suffix(".lock").unlink(missing_ok=True)
    return found


class DevicesTaken(RuntimeError):
    pass


def _device_lock(device: int | None) -> Path:
    return devices_dir() / ("cpu.lock" if device is None else f"gpu{device}.lock")


class WorkerClaim:
    """The locks a running worker holds: its liveness lock and one per device it owns."""

    def __init__(self, gpus: list[int], log: str = ""):
        self.gpus = list(gpus)
        self.info = WorkerInfo(os.getpid(), process_start_time(os.getpid()), self.gpus, round(time.time(), 3), log)
        self._locks: list[FileLock] = []

    def acquire(self) -> None:
        """Take every lock or none; DevicesTaken says who holds a device."""
        workers_dir().mkdir(parents=True, exist_ok=True)
        devices_dir().mkdir(parents=True, exist_ok=True)
        paths = [workers_dir() / f"{self.info.pid}.lock"] + [_device_lock(d) for d in (self.gpus or [None])]
        for path in paths:
            lock = FileLock(str(path))
            try:
                lock.acquire(timeout=CLAIM_WAIT_S)
            except Timeout:
                self.release()
                raise DevicesTaken(_holder_text(path)) from None
            self._locks.append(lock)
        (workers_dir() / f"{self.info.pid}.json").write_text(json.dumps(asdict(self.info)), encoding="utf-8")

    def release(self) -> None:
        held = bool(self._locks)
        if held:
            (workers_dir() / f"{self.info.pid}.json").unlink(missing_ok=True)
        for lock in reversed(self._locks):
            lock.release()
        self._locks.clear()
        if held:  # a later process with this pid makes its own
            (workers_dir() / f"{self.info.pid}.lock").unlink(missing_ok=True)


def _holder_text(path: Path) -> str:
    name = path.stem
    if not name.startswith(("gpu", "cpu")):
        return f"a queue worker with pid {name} already runs"
    device = "the CPU" if name == "cpu" else f"GPU {name[3:]}"
    holders = [w for w in live_workers() if (name == "cpu" and not w.gpus) or (name != "cpu" and int(name[3:]) in w.gpus)]
    who = f"queue worker pid {holders[0].pid} ({holders[0].devices_text})" if holders else "another queue worker"
    return f"{device} is already used by {who}"
