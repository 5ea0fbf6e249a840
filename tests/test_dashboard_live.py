"""The dashboard while a run is busy and quiet, while it stops, and once it has ended.

The clock is injected (a mock at a true boundary), so "in progress for 1:05" is exact.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from engine.events import EventWriter
from engine.runs import RunDir
from tui_lora.dashboard.screen import DashboardApp
from tui_lora.dashboard.reducer import build_state, current_activity, elapsed_now

from .test_dashboard_screen import screen_text, sync, wait_for, wait_for_file, wait_for_text

T0 = 1_800_000_000.0

# Stands in for the engine: counts the SIGINTs it receives (the second one means "abort now").
COUNTING_ENGINE = """
import pathlib, signal, sys, time
marks = pathlib.Path(sys.argv[1])
count = [0]
def on_int(*args):
    count[0] += 1
    (marks / f"SIGINT{count[0]}").write_text("x")
signal.signal(signal.SIGINT, on_int)
(marks / "ready").write_text("x")
while True:
    time.sleep(0.05)
"""


def event(type: str, time: float, **fields) -> dict:
    return {"type": type, "time": time, **fields}


def started(**fields) -> dict:
    return event("run_started", T0 + 40, elapsed_s=40.0, output_name="slow", total_steps=10, total_epochs=1,
                 steps_per_epoch=10, batch_size=1, **fields)


def step(number: int, time: float) -> dict:
    return event("step", time, step=number, total_steps=10, epoch=1, total_epochs=1, loss=0.2, it_per_s=2.0,
                 elapsed_s=time - T0)


def test_elapsed_follows_the_wall_clock_while_live_and_the_events_once_ended():
    state = build_state([event("phase", T0, name="loading_model", label="loading the model", elapsed_s=0.0)])
    state.now = T0 + 125
    assert elapsed_now(state) == 125 and current_activity(state) == ("loading the model", 125)
    state = build_state([started(), step(1, T0 + 50), event("run_finished", T0 + 60, status="completed", step=1)])
    state.now = T0 + 9999
    assert elapsed_now(state) == 60  # a finished run's clock stopped at its final event


def test_a_step_far_slower_than_usual_is_shown_in_progress_with_its_duration():
    state = build_state([started(), step(1, T0 + 50), step(2, T0 + 50.5)])
    state.now = T0 + 52  # 1.5 s: routine at 2 it/s
    assert current_activity(state) is None
    state.now = T0 + 50.5 + 65
    assert current_activity(state) == ("step 3 in progress", 65)


def test_caching_phase_counts_images_and_a_step_ends_any_phase():
    state = build_state([started(), event("phase", T0 + 41, name="caching", label="caching latents", elapsed_s=41),
                         event("caching", T0 + 42, stage="latents", done=3, total=8)])
    state.now = T0 + 71
    assert current_activity(state) == ("caching latents 3/8", 30)
    state = build_state([started(), event("phase", T0 + 41, name="first_step", label="step 1", elapsed_s=41),
                         step(1, T0 + 90)])
    state.now = T0 + 90.2
    assert state.phase is None and current_activity(state) is None


@sync
async def test_screen_clock_moves_without_events_and_names_the_long_phase(tmp_path):
    run = RunDir(tmp_path / "out" / ".runs" / "quiet")
    run.path.mkdir(parents=True)
    writer = EventWriter(run.events, clock=lambda: T0)
    writer.emit("phase", name="loading_model", label="loading the model", elapsed_s=0.0)
    now = [T0 + 5]
    app = DashboardApp(run.path, control=None, mouse=False, clock=lambda: now[0])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "loading the model for 0:05")
        now[0] = T0 + 48
        await wait_for_text(pilot, "loading the model for 0:48")
        writer._clock = lambda: T0 + 50
        writer.emit("run_started", elapsed_s=50.0, output_name="quiet", total_steps=10, total_epochs=1,
                    steps_per_epoch=10)
        writer.emit("phase", name="first_step", label="step 1 (first: warm-up)", elapsed_s=50.0)
        now[0] = T0 + 50 + 8 * 60  # eight quiet minutes: the screen must not look hung
        await wait_for_text(pilot, "step 1 (first: warm-up) for 8:00", "elapsed 8:50")
        now[0] += 1
        await wait_for_text(pilot, "for 8:01", "elapsed 8:51")
    writer.close()


@pytest.fixture
def counting_engine(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    child = subprocess.Popen([sys.executable, "-c", COUNTING_ENGINE, str(marks)])
    assert wait_for_file(marks / "ready"), "the stand-in engine did not start"
    yield child, marks
    child.kill()
    child.wait()


@sync
async def test_while_stopping_the_screen_offers_abort_and_a_second_s_sends_the_second_signal(tmp_path,
                                                                                             counting_engine):
    child, marks = counting_engine
    run = RunDir(tmp_path / "out" / ".runs" / "stopping")
    run.path.mkdir(parents=True)
    run.pid_file.write_text(str(child.pid))
    writer = EventWriter(run.events)
    writer.emit("run_started", output_name="stopping", total_steps=10, total_epochs=1, steps_per_epoch=10)
    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "RUNNING")
        await pilot.press("s")
        await wait_for_text(pilot, "Stop the run?")
        await pilot.press("y")
        assert await asyncio.to_thread(wait_for_file, marks / "SIGINT1", 30)
        await wait_for_text(pilot, "STOPPING… s again: abort")
        assert not (marks / "SIGINT2").exists()
        await pilot.press("s")  # no second question: the first stop was already confirmed
        assert await asyncio.to_thread(wait_for_file, marks / "SIGINT2", 30)
        await wait_for_text(pilot, "ABORTING")
    writer.close()


@sync
async def test_finished_screen_names_the_lora_by_absolute_path_with_next_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = RunDir(tmp_path / "out" / ".runs" / "done")
    run.path.mkdir(parents=True)
    writer = EventWriter(run.events)
    writer.emit("run_started", output_name="done", output_dir=str(tmp_path / "out"), total_steps=2, total_epochs=1)
    writer.emit("run_finished", status="completed", outputs=["out/done.safetensors"], step=2)  # relative, as written
    writer.close()
    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_text(pilot, "COMPLETED")
        await wait_for(pilot, lambda: "models/loras" in screen_text(app))
        text = screen_text(app)
        flat = "".join(line.strip(" │").removeprefix("LoRA").strip() for line in text.splitlines())
        assert str(tmp_path / "out" / "done.safetensors") in flat  # wrapped after a `/`, never relative
        assert "A1111/Forge" in text
