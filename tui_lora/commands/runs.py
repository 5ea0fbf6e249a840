"""`tui-lora runs [--all]`: registered runs, newest first, one row each within the terminal's width.

Without `--all` it shows the newest `SHOWN_BY_DEFAULT` runs plus any older one still running (so a
long list never hides the live run), and says how many more `--all` would show.
"""

from __future__ import annotations

import shutil
import sys
import time

from engine.events import read_events
from engine.runs import RunInfo, index_problem, list_runs

SHOWN_BY_DEFAULT = 10
MIN_WIDTH = 60


def _progress(info: RunInfo) -> str:
    """`step/total` from the run's events (the last event alone may not carry the total)."""
    step = total = None
    for event in read_events(info.run.events):
        total = event.get("total_steps", total)
        step = event.get("step", step)
    if step is None:
        return "-"
    return f"{step}/{total}" if total else str(step)


def _shorten_left(text: str, width: int) -> str:
    """Keep the end of a path (its most telling part): `…/out/.runs`."""
    if width <= 0:
        return ""
    return text if len(text) <= width else "…" + text[len(text) - width + 1:]


def format_row(info: RunInfo, width: int) -> str:
    started = time.strftime("%m-%d %H:%M", time.localtime(info.started)) if info.started else "-"
    head = f"{info.run_id:<22} {info.status:<9} {_progress(info):>11} {started:<11} "
    name = info.output_name or "-"
    folder = str(info.run.path.parent.parent)
    room = width - len(head)
    if room <= len(name):
        return head + _shorten_left(name, room)
    return head + name + " " + _shorten_left(folder, room - len(name) - 1)


def select_runs(runs: list[RunInfo], show_all: bool) -> tuple[list[RunInfo], int]:
    """The runs to show, newest first, and how many were left out."""
    if show_all or len(runs) <= SHOWN_BY_DEFAULT:
        return runs, 0
    shown = [info for index, info in enumerate(runs) if index < SHOWN_BY_DEFAULT or info.status == "running"]
    return shown, len(runs) - len(shown)


def runs_command(show_all: bool = False) -> int:
    problem = index_problem()
    if problem:
        print(f"tui-lora: {problem}", file=sys.stderr)
        return 1
    damaged: list[str] = []
    runs = list_runs(damaged)  # newest first
    if damaged:  # never fatal: the other runs are still listed
        print(f"skipped {len(damaged)} damaged line(s) of the run index: {', '.join(damaged[:3])}"
              + (" …" if len(damaged) > 3 else ""), file=sys.stderr)
    if not runs:
        print("no runs yet: start one with `tui-lora train run.yaml` or `tui-lora demo`")
        return 0
    width = max(MIN_WIDTH, shutil.get_terminal_size((80, 24)).columns - 1)
    shown, hidden = select_runs(runs, show_all)
    print(f"{'RUN':<22} {'STATUS':<9} {'STEP':>11} {'STARTED':<11} NAME FOLDER"[:width])
    for info in shown:
        print(format_row(info, width))
        if info.note:  # how it ended, kept aside because its events file could not take it
            print(f"{'':>23}{info.note}")  # whole: it names the file to move back
    if hidden:
        print(f"… {hidden} older run{'s' if hidden != 1 else ''} not shown: `tui-lora runs --all` lists every run")
    return 0
