"""`tui-lora runs`: every registered run with its status word."""

from __future__ import annotations

import sys
import time

from engine.events import read_events
from engine.runs import list_runs


def _progress(info) -> str:
    """`step/total` from the run's events (the last event alone may not carry the total)."""
    step = total = None
    for event in read_events(info.run.events):
        total = event.get("total_steps", total)
        step = event.get("step", step)
    if step is None:
        return "-"
    return f"{step}/{total}" if total else str(step)


def runs_command() -> int:
    damaged: list[str] = []
    runs = list_runs(damaged)
    if damaged:  # never fatal: the other runs are still listed
        print(f"skipped {len(damaged)} damaged line(s) of the run index: {', '.join(damaged[:3])}"
              + (" …" if len(damaged) > 3 else ""), file=sys.stderr)
    if not runs:
        print("no runs yet: start one with `tui-lora train run.yaml` or `tui-lora demo`")
        return 0
    print(f"{'RUN':<24} {'STATUS':<10} {'STEP':>11}  {'STARTED':<16} NAME / FOLDER")
    for info in runs:
        progress = _progress(info)
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.started)) if info.started else "-"
        print(f"{info.run_id:<24} {info.status:<10} {progress:>11}  {started:<16} "
              f"{info.output_name or '-'}  {info.run.path.parent.parent}")
    return 0
