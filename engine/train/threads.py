"""How many CPU threads a training process uses (`training.cpu_threads_per_process`).

Left empty, the engine picks what is fastest where it runs: no more threads than this process has
idle CPUs. OpenMP threads wait for each other at every parallel region, so a thread whose core is
busy with another program stalls all of them: on a 2-core machine running two other CPU-bound jobs,
2 threads made steps 8–35× slower than 1. Torch-free, so it can be tested and explained alone.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

GPU_THREADS = 2  # Kohya's default: on a GPU the CPU only feeds the device


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str  # for the run's log: why this many


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which containers and `taskset` narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def busy_cpus() -> float:
    """CPUs kept busy by other programs: the 1-minute load average, or the processes runnable right
    now when that is higher (the average lags behind jobs that just started), this one not counted."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0
    try:
        with open("/proc/loadavg", encoding="ascii") as handle:
            runnable = int(handle.read().split()[3].split("/")[0]) - 1  # minus this process
    except (OSError, ValueError, IndexError):
        runnable = 0
    return max(load, float(runnable), 0.0)


def choose_threads(requested: int | None, *, on_gpu: bool, cpus: int | None = None,
                   busy: float | None = None) -> ThreadChoice:
    if requested is not None:
        return ThreadChoice(requested, "set in the run file")
    cpus = usable_cpus() if cpus is None else cpus
    busy = busy_cpus() if busy is None else busy
    idle = max(1, min(cpus, math.floor(cpus - busy + 0.5)))
    if on_gpu:
        return ThreadChoice(min(GPU_THREADS, idle), f"automatic: the GPU does the maths, {idle} of {cpus} CPUs idle")
    return ThreadChoice(idle, f"automatic: {idle} of {cpus} CPUs idle (load {busy:.1f})")
