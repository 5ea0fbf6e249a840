"""A finished run's dashboard tells one story: the log's clock is the result's clock, and a run cut
short by max_train_steps shows its last epoch complete (issue 26.8); the console's header fits 80."""

from __future__ import annotations

from tui_lora.dashboard.panels import ProgressPanel
from tui_lora.dashboard.reducer import DashboardState, apply_event


def _run_cut_by_max_train_steps() -> DashboardState:
    """24 s of model loading, 10 steps of a 25-step epoch (max_train_steps 10), done at 0:39."""
    state = DashboardState()
    events = [{"type": "phase", "time": 100.0, "name": "loading_model", "elapsed_s": 0.5},
              {"type": "run_started", "time": 124.0, "elapsed_s": 24.5, "total_steps": 10, "total_epochs": 1,
               "steps_per_epoch": 25, "output_name": "cut"}]
    events += [{"type": "step", "time": 124.0 + step, "elapsed_s": 24.5 + step, "step": step, "total_steps": 10,
                "epoch": 1, "total_epochs": 1, "loss": 0.1, "it_per_s": 1.0} for step in range(1, 11)]
    events.append({"type": "run_finished", "time": 139.0, "status": "completed", "step": 10, "outputs": []})
    for event in events:
        apply_event(state, event)
    return state


def test_the_log_and_the_result_use_one_clock():
    state = _run_cut_by_max_train_steps()
    last = state.log[-1]
    assert "run completed" in last.text
    assert last.time == state.progress.elapsed_s == 39.5  # the log said 0:15, the result 0:39


def test_a_run_ended_by_max_train_steps_shows_its_last_epoch_complete():
    state = _run_cut_by_max_train_steps()
    lines = [line.plain if hasattr(line, "plain") else str(line) for line in ProgressPanel().lines(state, 78, 3)]
    assert lines[0].endswith("100%")
    assert lines[1].startswith("epoch 1/1") and lines[1].endswith("10/10"), lines[1]
    assert "━" in lines[1] and "─" not in lines[1]  # a full bar


def test_the_console_header_fits_80_columns():
    import io

    from engine.console import ConsoleReporter

    stream = io.StringIO()
    reporter = ConsoleReporter(stream, live=False)
    reporter({"type": "run_started", "time": 1.0, "output_name": "my_character_lora_v2", "total_steps": 1250,
              "total_epochs": 10, "steps_per_epoch": 125, "device": "cuda:0 (NVIDIA GeForce RTX 4090)",
              "mixed_precision": "bf16", "seed": 1234567890})
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    assert len(lines) == 2 and all(len(line) <= 80 for line in lines), lines
    assert "1250 steps" in lines[0] and "bf16" in lines[1]
