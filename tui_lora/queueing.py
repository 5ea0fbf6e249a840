"""Adding run files to the queue and making sure a worker drains it (used by the CLI and the app).

Adding checks each file as `validate` does; when one is bad nothing is queued. A good file is
copied (the snapshot is what runs: editing the file later changes nothing; adding it again queues
the new version) together with the folder it was added from, since relative paths in a run file
mean what they mean there. Then a detached worker is started unless one is alive.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.atomic import write_bytes_atomic
from engine.config.yamlio import read_run_text
from engine.problems import Problem, ProblemError, warning
from engine.queue.checks import check_run_file
from engine.queue.store import Entry, QueueBusy, move_entry, new_entry, queue_dir, snapshots_dir, transaction, unwritable
from engine.queue.worker_claims import live_workers, worker_alive
from filelock import FileLock, Timeout

from .launch import start_detached

WORKER_START_WAIT_S = 20.0  # a worker imports little; a loaded machine may still take seconds


@dataclass
class Added:
    entry: Entry
    position: int  # among the waiting entries, 1 = next
    warnings: list[Problem] = field(default_factory=list)


@dataclass
class Checked:
    path: Path
    text: str
    values: dict
    warnings: list[Problem]


def check_files(paths: list[str]) -> tuple[list[Checked], dict[str, list[Problem]]]:
    """(files that may be queued, problems of those that may not) — the checks of `validate`."""
    good, bad = [], {}
    for name in paths:
        path = Path(name).expanduser().absolute()
        try:
            text = read_run_text(path)
        except ProblemError as exc:
            bad[name] = exc.problems
            continue
        cfg, _, problems = check_run_file(name, text)
        if cfg is None or any(p.is_error for p in problems):
            bad[name] = problems
            continue
        good.append(Checked(path, text, dict(cfg.values), problems))
    return good, bad


def add_checked(files: list[Checked], *, front: bool = False) -> list[Added]:
    """Snapshot the files and append them (in this order) under one lock."""
    cwd = os.getcwd()
    added: list[Added] = []
    written: list[Path] = []
    try:
        with transaction() as state:
            _add_under_lock(state, files, cwd, front, added, written)
    except BaseException:
        for snapshot in written:  # nothing was queued, so no copy stays behind
            snapshot.unlink(missing_ok=True)
        raise
    return added


def _add_under_lock(state, files: list[Checked], cwd: str, front: bool, added: list[Added], written: list[Path]) -> None:
    for offset, checked in enumerate(files):
        values = checked.values
        output = Path(cwd, str(values["folders.output"])).resolve()
        snapshot = snapshots_dir() / f"{state.next_id}.yaml"
        try:
            write_bytes_atomic(snapshot, checked.text.encode("utf-8"))
        except OSError as exc:
            raise unwritable(snapshot, exc, "the queue's copy of the run file") from None
        written.append(snapshot)
        notes = _clash_warnings(state.queued() + state.running(), output, values)
        entry = new_entry(state, front=False, source=str(checked.path), snapshot=str(snapshot), cwd=cwd,
                          name=str(values["folders.output_name"]), output=str(output),
                          processes=int(values["hardware.num_processes"]), gpu_ids=list(values["hardware.gpu_ids"]),
                          stop_on_failure=bool(values["queue.stop_on_failure"]),
                          save_state=bool(values["training.save_state"]))
        if front:
            move_entry(state, entry, 1 + offset)
        added.append(Added(entry, state.queued().index(entry) + 1, checked.warnings + notes))


def _clash_warnings(others: list[Entry], output: Path, values: dict) -> list[Problem]:
    name = str(values["folders.output_name"])
    extension = "ckpt" if values["model.save_as"] == "ckpt" else "safetensors"
    notes = []
    if (output / f"{name}.{extension}").exists() and not values["overwrite"] and not values["training.save_state"]:
        notes.append(warning("folders.output_name", f"{output / name}.{extension} exists already",
                             "the run is skipped at its turn unless the file is gone or overwrite is true"))
    same = [e for e in others if e.name == name and Path(e.output) == output]
    if same:
        notes.append(warning("folders.output_name", f"#{same[0].id} in the queue writes the same file",
                             "the later of the two is skipped at its turn unless overwrite is true"))
    return notes


@dataclass
class WorkerStart:
    pid: int = 0  # the worker started now (0: none started)
    running: list = field(default_factory=list)  # workers already alive
    message: str = ""


def worker_command(gpus: list[int] | None) -> list[str]:
    return [sys.executable, "-m", "engine.queue", "work"] + (["--gpus", ",".join(map(str, gpus))] if gpus else [])


def ensure_worker(gpus: list[int] | None = None, *, paused: bool = False) -> WorkerStart:
    """Start a detached worker unless one is alive (with `gpus`: unless one holds any of them)."""
    live = live_workers()
    if paused:
        return WorkerStart(running=live, message="the queue is paused: `tui-lora queue resume` starts it again")
    if gpus is None and live:
        return WorkerStart(running=live, message=_already(live))
    if gpus is not None:
        clash = [w for w in live if set(w.gpus) & set(gpus) or not w.gpus]
        if clash:
            return WorkerStart(running=live, message=f"GPU {','.join(map(str, gpus))}: already used by worker pid "
                               f"{clash[0].pid} ({clash[0].devices_text}); give a disjoint set")
    # One start at a time: a second `queue run` waits here until the first one's worker holds its
    # claim, then sees it alive instead of starting a worker that finds its devices taken.
    try:
        queue_dir().mkdir(parents=True, exist_ok=True)
        starting = FileLock(str(queue_dir() / "starting.lock"))
        starting.acquire(timeout=2 * WORKER_START_WAIT_S)
    except Timeout:
        raise QueueBusy("another tui-lora process is starting a queue worker; try again in a moment") from None
    except OSError as exc:
        raise unwritable(queue_dir() / "starting.lock", exc, "the queue's start lock") from None
    try:
        again = live_workers()
        if again and (gpus is None or any(set(w.gpus) & set(gpus) or not w.gpus for w in again)):
            return WorkerStart(running=again, message=_already(again))
        pid = start_detached(worker_command(gpus), queue_dir() / "worker.log", cwd=queue_dir())
        ended = _wait_until_claimed(pid)
    finally:
        starting.release()
    where = "GPU " + ",".join(map(str, gpus)) if gpus else "all GPUs (or the CPU)"
    log = queue_dir() / "worker.log"
    if ended is None or ended == 0:
        tail = "" if ended is None else "; it found nothing it could run and has ended"
        return WorkerStart(pid, live, f"started queue worker pid {pid} on {where}{tail}; its log: {log}")
    now = live_workers()
    if now:
        return WorkerStart(running=now, message=_already(now))
    return WorkerStart(running=now, message=f"the queue worker did not start: {_last_line(log)} (its log: {log})")


def _already(live: list) -> str:
    return ("a queue worker already runs: " + ", ".join(f"pid {w.pid} ({w.devices_text})" for w in live)
            + "; it takes the waiting runs in turn")


def _wait_until_claimed(pid: int) -> int | None:
    """Wait until the new worker holds its claim (None) or has exited (its exit code)."""
    deadline = time.monotonic() + WORKER_START_WAIT_S
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None  # not our child to watch: take the start as it is
        if done:
            return os.waitstatus_to_exitcode(status)
        if worker_alive(pid):
            return None
        time.sleep(0.05)
    return None


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1].split(" ", 2)[-1] if lines else "no log"
