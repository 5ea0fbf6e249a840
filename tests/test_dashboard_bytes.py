"""What the dashboard writes to a real 80x24 pseudo-terminal: little, and still live every second.

Runs the real `tui-lora monitor` in a pty (benchmarks/dashboard_bytes.py does the measuring) while
a stand-in writer appends step events at 30 per second, faster than any real run redraws need.
The bound is generous (2x the 2 KB/s target; it was ~31 KB/s before the dashboard repainted only
what changed) so machine load cannot fail it, but a return to full-frame repaints does.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "dashboard_bytes.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("dashboard_bytes", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_monitor_at_80x24_writes_under_4_kb_per_second_and_shows_a_new_step_every_second(tmp_path):
    bench = _benchmark()
    with bench.SyntheticRun(tmp_path, rate=30.0) as run:
        result = bench.measure_monitor(run.run.path, seconds=10, columns=80, rows=24)
    assert "step " in result.last_screen and "RUNNING" in result.last_screen, result.last_screen
    assert result.bytes_per_s < 4096, f"{result.bytes_per_s:.0f} bytes/s"
    assert result.live_seconds >= 8, result.step_values_by_second  # ≥ 1 refresh a second (2 s slack for load)
