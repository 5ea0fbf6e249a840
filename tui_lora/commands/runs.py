"""`tui-lora runs`: every registered run with its status word."""

from __future__ import annotations

import time

from engine.runs import list_runs


def runs_command() -> int:
    runs = list_runs()
    if not runs:
        print("no runs yet: start one with `tui-lora train run.yaml` or `tui-lora demo`")
        return 0
    print(f"{'RUN':<24} {'STATUS':<10} {'STEP':>11}  {'STARTED':<16} NAME / FOLDER")
    for info in runs:
        event = info.last_event or {}
        step = event.get("step")
        total = event.get("total_steps")
        progress = f"{step}/{total}" if step is not None and total else (str(step) if step is not None else "-")
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.started)) if info.started else "-"
        print(f"{info.run_id:<24} {info.status:<10} {progress:>11}  {started:<16} "
              f"{info.output_name or '-'}  {info.run.path.parent.parent}")
    return 0
