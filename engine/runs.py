"""The run registry: every run, however started, can be found again.

A run owns `<output>/.runs/<run-id>/` (pid, process identity, config copy, events.jsonl,
engine.log) and appends one line to the user's index `$XDG_STATE_HOME/tui-lora/runs.jsonl`. A run's
status is read from its events and its process: running, completed, stopped, failed, or lost (no
final event, and its process is gone or its pid now belongs to another process, see procid.py).
The index is shared by every run and edited by hand sometimes: a damaged line is skipped and
reported, never fatal. No torch here: `tui-lora runs` and the dashboard use it.
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .events import FINAL_STATUSES, read_events
from .problems import ProblemError, error
from .procid import is_same_process, process_identity
from .run_endings import read_endings, record_ending

MAX_INDEX_BYTES = 64_000_000  # years of runs; a larger "index" is not ours to read whole


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tui-lora"


def run_index_path() -> Path:
    return state_dir() / "runs.jsonl"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class RunDir:
    """Files of one run."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def pid_file(self) -> Path:
        return self.path / "pid"

    @property
    def config_copy(self) -> Path:
        return self.path / "run.yaml"

    @property
    def process_file(self) -> Path:
        return self.path / "process.json"

    @property
    def log(self) -> Path:
        return self.path / "engine.log"

    @property
    def console_log(self) -> Path:
        return self.path / "console.log"


