"""Time from `python` starting to the wizard's first screen, against bare Python.

Each measurement is a fresh process (so imports are really paid): bare `python -c pass`, importing
`tui_lora.app`, and running the app headless until the start screen has been drawn once. Prints
medians and the overhead over bare Python; the target is under 0.5 s.

    python benchmarks/tui_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 0.5

FIRST_SCREEN = """
from tui_lora.app import WizardApp
from tui_lora.screens.start import StartScreen

shown = StartScreen.on_mount

def on_mount(self):
    shown(self)
    self.call_after_refresh(self.app.exit)  # quit once the first frame is drawn

StartScreen.on_mount = on_mount
WizardApp().run(headless=True, size=(80, 24))
"""

CASES = {
    "bare python": "pass",
    "import tui_lora.app": "import tui_lora.app",
    "first screen drawn": FIRST_SCREEN,
}


def time_process(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=f"{home}/state",
                   XDG_DATA_HOME=f"{home}/data", TUI_LORA_CACHE=f"{home}/cache")
        medians = {}
        for name, code in CASES.items():
            time_process(code, env)  # warm the file cache
            medians[name] = statistics.median(time_process(code, env) for _ in range(args.runs))
    bare = medians["bare python"]
    for name, seconds in medians.items():
        extra = "" if name == "bare python" else f"  (+{seconds - bare:.3f} s over bare Python)"
        print(f"{name:<22} {seconds:.3f} s{extra}")
    overhead = medians["first screen drawn"] - bare
    verdict = "within" if overhead < TARGET_SECONDS else "OVER"
    print(f"time to first screen over bare Python: {overhead:.3f} s ({verdict} the {TARGET_SECONDS} s target)")
    return 0 if overhead < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
