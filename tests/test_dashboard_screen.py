"""The dashboard on screen: what it shows for recorded and growing streams, its keys, snapshots."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from engine.events import EventWriter
from engine.runs import RunDir, create_run, pid_alive
from tui_lora.dashboard import run_monitor
from tui_lora.dashboard.control import RunControl
from tui_lora.dashboard.graphics import SamplePanel
from tui_lora.dashboard.screen import DashboardApp, DashboardScreen

EVENTS = Path(__file__).parent / "data" / "events"

# A child that stands in for the engine: it records the signals the dashboard sends.
FAKE_ENGINE = """
import pathlib, signal, sys, time
marks = pathlib.Path(sys.argv[1])
signal.signal(signal.SIGINT, lambda *a: (marks / "SIGINT").write_text("x"))
signal.signal(signal.SIGUSR1, lambda *a: (marks / "SIGUSR1").write_text("x"))
(marks / "ready").write_text("x")
while True:
    time.sleep(0.05)
"""


def sync(test):
    """Run an async test on a fresh event loop (no pytest asyncio plugin needed)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


def make_run(root: Path, stream: str, *, pid: int | None = None) -> RunDir:
    """A run folder holding a recorded stream, its `$OUT` pointing at `root/out`."""
    out = root / "out"
    run = RunDir(out / ".runs" / stream)
    run.path.mkdir(parents=True, exist_ok=True)
    run.events.write_text((EVENTS / f"{stream}.jsonl").read_text().replace("$OUT", str(out)))
    if pid is not None:
        run.pid_file.write_text(str(pid))
    return run


def write_sample_png(run: RunDir) -> Path:
    from PIL import Image

    path = run.path.parent.parent / "samples" / "demo_000010_0.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (32, 32))
    image.putdata([(x * 8, y * 8, 160) for y in range(32) for x in range(32)])
    image.save(path)
    return path


def screen_text(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; the screen shows:\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)


async def wait_for_text(pilot, *texts: str, timeout: float = 10.0) -> None:
    await wait_for(pilot, lambda: all(text in screen_text(pilot.app) for text in texts), timeout)


def wait_for_file(path: Path, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def fake_engine(tmp_path):
    """A live process that writes a file per signal received; killed after the test."""
    marks = tmp_path / "marks"
    marks.mkdir()
    child = subprocess.Popen([sys.executable, "-c", FAKE_ENGINE, str(marks)])
    assert wait_for_file(marks / "ready"), "the fake engine did not start"
    yield child, marks
    child.kill()
    child.wait()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- what it shows ------------------------------------------------------------------------------

@sync
async def test_finished_stopped_stream_shows_step_epoch_and_status(tmp_path):
    run = make_run(tmp_path, "stopped_run", pid=dead_pid())
    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "step 5/20", "epoch 1/2", "STOPPED", "LoRA")
        text = screen_text(app)
        assert "2.00 it/s" in text and "batch 2×1×2=4" in text
        assert "demo.safetensors" in text


@sync
async def test_failed_stream_shows_the_error_and_its_hint(tmp_path):
    run = make_run(tmp_path, "failed_run")
    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_text(pilot, "FAILED", "step 7/20", "hint")
        text = screen_text(app)
        assert "CUDA out of memory. Tried to allocate 2.00 GiB" in text
        assert "lower batch_size or resolution, or turn on gradient_checkpointing" in text
        assert "traceback.txt" in text


@sync
async def test_stream_whose_process_died_without_a_final_event_shows_lost(tmp_path):
    run = make_run(tmp_path, "lost_run", pid=dead_pid())
    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "LOST", "step 12/20", "wrote no final event", "ETA --:--")
        assert "demo-000001.safetensors" in screen_text(app)  # the last save, named in the result


@sync
async def test_screen_follows_a_stream_while_it_is_written(tmp_path):
    run = RunDir(tmp_path / "out" / ".runs" / "live")
    run.path.mkdir(parents=True)
    run.pid_file.write_text(str(os.getpid()))  # this test process is the "engine": alive throughout
    writer = EventWriter(run.events)
    writer.emit("run_started", output_name="live-demo", device="cuda:0", total_steps=20, total_epochs=2,
                steps_per_epoch=10, batch_size=1)
    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "step 0/20", "RUNNING")
        for step in range(1, 6):
            writer.emit("step", step=step, total_steps=20, epoch=1, total_epochs=2, loss=0.5 / step,
                        lr={"unet": 1e-4}, it_per_s=2.0)
        await wait_for_text(pilot, "step 5/20", "epoch 1/2", "ETA 0:08")
        for step in range(6, 13):
            writer.emit("step", step=step, total_steps=20, epoch=(step - 1) // 10 + 1, total_epochs=2,
                        loss=0.5 / step, it_per_s=2.0)
        await wait_for_text(pilot, "step 12/20", "epoch 2/2")
        writer.emit("run_finished", status="completed", outputs=[str(tmp_path / "out" / "live-demo.safetensors")],
                    step=12)
        await wait_for_text(pilot, "COMPLETED", "live-demo.safetensors")
    writer.close()


@sync
async def test_sample_image_is_drawn_with_half_blocks(tmp_path):
    run = make_run(tmp_path, "normal_run")
    write_sample_png(run)
    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.screen.query_one(SamplePanel)
        await wait_for(pilot, lambda: panel.image is not None)
        await wait_for_text(pilot, "▀", "step 10 · 1 image")
        colours = {str(segment.style.bgcolor) for strip in app.screen._compositor.render_strips()
                   for segment in strip if segment.text == "▀"}
        assert len(colours) > 10  # a gradient, not one flat colour


