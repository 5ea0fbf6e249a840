"""`tui-lora demo` wall time on a machine other programs keep busy.

    python benchmarks/demo_busy.py [--busy 2] [--threads N] [--family sd1]

Starts `--busy` CPU-bound processes (plain Python loops), then times `tui-lora demo` from its start
to its exit in a fresh folder, as a new user would run it. `--threads N` writes
`cpu_threads_per_process: N` into the demo's run file first (2 was the old default), to compare
with the automatic choice (empty). The target: under 2 minutes on 2 cores with 2 busy processes.
Prints the wall time, the thread count the run chose (from its log) and the median step time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUSY = "while True: pass"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=2, help="CPU-bound processes running meanwhile (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="force cpu_threads_per_process (default: automatic)")
    parser.add_argument("--family", default="sd1")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy)]
    try:
        time.sleep(2 if hogs else 0)  # let the load show, as it would on a machine already busy
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "demo"
            env["XDG_STATE_HOME"] = str(Path(tmp) / "state")
            if args.threads is not None:
                sys.path.insert(0, str(ROOT))
                from tui_lora.commands.demo import prepare_demo

                run_file = prepare_demo(folder, args.family)
                text = run_file.read_text()
                run_file.write_text(text.replace("cpu_threads_per_process:", f"cpu_threads_per_process: {args.threads}"
                                                 " #", 1))
            start = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "tui_lora.cli", "demo", "--dir", str(folder),
                                   "--family", args.family], env=env, capture_output=True, text=True)
            wall = time.monotonic() - start
            events = [json.loads(line) for path in folder.glob("output/.runs/*/events.jsonl")
                      for line in path.read_text().splitlines() if line.strip()]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:], sep="\n")
        return 1
    threads = next((e.get("cpu_threads") for e in events if e.get("cpu_threads")), "?")
    steps = [e["time"] for e in events if e.get("type") == "step"]
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    step_s = f"{statistics.median(gaps):.2f} s/step" if gaps else "no steps"
    print(f"demo ({args.family}) with {args.busy} busy processes on {len(os.sched_getaffinity(0))} CPUs: "
          f"{wall:.1f} s wall, {threads} CPU thread(s), {len(steps)} steps, median {step_s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
