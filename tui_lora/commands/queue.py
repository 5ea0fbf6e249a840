"""`tui-lora queue …`: line up runs; a detached worker trains them one after another. No torch."""

from __future__ import annotations

import argparse
import sys

from engine.queue.devices import check_gpu_ids, parse_gpu_list
from engine.queue.store import QueueTrouble, move_entry, read_state, transaction
from engine.queue.worker_claims import live_workers

from ..queue_rows import entry_rows, summary_line
from ..queueing import add_checked, check_files, ensure_worker


def queue_command(args: argparse.Namespace) -> int:
    try:
        action = args.queue_command or "list"
        return _ACTIONS[action](args)
    except QueueTrouble as exc:
        print(f"tui-lora: {exc}", file=sys.stderr)
        return 1


def _add(args) -> int:
    good, bad = check_files(args.files)
    if bad:
        for name, problems in bad.items():
            for problem in problems:
                print(problem, file=sys.stderr)
            print(f"{name}: not valid ({sum(p.is_error for p in problems)} error(s))", file=sys.stderr)
        print("nothing was queued: fix the errors above", file=sys.stderr)
        return 2
    added = add_checked(good, front=args.front)
    for item in added:
        for problem in item.warnings:
            print(problem)
        print(f"queued #{item.entry.id} at place {item.position}: {item.entry.name} ({item.entry.source})")
    print("The queue keeps a copy of each file as it is now: later edits do not change the queued run; "
          "add the file again to queue the new version.")
    state = read_state()
    print(ensure_worker(paused=state.paused).message)
    return 0


def _list(args) -> int:
    state = read_state()
    print(summary_line(state, live_workers()))
    rows = entry_rows(state, everything=getattr(args, "all", False))
    if not rows:
        print("nothing queued: `tui-lora queue add run.yaml` adds a run")
        return 0
    print(f"{'ID':>4} {'#':>2} {'STATUS':<9} NAME / NOTE")
    for row in rows:
        print(f"{row.id:>4} {row.position:>2} {row.status:<9} {row.name}  ({row.source})")
        if row.note:
            print(f"{'':>17}{row.note}")
    return 0


def _remove(args) -> int:
    with transaction() as state:
        entry = state.get(args.id)
        if entry is None:
            print(f"tui-lora: no queue entry #{args.id} (`tui-lora queue` lists them)", file=sys.stderr)
            return 1
        if entry.status == "running":
            print(f"tui-lora: #{entry.id} is running; stop it from its dashboard (`tui-lora monitor {entry.run_id}`, "
                  "key s) and the queue goes on without it", file=sys.stderr)
            return 1
        state.entries.remove(entry)
    if entry.status == "queued":
        _drop_snapshot(entry.snapshot)
    print(f"removed #{entry.id} ({entry.name}, {entry.status})")
    return 0


def _drop_snapshot(path: str) -> None:
    from pathlib import Path

    Path(path).unlink(missing_ok=True)


def _move(args) -> int:
    with transaction() as state:
        entry = state.get(args.id)
        if entry is None or entry.status != "queued":
            what = "no queue entry" if entry is None else f"{entry.status}, so it has no place to move:"
            print(f"tui-lora: #{args.id}: {what} only waiting runs can be moved", file=sys.stderr)
            return 1
        place = state.queued().index(entry) + 1
        target = place - 1 if args.up else place + 1 if args.down else args.to
        if target < 1:
            print("tui-lora: --to counts from 1 (the next run to start)", file=sys.stderr)
            return 1
        place = move_entry(state, entry, target)
    print(f"#{entry.id} ({entry.name}) is now at place {place}")
    return 0


def _pause(args) -> int:
    with transaction() as state:
        state.paused, state.pause_reason = True, "paused by the user"
        running = state.running()
    tail = f"; #{running[0].id} finishes first" if running else ""
    print(f"queue paused: nothing new starts{tail}. `tui-lora queue resume` goes on.")
    return 0


def _resume(args) -> int:
    with transaction() as state:
        state.paused, state.pause_reason = False, ""
        waiting = len(state.queued())
    print(f"queue resumed: {waiting} run(s) waiting")
    if waiting:
        print(ensure_worker().message)
    return 0


def _clear(args) -> int:
    with transaction() as state:
        gone = [e for e in state.entries if e.status != "running"]
        state.entries = [e for e in state.entries if e.status == "running"]
    for entry in gone:
        if entry.status == "queued":
            _drop_snapshot(entry.snapshot)
    waiting = sum(e.status == "queued" for e in gone)
    print(f"cleared {waiting} waiting and {len(gone) - waiting} finished run(s)"
          + ("; the running one goes on" if len(read_state().running()) else ""))
    return 0


def _run(args) -> int:
    gpus = None
    if args.gpus:
        try:
            gpus = parse_gpu_list(args.gpus)
        except ValueError as exc:
            print(f"tui-lora: --gpus: {exc}", file=sys.stderr)
            return 2
        problem = check_gpu_ids(gpus)
        if problem:
            print(f"tui-lora: --gpus: {problem}", file=sys.stderr)
            return 2
    state = read_state()
    if state.paused:
        print("the queue is paused: `tui-lora queue resume` goes on", file=sys.stderr)
        return 1
    if args.foreground:
        from engine.queue.worker import Worker

        return Worker(gpus).run()
    started = ensure_worker(gpus)
    print(started.message)
    return 0 if started.pid or (gpus is None and started.running) else 1


_ACTIONS = {"add": _add, "list": _list, "remove": _remove, "move": _move, "pause": _pause, "resume": _resume,
            "clear": _clear, "run": _run}
