"""How much the dashboard costs: reducer throughput and the UI's CPU while a run writes events.

Skeleton: it drives a synthetic writer (a thread emitting `step` events at a fixed rate). To measure
against real training, point `--run-dir` at a live run's folder (`<output>/.runs/<id>`) instead and
compare the training's it/s with and without the dashboard attached.

    python benchmarks/dashboard_overhead.py [--rate 20] [--seconds 10] [--run-dir PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.events import EventWriter  # noqa: E402
from tui_lora.dashboard.state import DashboardState, apply_event  # noqa: E402


def synthetic_step(step: int, total: int) -> dict:
    return {"type": "step", "time": float(step), "seq": step, "step": step, "total_steps": total, "epoch": 1,
            "total_epochs": 1, "loss": 0.1 + 0.05 * math.sin(step), "lr": {"unet": 1e-4}, "it_per_s": 3.0,
            "memory": {"device": "cuda", "allocated": 3 << 30, "reserved": 4 << 30, "peak": 5 << 30, "total": 24 << 30}}


def reducer_throughput(count: int = 200_000) -> float:
    """Events folded per second (the main-thread cost of each event)."""
    events = [synthetic_step(step, count) for step in range(1, count + 1)]
    state = DashboardState()
    start = time.perf_counter()
    for event in events:
        apply_event(state, event)
    return count / (time.perf_counter() - start)


def write_steps(run_dir: Path, rate: float, seconds: float, stop: threading.Event) -> None:
    total = int(rate * seconds) + 1
    with EventWriter(run_dir / "events.jsonl") as writer:
        writer.emit("run_started", total_steps=total, total_epochs=1, steps_per_epoch=total, device="cuda:0")
        for step in range(1, total + 1):
            if stop.wait(1 / rate):
                return
            fields = {k: v for k, v in synthetic_step(step, total).items() if k not in ("type", "time", "seq")}
            writer.emit("step", **fields)


async def ui_cpu_share(run_dir: Path, seconds: float) -> float:
    """CPU seconds the dashboard process used per wall second while attached (headless, 120x40)."""
    from tui_lora.dashboard.screen import DashboardApp

    app = DashboardApp(run_dir, mouse=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(1.0)  # settle: first read and layout
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await pilot.pause(seconds)
        return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="synthetic step events per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--run-dir", type=Path, help="attach to a real run folder instead of a synthetic one")
    args = parser.parse_args()

    print(f"reducer: {reducer_throughput():,.0f} events/s")
    if args.run_dir is not None:
        share = asyncio.run(ui_cpu_share(args.run_dir, args.seconds))
        print(f"dashboard on {args.run_dir}: {share:.1%} of one core")
        return
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder)
        (run_dir / "pid").write_text(str(os.getpid()))
        stop = threading.Event()
        writer = threading.Thread(target=write_steps, args=(run_dir, args.rate, args.seconds + 2, stop), daemon=True)
        writer.start()
        share = asyncio.run(ui_cpu_share(run_dir, args.seconds))
        stop.set()
        writer.join()
    print(f"dashboard at {args.rate:g} events/s: {share:.1%} of one core (writer thread included)")


if __name__ == "__main__":
    main()
