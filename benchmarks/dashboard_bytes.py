"""What the dashboard costs on the wire: bytes per second it writes to an 80×24 terminal.

The real `tui-lora monitor` runs in a real pseudo-terminal (TERM=screen-256color, as in tmux) and
follows a run while this script counts every byte it writes. The run is either a real training
run of the built-in tiny model in a detached engine process (what Save & Train starts), or, with
`--synthetic RATE`, a stand-in writer appending `step` events at RATE per second (any training
speed, without a model). The first seconds (the initial full paint) are skipped, then the bytes
of `--seconds` are counted. It also checks the numbers stay live: the `step N/` text the terminal
receives must change at least once a second.

    python benchmarks/dashboard_bytes.py [--seconds 60] [--size 80x24] [--synthetic 30]

The issue's target: ≤ 2,048 bytes/s averaged over 60 s at 80×24, at any training speed.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEP_TEXT = re.compile(r"step (\d+)/")
WARM_UP_S = 3.0  # the first full paint and the first events are not what a long run costs


class ScreenModel:
    """Just enough of a terminal to read the screen back: absolute cursor moves and printed text.

    Textual positions every write with `CSI row;col H`; colours and modes (other escapes) change
    no characters, so they are skipped. Every character the dashboard draws is one cell wide.
    """

    _ESCAPE = re.compile(r"\x1b(?:\[([0-9;?<>=]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78])")

    def __init__(self, columns: int, rows: int):
        self.columns, self.rows = columns, rows
        self.grid = [[" "] * columns for _ in range(rows)]
        self.row = self.column = 0
        self._decoder = __import__("codecs").getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        self._pending = ""
        position = 0
        while position < len(text):
            if text[position] == "\x1b":
                match = self._ESCAPE.match(text, position)
                if match is None:
                    if len(text) - position < 32:  # an escape cut in two by the read: keep it for later
                        self._pending = text[position:]
                        return
                    position += 1
                    continue
                if match.group(2) == "H":
                    numbers = [int(n) if n.isdigit() else 1 for n in (match.group(1) or "").split(";")]
                    self.row, self.column = numbers[0] - 1, (numbers[1] - 1) if len(numbers) > 1 else 0
                position = match.end()
                continue
            char = text[position]
            position += 1
            if char == "\r":
                self.column = 0
            elif char == "\n":
                self.row += 1
            elif char >= " " and 0 <= self.row < self.rows and 0 <= self.column < self.columns:
                self.grid[self.row][self.column] = char
                self.column += 1

    def text(self) -> str:
        return "\n".join("".join(row) for row in self.grid)


@dataclass
class Measurement:
    seconds: float
    bytes: int
    step_values_by_second: list[set[int]] = field(default_factory=list)  # `step N/` on screen after each write
    last_screen: str = ""

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.seconds if self.seconds else 0.0

    @property
    def live_seconds(self) -> int:
        """Seconds in which the screen showed a `step N/` different from the second before."""
        live, previous = 0, None
        for values in self.step_values_by_second:
            if values and values != {previous}:
                live += 1
            if values:
                previous = max(values)
        return live


def measure_monitor(run_path: Path, *, seconds: float, columns: int = 80, rows: int = 24,
                    warm_up: float = WARM_UP_S, env: dict[str, str] | None = None) -> Measurement:
    """Run `tui-lora monitor RUN` in a pty of `columns`×`rows` and count what it writes."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    child_env = {**os.environ, **(env or {}), "TERM": "screen-256color", "COLUMNS": str(columns),
                 "LINES": str(rows), "PYTHONPATH": str(ROOT)}
    child_env.pop("TEXTUAL", None)
    process = subprocess.Popen([sys.executable, "-m", "tui_lora.cli", "--no-mouse", "monitor", str(run_path)],
                               stdin=slave, stdout=slave, stderr=slave, env=child_env, cwd=str(ROOT),
                               start_new_session=True)
    os.close(slave)
    result = Measurement(seconds=seconds, bytes=0)
    screen = ScreenModel(columns, rows)
    try:
        start = time.monotonic()
        measure_from, measure_to = start + warm_up, start + warm_up + seconds
        while True:
            now = time.monotonic()
            if now >= measure_to:
                break
            ready, _, _ = select.select([master], [], [], min(0.1, measure_to - now))
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break  # the app exited
            now = time.monotonic()
            screen.feed(chunk)
            if now < measure_from:
                continue
            result.bytes += len(chunk)
            second = int(now - measure_from)
            while len(result.step_values_by_second) <= second:
                result.step_values_by_second.append(set())
            result.step_values_by_second[second].update(int(m) for m in STEP_TEXT.findall(screen.text()))
        result.last_screen = screen.text()
    finally:
        process.send_signal(signal.SIGTERM)
        _drain_until_exit(master, process)
        os.close(master)
    return result


