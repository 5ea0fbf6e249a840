"""The run registry: every run, however started, can be found again.

A run owns `<output>/.runs/<run-id>/` (pid, config copy, events.jsonl, engine.log) and appends one
line to the user's index `$XDG_STATE_HOME/tui-lora/runs.jsonl`. A run's status is read from its
events and its pid: running, completed, stopped, failed, or lost (pid gone, no final event).
No torch here: `tui-lora runs` and the dashboard use it.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .events import FINAL_STATUSES, read_events


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
    def log(self) -> Path:
        return self.path / "engine.log"


def create_run(output_dir: str | os.PathLike, *, run_id: str | None = None, config_text: str = "",
               config_path: str | None = None, output_name: str = "") -> RunDir:
    """Make the run's folder, write its pid and config copy, and add it to the user's index."""
    run = RunDir(Path(output_dir).resolve() / ".runs" / (run_id or new_run_id()))
    run.path.mkdir(parents=True, exist_ok=True)
    run.pid_file.write_text(str(os.getpid()))
    if config_text:
        run.config_copy.write_text(config_text, encoding="utf-8")
    index = run_index_path()
    index.parent.mkdir(parents=True, exist_ok=True)
    entry = {"run_id": run.run_id, "path": str(run.path), "config": config_path, "output_name": output_name,
             "started": round(time.time(), 3)}
    with open(index, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
    return run


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

    @property
    def run_id(self) -> str:
        return self.run.run_id


def run_status(run: RunDir, events: list[dict[str, Any]] | None = None) -> str:
    events = read_events(run.events) if events is None else events
    for event in reversed(events):
        if event.get("type") == "run_finished":
            status = event.get("status")
            return status if status in FINAL_STATUSES else "failed"
    try:
        pid = int(run.pid_file.read_text().strip() or 0)
    except (OSError, ValueError):
        pid = 0
    return "running" if pid_alive(pid) else "lost"


def list_runs() -> list[RunInfo]:
    """Every indexed run whose folder still exists, newest first."""
    infos: list[RunInfo] = []
    seen: set[str] = set()
    try:
        lines = run_index_path().read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
            run = RunDir(Path(entry["path"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        if str(run.path) in seen or not run.path.is_dir():
            continue
        seen.add(str(run.path))
        events = read_events(run.events)
        infos.append(RunInfo(run, run_status(run, events), float(entry.get("started", 0)), entry.get("output_name", ""),
                             entry.get("config"), events[-1] if events else None))
    infos.sort(key=lambda info: info.started, reverse=True)
    return infos


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
