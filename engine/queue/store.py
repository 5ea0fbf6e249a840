"""The queue's state: one JSON file beside the run index, changed only under a file lock.

`$XDG_STATE_HOME/tui-lora/queue/queue.json` holds the entries in queue order (finished ones stay
where they ran, so the list reads as a history), the paused flag and counters. Every change is
read-modify-write inside `transaction()`: a `filelock.FileLock` on `queue.lock` makes two
`queue add` from two shells land one after the other, and the file is replaced atomically, so a
reader without the lock (the UI, `monitor`) always sees a whole file. Snapshots of added run files
live in `queue/snapshots/<id>.yaml`. No torch here.
"""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..atomic import write_bytes_atomic
from ..runs import state_dir
from .store_shape import QueueDamaged, QueueTrouble, typed_state

__all__ = ["QueueBusy", "QueueDamaged", "QueueTrouble", "Entry", "QueueState", "read_state", "transaction"]

LOCK_TIMEOUT_S = 30.0
FINISHED = ("completed", "failed", "stopped", "lost", "skipped")
KEEP_FINISHED = 200  # older finished entries are dropped so the file stays small


def queue_dir() -> Path:
    return state_dir() / "queue"


def queue_file() -> Path:
    return queue_dir() / "queue.json"


def snapshots_dir() -> Path:
    return queue_dir() / "snapshots"


class QueueBusy(QueueTrouble):
    """Another tui-lora process held the queue's lock for too long."""


@dataclass
class Entry:
    id: int
    source: str  # the run file as the user named it (absolute)
    snapshot: str  # the copy that will run
    cwd: str  # relative paths in the run file mean what they meant here
    name: str  # folders.output_name
    output: str  # folders.output, absolute
    processes: int = 1  # hardware.num_processes
    gpu_ids: list[int] = field(default_factory=list)  # hardware.gpu_ids
    stop_on_failure: bool = False  # queue.stop_on_failure
    save_state: bool = False  # training.save_state: a lost run resumes
    batch: int = 1
    added: float = 0.0
    status: str = "queued"  # queued | running | completed | failed | stopped | lost | skipped
    reason: str = ""
    run_id: str = ""
    run_path: str = ""
    worker_pid: int = 0
    devices: list[int] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    resume: bool = False  # start with --resume latest
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier attempts (lost, then resumed)

    @property
    def finished_state(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Entry":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class QueueState:
    entries: list[Entry] = field(default_factory=list)
    paused: bool = False
    pause_reason: str = ""
    next_id: int = 1
    batch: int = 0

    def get(self, entry_id: int) -> Entry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def queued(self) -> list[Entry]:
        return [e for e in self.entries if e.status == "queued"]

    def running(self) -> list[Entry]:
        return [e for e in self.entries if e.status == "running"]

    def current_batch(self) -> list[Entry]:
        """The entries added since the queue was last empty: what `queue 2/5` counts."""
        return [e for e in self.entries if e.batch == self.batch]

    def position(self, entry: Entry) -> tuple[int, int]:
        """(k, M) for `queue k/M` within the entry's batch."""
        batch = [e for e in self.entries if e.batch == entry.batch]
        return batch.index(entry) + 1, len(batch)

    def find_run(self, run_id: str) -> Entry | None:
        return next((e for e in self.entries if run_id and e.run_id == run_id), None)

    def to_json(self) -> str:
        data = {"version": 1, "paused": self.paused, "pause_reason": self.pause_reason, "next_id": self.next_id,
                "batch": self.batch, "entries": [asdict(e) for e in self.entries]}
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, path: Any = "queue.json") -> "QueueState":
        """The state, its shape checked (QueueDamaged names what is wrong)."""
        return cls(**typed_state(text, path, Entry))

    def trim_history(self) -> None:
        finished = [e for e in self.entries if e.finished_state and e.batch != self.batch]
        for old in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            self.entries.remove(old)
            Path(old.snapshot).unlink(missing_ok=True)


