"""Is process N still the run that wrote its pid? (never report or signal a stranger)

A pid alone proves nothing: after a run is killed, the system hands its number to the next process
that starts. A run therefore records when its process started (`process.json` beside the pid
file); a process counts as that run only while its start time still matches. Files holding only a
pid (older runs, the app's launcher before the engine starts) are checked against the time the pid
file was written: the run's process started before then, a process that later reused the number
started after. psutil reads start times portably; without it, Linux's /proc is read directly.
No torch here.
"""

from __future__ import annotations

import os
from pathlib import Path

# psutil's start times come from clock ticks (10 ms); anything closer is the same process.
SAME_START_S = 0.05
# A pid file is written right after its process starts; allow for a slow, busy machine.
PID_FILE_SLACK_S = 2.0


def process_started(pid: int) -> float | None:
    """Start time (unix seconds) of a live, non-zombie process; None when there is none."""
    if pid <= 0:
        return None
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is normally present
        return _proc_started(pid)
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:  # another user's process: it exists, its start time is still public
        return _proc_started(pid)


def _proc_started(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return None
        ticks = int(fields[19])  # field 22 of the file: start time in clock ticks after boot
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def process_identity(pid: int | None = None) -> dict:
    """What `is_same_process` later compares: the pid, its start time and its command line."""
    pid = os.getpid() if pid is None else pid
    identity: dict = {"pid": pid, "started": process_started(pid)}
    try:
        identity["cmdline"] = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:8]
    except OSError:
        pass
    return identity


def is_same_process(pid: int, *, started: float | None = None, written_at: float | None = None) -> bool:
    """Whether `pid` is alive and is the process recorded: same start time when one was recorded,
    else started no later than the pid file was written."""
    now_started = process_started(pid)
    if now_started is None:
        return False
    if started is not None:
        return abs(now_started - started) <= SAME_START_S
    if written_at is not None:
        return now_started <= written_at + PID_FILE_SLACK_S
    return True
