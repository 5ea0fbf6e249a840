"""What watching costs: training throughput with the dashboard attached vs a headless run.

One run of this script trains the built-in tiny model several times in a child engine process
(exactly what Save & Train starts), alternately headless and with the dashboard following the run
in this process (headless Textual at 120×40, 4 Hz refresh), and prints the ratio of their median
steady-state step times. The issue's target: attached throughput ≥ 0.97 × headless.
It also prints the reducer's event throughput (the dashboard's main-thread cost per event).

    python benchmarks/dashboard_overhead.py [--rounds 2] [--epochs 4]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.events import read_events  # noqa: E402
from tui_lora.dashboard.reducer import DashboardState, apply_event  # noqa: E402


def synthetic_step(step: int, total: int) -> dict:
    return {"type": "step", "time": float(step), "seq": step, "step": step, "total_steps": total, "epoch": 1,
            "total_epochs": 1, "loss": 0.1 + 0.05 * math.sin(step), "lr": {"unet": 1e-4}, "it_per_s": 3.0,
            "memory": {"device": "cuda", "allocated": 3 << 30, "reserved": 4 << 30, "peak": 5 << 30, "total": 24 << 30}}


def reducer_throughput(count: int = 100_000) -> float:
    events = [synthetic_step(step, count) for step in range(1, count + 1)]
    state = DashboardState()
    start = time.perf_counter()
    for event in events:
        apply_event(state, event)
    return count / (time.perf_counter() - start)


def make_run_file(folder: Path, epochs: int) -> Path:
    from engine.config import RunConfig, save_run_file
    from engine.dataset.synthetic import make_synthetic_dataset

    images, _ = make_synthetic_dataset(folder / "data")
    cfg = RunConfig.from_values({
        "model.quick_pick": "builtin-tiny-sd1", "folders.images": str(images), "folders.output": str(folder / "out"),
        "folders.output_name": "bench", "training.epochs": epochs, "training.batch_size": 2, "training.seed": 3,
        "training.cpu_threads_per_process": 1, "buckets.step": 32, "optimizer.name": "AdamW", "overwrite": True,
    })
    return save_run_file(cfg, folder / "bench.yaml")


def step_seconds(events: list[dict]) -> float:
    """Median wall time between consecutive step events, skipping the warm-up steps."""
    times = [e["time"] for e in events if e.get("type") == "step"]
    gaps = [b - a for a, b in zip(times, times[1:])][5:]
    return statistics.median(gaps)


def start_engine(run_file: Path, output: Path):
    from tui_lora.launch import launch_training

    return launch_training(run_file, output)


def headless_round(run_file: Path, output: Path) -> float:
    launched = start_engine(run_file, output)
    while subprocess.call(["kill", "-0", str(launched.pid)], stderr=subprocess.DEVNULL) == 0:
        time.sleep(0.2)
    return step_seconds(read_events(launched.run.events))


async def attached_round(run_file: Path, output: Path) -> float:
    from tui_lora.dashboard.screen import DashboardApp

    launched = start_engine(run_file, output)
    app = DashboardApp(launched.run.path, mouse=False)
    async with app.run_test(size=(120, 40)) as pilot:
        while subprocess.call(["kill", "-0", str(launched.pid)], stderr=subprocess.DEVNULL) == 0:
            await pilot.pause(0.2)
        await pilot.pause(0.5)
    return step_seconds(read_events(launched.run.events))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    print(f"reducer: {reducer_throughput():,.0f} events/s")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        run_file = make_run_file(root, args.epochs)
        output = root / "out"
        headless, attached = [], []
        for _ in range(args.rounds):  # alternate so drifting machine load hits both alike
            headless.append(headless_round(run_file, output))
            attached.append(asyncio.run(attached_round(run_file, output)))
        h, a = statistics.median(headless), statistics.median(attached)
        print(f"headless step: {h * 1000:.1f} ms (rounds: {', '.join(f'{x * 1000:.1f}' for x in headless)})")
        print(f"attached step: {a * 1000:.1f} ms (rounds: {', '.join(f'{x * 1000:.1f}' for x in attached)})")
        print(f"throughput attached / headless: {h / a:.3f}  (target ≥ 0.97)")


if __name__ == "__main__":
    main()
