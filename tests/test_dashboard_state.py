"""The dashboard's numbers as a pure function of the event stream (no Textual here)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.events import EventReader, EventWriter, read_events
from engine.runs import RunDir, run_status
from tui_lora.dashboard import formatting as fmt
from tui_lora.dashboard import text_summary
from tui_lora.dashboard.charts import BoundedSeries, column_rows, marker_column, sample_curve
from tui_lora.dashboard.reducer import (LOG_LINES_KEPT, DashboardState, apply_event, apply_run_status,
                                      build_state)
from tui_lora.dashboard.thumbnail import half_block_cells

EVENTS = Path(__file__).parent / "data" / "events"
GiB = 1024 ** 3


def stream(name: str) -> list[dict]:
    return read_events(EVENTS / f"{name}.jsonl")


def cosine_lr(step: float, peak: float = 1e-4, total: int = 20, warmup: int = 2) -> float:
    """The schedule the recorded streams were written with."""
    if step < warmup:
        return peak * step / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- whole streams ------------------------------------------------------------------------------

def test_normal_run_ends_completed_with_its_output_and_full_progress():
    state = build_state(stream("normal_run"))
    assert state.status == "completed" and state.finished
    assert (state.progress.step, state.progress.total_steps) == (20, 20)
    assert (state.progress.epoch, state.progress.total_epochs) == (2, 2)
    assert state.progress.eta_s == 0.0
    # elapsed = run_finished.time - run_started.time: 3 caching events at 0.2 s, 20 steps at 0.5 s, 0.3 s
    assert state.progress.elapsed_s == pytest.approx(0.6 + 10.0 + 0.3)
    assert state.outcome.outputs == ["$OUT/demo.safetensors"]
    assert state.checkpoints_saved == 2 and state.checkpoint.kind == "final"
    assert state.sample.paths == ["$OUT/samples/demo_000010_0.png"] and state.sample.step == 10
    assert state.warnings_seen == 1
    assert any(line.level == "warning" and "min_snr_gamma" in line.text for line in state.log)
    assert state.dataset_images == 10 and state.bucket_count == 2


def test_global_batch_is_batch_times_processes_times_accumulation():
    state = build_state(stream("normal_run"))
    assert (state.batch_size, state.num_processes, state.grad_accumulation) == (2, 1, 2)
    assert state.global_batch == 4
    apply_event(state, {"type": "run_started", "time": 0, "seq": 1, "batch_size": 3, "num_processes": 4,
                        "gradient_accumulation_steps": 2})
    assert state.global_batch == 24


def test_eta_is_taken_from_the_step_event_or_computed_from_the_rate():
    state = build_state(stream("normal_run")[:10])  # run_started, 3 caching, steps 1..5, the warning
    assert state.progress.step == 5 and state.progress.eta_s == pytest.approx((20 - 5) / 2.0)
    apply_event(state, {"type": "step", "time": 1, "seq": 99, "step": 8, "total_steps": 20, "it_per_s": 4.0})
    assert state.progress.eta_s == pytest.approx((20 - 8) / 4.0)


def test_smoothed_loss_is_a_bias_corrected_ema():
    state = DashboardState()
    apply_event(state, {"type": "step", "step": 1, "loss": 1.0})
    assert state.loss.smoothed == pytest.approx(1.0)  # bias correction: the first value is itself
    apply_event(state, {"type": "step", "step": 2, "loss": 0.0})
    assert state.loss.smoothed == pytest.approx(0.09 / 0.19)
    assert state.loss.current == 0.0 and state.loss.minimum == 0.0


def test_nan_loss_is_shown_but_kept_out_of_smoothing_and_chart():
    state = DashboardState()
    for step, value in enumerate([0.5, float("nan"), 0.3], start=1):
        apply_event(state, {"type": "step", "step": step, "loss": value})
        if step == 2:
            assert math.isnan(state.loss.current) and fmt.loss(state.loss.current) == "nan"
    assert [y for _, y in state.loss.history.view()] == [0.5, 0.3]
    assert math.isfinite(state.loss.smoothed)


def test_loss_history_stays_bounded_over_a_long_run_and_keeps_the_mean():
    state = DashboardState()
    for step in range(1, 20_001):
        apply_event(state, {"type": "step", "step": step, "loss": float(step % 10)})
    points = state.loss.history.view()
    assert len(points) <= state.loss.history.capacity
    assert sum(y for _, y in points) / len(points) == pytest.approx(4.5, abs=0.05)
    assert points[0][0] < 200 and points[-1][0] > 19_000  # still spans the whole run


def test_lr_curve_comes_from_run_started_and_the_marker_sits_at_the_current_step():
    state = build_state(stream("normal_run")[:10])
    assert state.lr.groups == ["unet", "text_encoder"]
    assert len(state.lr.curves["unet"]) == 21
    assert state.lr.current["unet"] == pytest.approx(cosine_lr(5))
    assert state.lr.scheduled("unet", 5) == pytest.approx(cosine_lr(5))
    assert state.lr.scheduled("unet", 4.5) == pytest.approx((cosine_lr(4) + cosine_lr(5)) / 2)
    assert marker_column(state.progress.step, state.progress.total_steps, 21) == 5
    assert marker_column(state.progress.step, state.progress.total_steps, 41) == 10


def test_lr_history_is_charted_when_the_engine_sends_no_curve():
    state = build_state(stream("lost_run"))
    assert state.lr.curves == {}
    assert len(state.lr.history["unet"]) == 12
    assert state.lr.history["unet"].view()[-1][1] == pytest.approx(cosine_lr(12))


def test_memory_figures_on_cuda():
    state = build_state(stream("normal_run"))
    memory = state.memory
    assert (memory.device, memory.allocated, memory.reserved, memory.peak, memory.total) == (
        "cuda", int(3.25 * GiB), 4 * GiB, int(5.5 * GiB), 24 * GiB)
    assert memory.gpu_util == 97 and not memory.on_cpu
    assert fmt.size(memory.peak) == "5.5 GiB"


def test_memory_on_cpu_is_ram_and_max_norm_stats_are_kept():
    state = build_state(stream("lost_run"))
    assert state.memory.on_cpu and state.memory.rss == int(1.5 * GiB) + 12 * 1024 ** 2
    assert state.memory.total == 16 * GiB and state.memory.gpu_util is None
    assert state.max_norm == {"keys_scaled": 3.0, "mean": 0.98, "max": 1.2}


def test_caching_progress_until_training_starts():
    events = stream("normal_run")
    state = build_state(events[:3])  # run_started, caching 0/10, 5/10
    assert state.caching.active and (state.caching.done, state.caching.total) == (5, 10)
    apply_event(state, events[3])
    assert not state.caching.active
    assert state.log[-1].text == "cached latents for 10 images"


def test_partial_last_line_is_ignored_until_it_is_complete(tmp_path):
    path = tmp_path / "events.jsonl"
    text = (EVENTS / "partial_last_line.jsonl").read_text()
    path.write_text(text)
    reader = EventReader(path)
    state = build_state(reader.read_new())
    assert state.events_seen == 4 and state.progress.step == 3
    with open(path, "a") as handle:
        handle.write('ss":0.25}\n')
    for event in reader.read_new():
        apply_event(state, event)
    assert state.progress.step == 4 and state.loss.current == 0.25


def test_failed_run_keeps_the_error_its_hint_and_traceback():
    state = build_state(stream("failed_run"))
    assert state.status == "failed" and state.progress.step == 7
    assert state.error.message.startswith("CUDA out of memory")
    assert state.error.hint == "lower batch_size or resolution, or turn on gradient_checkpointing"
    assert state.error.traceback_path.endswith("traceback.txt")
    assert [line.level for line in state.log][-3:] == ["error", "error", "error"]
    assert "hint: lower batch_size" in text_summary(state)


def test_stopped_run_has_its_saved_output_and_no_eta():
    state = build_state(stream("stopped_run"))
    assert state.status == "stopped" and state.outcome.outputs == ["$OUT/demo.safetensors"]
    assert state.progress.step == 5 and state.progress.epoch == 1 and state.progress.eta_s is None
    assert state.outcome.message == "stopped by SIGINT"


def test_stream_without_final_event_is_lost_once_its_pid_is_dead(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.events.write_text((EVENTS / "lost_run.jsonl").read_text())
    state = build_state(read_events(run.events))
    assert state.status == "running"

    run.pid_file.write_text(str(os.getpid()))
    apply_run_status(state, run_status(run, []))
    assert state.status == "running"

    run.pid_file.write_text(str(dead_pid()))
    apply_run_status(state, run_status(run, []))
    assert state.status == "lost" and state.finished
    assert state.outcome.status == "lost" and state.outcome.step == 12
    assert state.checkpoint.path.endswith("demo-000001.safetensors")


def test_lost_verdict_never_overrides_a_final_event():
    state = build_state(stream("stopped_run"))
    apply_run_status(state, "lost")
    assert state.status == "stopped"


def test_an_event_after_a_lost_verdict_brings_the_run_back():
    state = build_state(stream("lost_run"))
    apply_run_status(state, "lost")
    apply_event(state, {"type": "step", "step": 13, "loss": 0.2})
    assert state.status == "running" and state.outcome is None


def test_log_keeps_only_the_newest_lines():
    state = DashboardState()
    for index in range(LOG_LINES_KEPT + 50):
        apply_event(state, {"type": "log", "message": f"line {index}"})
    assert len(state.log) == LOG_LINES_KEPT and state.log[-1].text == f"line {LOG_LINES_KEPT + 49}"


def test_malformed_and_unknown_events_are_ignored():
    state = DashboardState()
    for event in ({"type": "step", "step": "seven", "loss": "low", "lr": [1], "memory": 5},
                  {"type": "telemetry", "x": 1}, {"type": "run_started", "lr_curve": {"unet": [[0], "x", [1, 2]]}},
                  {"type": "sample", "paths": "not-a-list.png"},
                  {"type": "run_finished", "status": "exploded", "outputs": "x"}):
        apply_event(state, event)
    assert state.loss.current is None and state.lr.curves == {"unet": [(1.0, 2.0)]}
    assert state.sample.paths == [] and state.outcome.outputs == []
    assert state.status == "failed"  # an unknown final status is not silently a success


def test_recorded_streams_replay_to_the_same_state_as_written_by_event_writer(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        for event in stream("normal_run"):
            fields = {k: v for k, v in event.items() if k not in ("type", "time", "seq")}
            writer.emit(event["type"], **fields)
    replayed = build_state(read_events(path))
    assert replayed.progress.step == 20 and replayed.loss.smoothed == pytest.approx(
        build_state(stream("normal_run")).loss.smoothed)


# --- the pure drawing helpers -------------------------------------------------------------------

def test_bounded_series_merges_neighbours_when_full():
    series = BoundedSeries(capacity=4)
    for x in range(1, 10):
        series.add(x, x * 10)
    assert series.stride == 4  # compacted at 4 points, then again at 8
    assert series.view() == [(2.5, 25.0), (6.5, 65.0), (9.0, 90.0)]  # the last bucket still filling


def test_column_rows_draw_eight_levels_per_cell():
    rows = column_rows([0, 4, 8, 12, 16], 2)  # 16 levels over two rows: one level per unit
    assert rows == ["   ▄█", "▁▄███"]  # the lowest value keeps one eighth so it stays visible
    assert column_rows([5, 5], 1) == ["▄▄"]  # flat: half height, still visible
    assert column_rows([1, float("nan"), 2], 1) == ["▁ █"]


def test_sample_curve_spans_the_whole_schedule():
    curve = [(0, 0.0), (10, 1.0), (20, 0.0)]
    assert sample_curve(curve, 20, 5) == [0.0, 0.5, 1.0, 0.5, 0.0]


def test_bar_has_exact_width_and_half_cells():
    assert fmt.bar(0.5, 10) == "━━━━━─────"
    assert fmt.bar(0.25, 10) == "━━╸───────"
    assert len(fmt.bar(1.7, 7)) == 7 and len(fmt.bar(None, 7)) == 7


def test_durations_and_rates_read_naturally():
    assert fmt.duration(5) == "0:05" and fmt.duration(754) == "12:34" and fmt.duration(3723) == "1:02:03"
    assert fmt.duration(None) == "--:--"
    assert fmt.rate(2.5) == "2.50 it/s" and fmt.rate(0.25) == "4.00 s/it"


def test_half_block_cells_put_upper_pixel_in_foreground_and_lower_in_background():
    from PIL import Image

    image = Image.new("RGB", (2, 4))
    image.putdata([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255),
                   (10, 10, 10), (20, 20, 20), (30, 30, 30), (40, 40, 40)])
    cells = half_block_cells(image, columns=2, rows=2)
    assert cells == [[((255, 0, 0), (0, 0, 255)), ((0, 255, 0), (255, 255, 255))],
                     [((10, 10, 10), (30, 30, 30)), ((20, 20, 20), (40, 40, 40))]]
    assert len(half_block_cells(image, columns=1, rows=1)) == 1  # downscaled to fit, aspect kept


def test_event_files_are_json_lines_with_type_time_and_seq():
    for path in EVENTS.glob("*.jsonl"):
        complete = path.read_text().split("\n")[:-1]
        assert all({"type", "time", "seq"} <= json.loads(line).keys() for line in complete), path.name