def read_state() -> QueueState:
    """The queue as last written (no lock: writes replace the file whole)."""
    path = queue_file()
    try:
        with open(path, "rb") as handle:
            data = handle.read(64 * 1024 * 1024)
    except FileNotFoundError:
        return QueueState()
    except IsADirectoryError:
        raise QueueDamaged(f"{path} is a folder, not the queue's file; move it aside (e.g. `mv {path} "
                           f"{path}.damaged`, which keeps it) and the queue starts empty") from None
    except OSError as exc:
        raise QueueTrouble(f"{path} cannot be read: {exc.strerror or exc}; check the file and its folder") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise QueueDamaged(f"{path} is damaged: not UTF-8 text; move it aside (e.g. `mv {path} {path}.damaged`, "
                           "which keeps it) and the queue starts empty") from None
    return QueueState.from_json(text, path)


def unwritable(path: Any, exc: OSError, what: str = "the queue's file") -> QueueTrouble:
    """The message for a write of the queue's own files that failed (a full disk, a folder in the way)."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return QueueTrouble(f"the disk holding {path} is full, so {what} cannot be written; nothing was "
                            "changed: free some space and try again")
    if isinstance(exc, (IsADirectoryError, NotADirectoryError, FileExistsError)):
        return QueueTrouble(f"{exc.filename or path} is in the way of {what} (a folder where a file belongs, or "
                            "a file where a folder belongs); move it aside (which keeps it) and try again")
    return QueueTrouble(f"{what} ({path}) cannot be written: {exc.strerror or exc}; check the folder's "
                        "permissions and free space")


@contextmanager
def transaction(timeout: float = LOCK_TIMEOUT_S) -> Iterator[QueueState]:
    """Read the queue under its lock, let the caller change it, write it back atomically.
    The queue's own files in the wrong shape, or a full disk, raise QueueTrouble, never a traceback."""
    lock_path = queue_dir() / "queue.lock"
    try:
        queue_dir().mkdir(parents=True, exist_ok=True)
        if lock_path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(lock_path))
        lock = FileLock(str(lock_path))
        lock.acquire(timeout=timeout)
    except Timeout as exc:
        raise QueueBusy(f"the queue is locked by another tui-lora process ({lock_path}); "
                        "try again in a moment") from exc
    except OSError as exc:
        raise unwritable(lock_path, exc, "the queue's lock") from None
    try:
        state = read_state()
        before = state.to_json()
        yield state
        state.trim_history()
        text = state.to_json()
        if text != before:
            try:
                write_bytes_atomic(queue_file(), text.encode("utf-8"))
            except OSError as exc:
                raise unwritable(queue_file(), exc) from None
    finally:
        lock.release()


def new_entry(state: QueueState, *, front: bool = False, **values: Any) -> Entry:
    """Append (or put first among the waiting entries) a new entry; starts a new batch when the
    queue had nothing waiting or running."""
    if not state.queued() and not state.running():
        state.batch += 1
    entry = Entry(id=state.next_id, batch=state.batch, added=round(time.time(), 3), **values)
    state.next_id += 1
    waiting = state.queued()
    if front and waiting:
        state.entries.insert(state.entries.index(waiting[0]), entry)
    else:
        state.entries.append(entry)
    return entry


def move_entry(state: QueueState, entry: Entry, position: int) -> int:
    """Put a waiting entry at `position` (1 = next to start) among the waiting entries; returns
    the position it got (clamped to the list)."""
    waiting = state.queued()
    position = max(1, min(position, len(waiting)))
    state.entries.remove(entry)
    waiting.remove(entry)
    if position - 1 < len(waiting):
        state.entries.insert(state.entries.index(waiting[position - 1]), entry)
    else:
        state.entries.append(entry)
    return position


def finish_entry(entry: Entry, status: str, reason: str = "") -> None:
    entry.status = status
    entry.reason = reason
    entry.finished = round(time.time(), 3)