def _drain_until_exit(master: int, process: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                os.read(master, 65536)
            except OSError:
                break
    if process.poll() is None:
        process.kill()
        process.wait()


# --- what the dashboard follows -------------------------------------------------------------------

def real_run(folder: Path, epochs: int = 400):
    """A long training run of the tiny model in a detached engine; returns (LaunchedRun, run file)."""
    from engine.config import RunConfig, save_run_file
    from engine.dataset.synthetic import make_synthetic_dataset
    from tui_lora.launch import launch_training

    images, _ = make_synthetic_dataset(folder / "data")
    cfg = RunConfig.from_values({
        "model.quick_pick": "builtin-tiny-sd1", "folders.images": str(images), "folders.output": str(folder / "out"),
        "folders.output_name": "bytes", "training.epochs": epochs, "training.batch_size": 2, "training.seed": 3,
        "training.cpu_threads_per_process": 1, "buckets.step": 32, "optimizer.name": "AdamW", "overwrite": True,
    })
    run_file = save_run_file(cfg, folder / "bytes.yaml")
    return launch_training(run_file, folder / "out")


def wait_for_step(events: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events.exists() and b'"type":"step"' in events.read_bytes():
            return
        time.sleep(0.5)
    raise TimeoutError(f"no step event in {events} after {timeout:.0f} s")


class SyntheticRun:
    """Appends a run's events at `rate` steps per second, as a fast engine would (no model)."""

    def __init__(self, folder: Path, rate: float, total_steps: int = 1_000_000):
        from engine.events import EventWriter
        from engine.runs import create_run

        self.run = create_run(folder / "out", output_name="synthetic")
        self.writer = EventWriter(self.run.events)
        self.rate, self.total = rate, total_steps
        self._stop = threading.Event()
        self.writer.emit("run_started", run_id=self.run.run_id, output_dir=str(folder / "out"),
                         output_name="synthetic", device="cpu", mixed_precision="no", num_processes=1, batch_size=2,
                         gradient_accumulation_steps=1, seed=1, steps_per_epoch=100, total_steps=total_steps,
                         total_epochs=total_steps // 100, elapsed_s=0.0,
                         lr_curve={"unet": [[0, 1e-4], [total_steps, 0.0]]})
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.started = time.time()

    def _write(self) -> None:
        import math

        step = 0
        while not self._stop.is_set() and step < self.total:
            step += 1
            epoch = (step - 1) // 100
            self.writer.emit("step", step=step, total_steps=self.total, epoch=epoch + 1, total_epochs=self.total // 100,
                             loss=0.1 + 0.05 * math.sin(step / 7) + 0.02 * math.sin(step * 1.3), avg_loss=0.1,
                             lr={"unet": 1e-4 * (1 - step / self.total)}, it_per_s=self.rate,
                             eta_s=(self.total - step) / self.rate, elapsed_s=time.time() - self.started,
                             memory={"device": "cpu", "rss": 2_000_000_000 + (step % 50) * 1_000_000,
                                     "total": 16_000_000_000})
            if step % 100 == 0:
                self.writer.emit("epoch_end", epoch=epoch + 1, total_epochs=self.total // 100, step=step, avg_loss=0.1)
            time.sleep(1.0 / self.rate)

    def __enter__(self) -> "SyntheticRun":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()
        self.writer.close()


def report(label: str, result: Measurement) -> None:
    print(f"{label}: {result.bytes:,} bytes in {result.seconds:.0f} s = {result.bytes_per_s:,.0f} bytes/s; "
          f"step text changed in {result.live_seconds} of {len(result.step_values_by_second)} seconds "
          f"(target ≤ 2,048 bytes/s, live every second)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="80x24", help="COLUMNSxROWS")
    parser.add_argument("--synthetic", type=float, metavar="RATE", default=None,
                        help="follow a stand-in writer at RATE steps/s instead of real training")
    parser.add_argument("--show", action="store_true", help="print the last screen as the terminal had it")
    args = parser.parse_args()
    columns, rows = (int(part) for part in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        os.environ["XDG_STATE_HOME"] = str(root / "state")  # temporary runs stay out of your index
        if args.synthetic:
            with SyntheticRun(root, args.synthetic) as run:
                result = measure_monitor(run.run.path, seconds=args.seconds, columns=columns, rows=rows)
            report(f"synthetic {args.synthetic:g} steps/s, {columns}x{rows}", result)
            if args.show:
                print(result.last_screen)
            return
        launched = real_run(root)
        try:
            wait_for_step(launched.run.events)
            result = measure_monitor(launched.run.path, seconds=args.seconds, columns=columns, rows=rows)
        finally:
            os.kill(launched.pid, signal.SIGKILL)
        # step events only: '"step"' also matches the `step` field of checkpoint and sample events
        events = [json.loads(line) for line in launched.run.events.read_text().splitlines() if line.strip()]
        steps = [event for event in events if event.get("type") == "step" and event.get("it_per_s")]
        rate = steps[-1]["it_per_s"] if steps else None
        report(f"real tiny-model run at {rate or 0:.1f} it/s, {columns}x{rows}", result)
        if args.show:
            print(result.last_screen)


if __name__ == "__main__":
    main()
