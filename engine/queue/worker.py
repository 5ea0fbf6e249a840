"""The queue worker: takes the next waiting entry, runs it as an ordinary run, records how it ended.

Each entry runs as `python -m engine train <snapshot> --run-id <id>` in the folder it was queued
from, so it registers, writes events and files like any run (`runs` and `monitor` see it). The
worker holds its device locks for its whole life (see worker_claims.py), gives each run the devices its
`hardware.num_processes` needs through CUDA_VISIBLE_DEVICES, and exits when nothing it can run is
left, or when the queue is paused.

Runs start in the worker's process group: killing the group (`kill -9 -- -PGID`) ends both, and
the run then reads `lost`. Killing the worker alone leaves its run going; that run is "orphaned",
and a later worker waits for it to end before using its devices. SIGINT/SIGTERM ask the current
run to save and stop, then the worker exits, leaving the rest queued.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..events import read_events
from ..runs import RunDir, new_run_id, record_process, run_status
from .checks import problems_before_start, reason_text, saved_state_exists
from .devices import gpu_count
from .store import Entry, QueueState, QueueTrouble, finish_entry, transaction
from .worker_claims import DevicesTaken, WorkerClaim, worker_alive

POLL_S = 1.0


def log(message: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S ") + message, flush=True)


class Worker:
    def __init__(self, gpus: list[int] | None = None, *, poll_s: float = POLL_S):
        self.gpus = list(gpus) if gpus is not None else list(range(gpu_count()))
        self.claim = WorkerClaim(self.gpus)
        self.poll_s = poll_s
        self.process: subprocess.Popen | None = None
        self.stopping = False

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.claim.acquire()
        except DevicesTaken as exc:
            log(f"not started: {exc}")
            return 3
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        log(f"queue worker pid {os.getpid()} on {self.claim.info.devices_text}")
        try:
            while True:
                entry = self._take_next()
                if entry is None:
                    return 0
                if entry == "wait":
                    time.sleep(self.poll_s)
                    continue
                self._run_entry(entry)
        except QueueTrouble as exc:  # the queue's files are damaged or the disk is full: say so, stop
            log(f"stopped: {exc}")
            return 1
        finally:
            self.claim.release()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log("queue worker exits")

    def _stop(self, signum, frame) -> None:
        self.stopping = True
        if self.process is not None and self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGINT)  # the run saves its LoRA and exits
            except ProcessLookupError:
                pass

    def _take_next(self) -> Entry | str | None:
        """The entry to run now (marked running), "wait" when our devices are busy with an
        orphaned run, or None: nothing left for us (the claim is dropped under the queue lock, so
        an add that comes after sees no worker and starts one)."""
        with transaction() as state:
            reconcile(state)
            if not (self.stopping or state.paused):
                busy = {d for e in state.running() for d in e.devices if e.worker_pid != os.getpid()}
                blocked = False
                for entry in state.queued():
                    devices = self.devices_for(entry)
                    if devices is None:
                        continue
                    if busy & set(devices) or (not self.gpus and any(e.worker_pid != os.getpid() for e in state.running())):
                        blocked = True
                        continue
                    self._mark_running(entry, devices)
                    return Entry.from_dict(entry.__dict__.copy())
                if blocked:
                    return "wait"
            self.claim.release()
            return None

    def devices_for(self, entry: Entry) -> list[int] | None:
        """The GPUs this worker would give the entry, or None when it cannot run it."""
        if not self.gpus:
            return []  # CPU: any number of processes (gloo)
        if entry.gpu_ids:
            return list(entry.gpu_ids) if set(entry.gpu_ids) <= set(self.gpus) else None
        return self.gpus[: entry.processes] if entry.processes <= len(self.gpus) else None

    def _mark_running(self, entry: Entry, devices: list[int]) -> None:
        entry.status = "running"
        entry.worker_pid = os.getpid()
        entry.devices = devices
        entry.run_id = new_run_id()
        entry.run_path = str(Path(entry.output) / ".runs" / entry.run_id)
        entry.started = round(time.time(), 3)
        entry.finished = 0.0
        entry.reason = ""

    # --- one entry ------------------------------------------------------------------------------

    def _run_entry(self, entry: Entry) -> None:
        note = ""
        if entry.resume and not saved_state_exists(entry.output, entry.name):
            entry.resume = False
            note = "no saved state was found, so it started over; "
        problems = problems_before_start(entry.snapshot, entry.cwd, resuming=entry.resume)
        if problems:
            log(f"#{entry.id} not started: {reason_text(problems)}")
            self._record(entry.id, "skipped", "not started: " + reason_text(problems))
            return
        run = RunDir(Path(entry.run_path))
        run.path.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "engine", "train", entry.snapshot, "--run-id", entry.run_id]
        if entry.resume:
            command += ["--resume", "latest"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, entry.devices))
        where = f"GPU {','.join(map(str, entry.devices))}" if self.gpus else "the CPU"
        console = run.path / "console.log"
        with open(console, "ab") as handle:
            handle.write(f"queue entry #{entry.id} on {where} (CUDA_VISIBLE_DEVICES="
                         f"{env.get('CUDA_VISIBLE_DEVICES', '')}); run file {entry.source}\n".encode())
            handle.flush()
            log(f"#{entry.id} starts: {entry.source} → run {entry.run_id} on {where}" + (" (resuming)" if entry.resume else ""))
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                            cwd=entry.cwd, env=env)
        record_process(run, self.process.pid)  # the engine replaces it with its own when it registers
        code = self.process.wait()
        self.process = None
        status, reason = outcome(run, code, entry.cwd)
        log(f"#{entry.id} {status}" + (f": {reason}" if reason else ""))
        self._record(entry.id, status, note + reason)

    def _record(self, entry_id: int, status: str, reason: str) -> None:
        with transaction() as state:
            entry = state.get(entry_id)
            if entry is None:
                return  # removed from the queue meanwhile (only finished entries can be)
            finish_entry(entry, status, reason)
            stop_queue(state, entry)


def stop_queue(state: QueueState, entry: Entry) -> None:
    if entry.status != "completed" and entry.stop_on_failure and not state.paused:
        state.paused = True
        state.pause_reason = (f"#{entry.id} ({entry.name}) {entry.status} and its run file has "
                              "queue.stop_on_failure: true")


def outcome(run: RunDir, exit_code: int | None = None, cwd: str = "") -> tuple[str, str]:
    """(status, reason) of a run that has ended, from its events (and exit code); output paths
    are made absolute from the folder the run ran in."""
    events = read_events(run.events)
    finished = next((e for e in reversed(events) if e.get("type") == "run_finished"), None)
    if finished is not None:
        status = run_status(run, events)
        if status == "completed":
            outputs = finished.get("outputs") or []
            return status, f"wrote {Path(cwd, outputs[-1])}" if outputs else ""
        error = next((e for e in reversed(events) if e.get("type") == "error"), None)
        if error is not None:
            hint = f" ({error.get('hint')})" if error.get("hint") else ""
            return status, f"{error.get('message', '')}{hint}"
        return status, str(finished.get("message") or "")
    tail = _console_tail(run)
    if exit_code == 2 and not events:
        return "skipped", "not started: " + (tail or "the engine refused the run file")
    if exit_code is not None and exit_code < 0:
        return "lost", f"the run's process was killed by {signal.Signals(-exit_code).name}"
    return ("failed", tail or f"the engine exited with code {exit_code}") if exit_code else ("lost", "the run ended without a final event")


def _console_tail(run: RunDir) -> str:
    try:
        lines = [line.strip() for line in (run.path / "console.log").read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    useful = [line for line in lines if line.startswith(("error:", "failed:", "nothing was started", "Traceback"))]
    return "; ".join((useful or lines[-1:])[:3])[:300]


def reconcile(state: QueueState) -> None:
    """Settle entries marked running whose worker is gone: a run still going stays running (the
    next worker waits for it), a run that ended is recorded, and a run that died with its worker
    reads `lost`, or goes back to the front of the queue to resume when it saves state."""
    for entry in state.running():
        if worker_alive(entry.worker_pid):
            continue
        run = RunDir(Path(entry.run_path))
        started = bool(read_events(run.events)) if run.path.is_dir() else False
        status = run_status(run) if started else "lost"
        if status == "running":
            entry.worker_pid = 0
            entry.reason = "its queue worker is gone; the run goes on and the next worker waits for it"
        elif status != "lost":
            finish_entry(entry, *outcome(run, cwd=entry.cwd))
            stop_queue(state, entry)
        elif not started:
            _requeue(entry, resume=entry.resume, reason="back in the queue: its worker ended before the run started")
        elif entry.save_state:
            entry.history.append({"run_id": entry.run_id, "status": "lost", "started": entry.started,
                                  "finished": round(time.time(), 3)})
            _requeue(entry, resume=True, reason=f"run {entry.run_id} was lost with its worker; it resumes from its saved state")
        else:
            finish_entry(entry, "lost", "its queue worker was killed while it ran; the run did not finish")
            stop_queue(state, entry)


def _requeue(entry: Entry, *, resume: bool, reason: str) -> None:
    entry.status, entry.resume, entry.reason = "queued", resume, reason
    entry.run_id = entry.run_path = ""
    entry.worker_pid, entry.devices, entry.started = 0, [], 0.0