# --- keys ---------------------------------------------------------------------------------------

@sync
async def test_s_asks_first_then_sends_sigint_to_the_engine(tmp_path, fake_engine):
    child, marks = fake_engine
    run = make_run(tmp_path, "lost_run", pid=child.pid)  # no final event, and the pid is alive: running
    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "RUNNING", "step 12/20")
        await pilot.press("s")
        await wait_for_text(pilot, "Stop the run?")
        await pilot.press("n")
        await pilot.pause(0.2)
        assert not (marks / "SIGINT").exists()
        await pilot.press("s")
        await wait_for_text(pilot, "Stop the run?")
        await pilot.press("y")
        assert await asyncio.to_thread(wait_for_file, marks / "SIGINT")
        await wait_for_text(pilot, "STOPPING")
    assert pid_alive(child.pid)  # the engine decides when to exit, after saving


@sync
async def test_c_asks_the_engine_for_a_checkpoint(tmp_path, fake_engine):
    child, marks = fake_engine
    run = make_run(tmp_path, "lost_run", pid=child.pid)
    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "RUNNING")
        await pilot.press("c")
        assert await asyncio.to_thread(wait_for_file, marks / "SIGUSR1")
    assert not (marks / "SIGINT").exists()


@sync
async def test_d_detaches_and_leaves_the_run_going(tmp_path, fake_engine):
    child, marks = fake_engine
    run = make_run(tmp_path, "lost_run", pid=child.pid)
    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "RUNNING")
        await pilot.press("d")
        await pilot.pause(0.1)
    assert app.return_value == "detach"
    await asyncio.sleep(0.3)
    assert pid_alive(child.pid) and not (marks / "SIGINT").exists()


@sync
async def test_q_on_a_live_run_asks_stop_or_detach_and_escape_cancels(tmp_path, fake_engine):
    child, marks = fake_engine
    run = make_run(tmp_path, "lost_run", pid=child.pid)
    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "RUNNING")
        await pilot.press("q")
        await wait_for_text(pilot, "The run is still going")
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert isinstance(app.screen, DashboardScreen) and app.is_running
        await pilot.press("q")
        await wait_for_text(pilot, "The run is still going")
        await pilot.press("s")
        await pilot.pause(0.1)
    assert app.return_value == "stop"
    assert await asyncio.to_thread(wait_for_file, marks / "SIGINT")


@sync
async def test_q_on_a_finished_run_quits_at_once_and_s_sends_nothing(tmp_path, fake_engine):
    child, marks = fake_engine
    run = make_run(tmp_path, "stopped_run")
    app = DashboardApp(run.path, control=RunControl(child.pid), mouse=False)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for_text(pilot, "STOPPED")
        await wait_for(pilot, lambda: "Quit" in screen_text(app).splitlines()[-1])
        await pilot.pause(0.3)
        footer = screen_text(app).splitlines()[-1]
        assert "Stop" not in footer and "Save now" not in footer  # only keys that do something
        await pilot.press("s")
        await pilot.press("c")
        await pilot.pause(0.2)
        await pilot.press("q")
        await pilot.pause(0.1)
    assert app.return_value == "quit"
    assert not (marks / "SIGINT").exists() and not (marks / "SIGUSR1").exists()


def test_run_control_is_a_no_op_with_a_message_once_the_process_is_gone():
    message = RunControl(dead_pid()).stop()
    assert "already ended" in message


# --- monitor ------------------------------------------------------------------------------------

def test_monitor_without_any_run_says_so_and_returns_1(capsys):
    assert run_monitor(None) == 1
    assert "no runs yet" in capsys.readouterr().err
    assert run_monitor("nope") == 1
    assert "no run matches 'nope'" in capsys.readouterr().err


def test_monitor_outside_a_terminal_prints_the_final_state(tmp_path, capsys):
    run = create_run(tmp_path / "out", run_id="20250618-140000-0a0b0c", output_name="demo")
    run.events.write_text((EVENTS / "failed_run.jsonl").read_text().replace("$OUT", str(tmp_path / "out")))
    assert run_monitor("20250618-14") == 0  # pytest's stdout is not a terminal
    printed = capsys.readouterr().out
    assert "failed" in printed and "step 7/20" in printed and "hint: lower batch_size" in printed


# --- snapshots of a finished run ----------------------------------------------------------------

@pytest.fixture
def snapshot_run(request):
    """The normal run with its sample, in a fixed folder per test so the paths on screen never change."""
    root = Path(tempfile.gettempdir()) / f"tui-lora-snapshot-{request.node.callspec.id}"
    shutil.rmtree(root, ignore_errors=True)
    run = make_run(root, "normal_run")
    write_sample_png(run)
    yield run
    shutil.rmtree(root, ignore_errors=True)


async def _settled(pilot) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen) and pilot.app.screen.state.finished)
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.query_one(SamplePanel).image is not None)
    await pilot.pause(0.4)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_finished_run_snapshot(snap_compare, snapshot_run, size):
    assert snap_compare(DashboardApp(snapshot_run.path, mouse=False), terminal_size=size, run_before=_settled)