def create_run(output_dir: str | os.PathLike, *, run_id: str | None = None, config_text: str = "",
               config_path: str | None = None, output_name: str = "") -> RunDir:
    """Make the run's folder, write its pid and config copy, and add it to the user's index.

    A file system that refuses (full, read-only) raises ProblemError and leaves no half-made run
    folder behind."""
    run = RunDir(Path(output_dir).resolve() / ".runs" / (run_id or new_run_id()))
    existed = run.path.is_dir()  # the app's launcher makes the folder before the engine starts
    index = run_index_path()
    try:
        run.path.mkdir(parents=True, exist_ok=True)
        record_process(run)
        if config_text:
            run.config_copy.write_text(config_text, encoding="utf-8")
        index.parent.mkdir(parents=True, exist_ok=True)
        entry = {"run_id": run.run_id, "path": str(run.path), "config": config_path, "output_name": output_name,
                 "started": round(time.time(), 3)}
        with open(index, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
    except OSError as exc:
        if not existed:
            remove_run(run)
        in_the_way = index_problem()
        if in_the_way:
            raise ProblemError([error("run index", in_the_way, "")]) from None
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        where = exc.filename or run.path
        raise ProblemError([error(str(where), "the disk is full: the run could not be registered" if full else
                                  f"the run could not be registered: {exc.strerror or exc}",
                                  "free some space there, then start the run again" if full else
                                  "check that the output and state folders are writable")]) from None
    return run


def remove_run(run: RunDir) -> None:
    """Take back a registration whose run never started (a check after it failed). The index line
    stays (it is shared and append-only); readers skip runs whose folder is gone."""
    shutil.rmtree(run.path, ignore_errors=True)
    try:
        run.path.parent.rmdir()  # `.runs` when this was its only run
    except OSError:
        pass


def record_process(run: RunDir, pid: int | None = None) -> None:
    """Write the pid and what proves it later: the process's start time (see procid.py)."""
    identity = process_identity(pid)
    run.pid_file.write_text(str(identity["pid"]))
    run.process_file.write_text(json.dumps(identity), encoding="utf-8")


def run_pid(run: RunDir) -> int | None:
    """The run's pid while its own process still holds it; None once the run's process is gone,
    even if another process now has the number."""
    try:
        pid = int(run.pid_file.read_text().strip() or 0)
        written_at = run.pid_file.stat().st_mtime
    except (OSError, ValueError):
        return None
    started = None
    try:
        identity = json.loads(run.process_file.read_text(encoding="utf-8"))
        if identity.get("pid") == pid and isinstance(identity.get("started"), (int, float)):
            started = float(identity["started"])
    except (OSError, ValueError, AttributeError):
        pass  # no identity (an older run, or the launcher's pid): the pid file's time decides
    return pid if pid > 0 and is_same_process(pid, started=started, written_at=written_at) else None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


@dataclass
class RunInfo:
    run: RunDir
    status: str
    started: float
    output_name: str
    config: str | None
    last_event: dict[str, Any] | None
    note: str = ""  # how it ended, when its events file could not say (see run_endings.py)

    @property
    def run_id(self) -> str:
        return self.run.run_id


def run_status(run: RunDir, events: list[dict[str, Any]] | None = None,
               endings: dict[str, dict[str, Any]] | None = None) -> str:
    events = read_events(run.events) if events is None else events
    for event in reversed(events):
        if event.get("type") == "run_finished":
            status = event.get("status")
            return status if status in FINAL_STATUSES else "failed"
    ending = run_ending(run, endings)  # written as the run ends, when its events file had no room
    if ending is not None:
        return ending["status"]
    return "running" if run_pid(run) is not None else "lost"


def run_ending(run: RunDir, endings: dict[str, dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """The ending recorded in the state folder for a run whose events file could not take it."""
    return (read_endings(state_dir()) if endings is None else endings).get(str(run.path))


def record_run_ending(run: RunDir, status: str, message: str, hint: str = "") -> bool:
    return record_ending(state_dir(), run.path, status, message, hint)


def ending_events(run: RunDir, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recorded ending as the `error` and `run_finished` events the run could not write (none
    when its events say how it ended), so a reader shows it as if it had been written."""
    if _finished(events):
        return []
    ending = run_ending(run)
    if ending is None:
        return []
    when = events[-1].get("time", 0) if events else 0
    ended = [{"type": "run_finished", "time": when, "status": ending["status"], "message": ending["message"]}]
    if ending["status"] == "failed":
        ended.insert(0, {"type": "error", "time": when, "message": ending["message"], "hint": ending["hint"]})
    return ended


def index_problem() -> str | None:
    """Why the run index cannot be read or written (something else sits at its path), with the fix."""
    import stat

    index = run_index_path()
    try:
        mode = os.stat(index).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"the run index {index} cannot be read: {exc.strerror or exc}; check the state folder's permissions"
    if stat.S_ISREG(mode):
        return None
    what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
    return (f"the run index {index} is {what}, so runs cannot be listed or registered; move it aside "
            f"(e.g. `mv '{index}' '{index}.aside'`, which keeps it) and the next run starts a new index")


def _index_lines() -> list[bytes]:
    """The index's lines as bytes, read only from a regular file and at most MAX_INDEX_BYTES."""
    import stat

    try:
        with open(run_index_path(), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return []
            data = handle.read(MAX_INDEX_BYTES)
    except OSError:
        return []
    return data.splitlines()


def _entry(line: bytes) -> tuple[RunDir, float, str, str | None] | None:
    """One index line read defensively: (run folder, start time, output name, config) or None."""
    try:
        entry = json.loads(line.decode("utf-8"))
        path = entry["path"]
        started = entry.get("started", 0)
    except (UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(path, str) or not path or "\0" in path:
        return None
    if isinstance(started, bool) or not isinstance(started, (int, float)) or not math.isfinite(started) \
            or not 0 <= started < 1e11:
        return None
    name, config = entry.get("output_name"), entry.get("config")
    return (RunDir(Path(path)), float(started), name if isinstance(name, str) else "",
            config if isinstance(config, str) else None)


def list_runs(damaged: list[str] | None = None) -> list[RunInfo]:
    """Every indexed run whose folder still exists, newest first. Lines that cannot be read are
    skipped; pass a list as `damaged` to hear about them (one description per line)."""
    infos: list[RunInfo] = []
    seen: set[str] = set()
    endings = read_endings(state_dir())
    for number, line in enumerate(_index_lines(), start=1):
        if not line.strip():
            continue
        entry = _entry(line)
        if entry is None:
            if damaged is not None:
                damaged.append(f"{run_index_path()} line {number}")
            continue
        run, started, name, config = entry
        try:
            if str(run.path) in seen or not run.path.is_dir():
                continue
        except (OSError, ValueError):
            continue
        seen.add(str(run.path))
        events = read_events(run.events)
        status = run_status(run, events, endings)
        ending = endings.get(str(run.path)) if not _finished(events) else None
        note = " — ".join(t for t in (ending["message"], ending["hint"]) if t) if ending else ""
        infos.append(RunInfo(run, status, started, name, config, events[-1] if events else None, note))
    infos.sort(key=lambda info: info.started, reverse=True)
    return infos


def _finished(events: list[dict[str, Any]]) -> bool:
    return any(e.get("type") == "run_finished" for e in events)


def find_run(selector: str | None = None) -> RunInfo | None:
    """A run by id (or unique id prefix, or run folder path); default: newest running, else newest."""
    runs = list_runs()
    if selector:
        path = Path(selector)
        if path.is_dir() and (path / "events.jsonl").exists():
            run = RunDir(path.resolve())
            events = read_events(run.events)
            return RunInfo(run, run_status(run, events), 0.0, "", None, events[-1] if events else None)
        matches = [r for r in runs if r.run_id == selector] or [r for r in runs if r.run_id.startswith(selector)]
        return matches[0] if len(matches) == 1 else None
    running = [r for r in runs if r.status == "running"]
    return (running or runs or [None])[0]
