"""The live training dashboard (`tui-lora monitor`, and the wizard's last screen).

`state` turns the event stream into numbers (no Textual); `screen` draws them. Importing this
package stays light: Textual loads only when a dashboard is shown.
"""

from __future__ import annotations

import sys

from engine.events import read_events
from engine.runs import ending_events, find_run, index_problem, run_status

from . import formatting as fmt
from .control import RunControl
from .reducer import DashboardState, apply_run_status, build_state

__all__ = ["DashboardState", "RunControl", "build_state", "run_monitor", "text_summary"]


def run_monitor(selector: str | None = None, *, mouse: bool = True) -> int:
    """Attach the dashboard to a run (id, id prefix or run folder; default newest running, else newest).

    Returns the exit code: 1 with a message on stderr when no run matches, else 0. When stdout is
    not a terminal it prints a one-screen text summary instead of starting the UI.
    """
    info = find_run(selector)
    if info is None:
        if selector:
            print(f"tui-lora: no run matches {selector!r}. `tui-lora runs` lists the runs it knows; "
                  "a run folder (…/.runs/<id>) works too.", file=sys.stderr)
        elif index_problem():
            print(f"tui-lora: {index_problem()}", file=sys.stderr)
        else:
            print("tui-lora: no runs yet. Start one with `tui-lora train run.yaml` or from the wizard.",
                  file=sys.stderr)
        return 1
    note = nothing_running_note(info) if not selector else None
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        if note:
            print(note)
        events = read_events(info.run.events)
        events += ending_events(info.run, events)  # kept aside when the events file was on a full disk
        state = apply_run_status(build_state(events), run_status(info.run, events))
        # a run that has just registered has no run_started event yet: its index entry names it
        state.run_id = state.run_id or info.run_id
        state.output_name = state.output_name or info.output_name
        print(text_summary(state))
        return 0
    from .screen import DashboardApp  # Textual loads here, not at import

    outcome = DashboardApp(info.run.path, control=RunControl.from_run(info.run), mouse=mouse, note=note).run()
    print(farewell(outcome, info.run_id))
    return 0


def farewell(outcome: str | None, run_id: str) -> str:
    """The line `monitor` leaves in the terminal: whether the run goes on, and how to come back."""
    if outcome == "detach":
        return (f"Detached: run {run_id} goes on in the background. "
                f"Watch it again with: tui-lora monitor {run_id}")
    if outcome == "stop":
        return f"Stop requested: run {run_id} saves and exits. `tui-lora runs` shows when it has."
    return f"Run {run_id}: `tui-lora runs` lists your runs; `tui-lora monitor {run_id}` shows this one again."


def nothing_running_note(info) -> str | None:
    """When `monitor` found no running run and falls back to the newest one, say so plainly."""
    if info.status == "running":
        return None
    import time

    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.started)) if info.started else "an unknown time"
    name = f" ({info.output_name})" if info.output_name else ""
    return (f"No run is running now. Showing the newest run instead: {info.run_id}{name}, {info.status}, "
            f"started {when}. `tui-lora runs` lists them all.")


def text_summary(state: DashboardState) -> str:
    """A few plain lines for pipes and logs: status, progress, loss, the result."""
    progress = state.progress
    lines = [
        f"run {state.run_id or '?'} ({state.output_name or 'unnamed'}): {state.status}",
        f"step {progress.step}/{progress.total_steps or '?'}, epoch {progress.epoch}/{progress.total_epochs or '?'}, "
        f"{fmt.rate(progress.it_per_s)}, ETA {fmt.duration(progress.eta_s)}, "
        f"elapsed {fmt.duration(progress.elapsed_s)}",
        f"loss {fmt.loss(state.loss.current)} (smoothed {fmt.loss(state.loss.smoothed)})",
    ]
    if state.error is not None:
        lines.append(f"error: {state.error.message}")
        if state.error.hint:
            lines.append(f"hint: {state.error.hint}")
    if state.outcome is not None:
        lines += [f"output: {path}" for path in state.outcome.outputs]
    elif state.checkpoint is not None:
        lines.append(f"latest checkpoint: {state.checkpoint.path}")
    return "\n".join(lines)
