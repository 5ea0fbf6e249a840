"""The queue in the app: Review's Train now / Add to queue, the Queue screen's keys, its dashboard,
the command palette entry, and `monitor` following the queue from one run to the next."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from textual.widgets import Button

from engine.queue.store import new_entry, read_state, transaction
from tests.queue_support import write_run
from tui_lora.app import WizardApp
from tui_lora.cli import main
from tui_lora.screens.modals import PathPromptScreen
from tui_lora.screens.queue import QueueScreen

from . import wizard_support
from .test_wizard_saving import ready_draft
from .wizard_support import open_step, run_async

dataset = wizard_support.dataset  # a fixture shared by the wizard's tests
wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests
EVENTS = Path(__file__).parent / "data" / "events" / "normal_run.jsonl"


@pytest.fixture
def worker_starts(monkeypatch) -> list[list[str]]:
    """The commands that would start a detached worker (the process boundary)."""
    started: list[list[str]] = []
    monkeypatch.setattr("tui_lora.queueing.start_detached", lambda command, log, cwd=None: started.append(command) or 4242)
    return started


async def wait_rows(pilot, count: int) -> QueueScreen:
    for _ in range(100):
        await pilot.pause(0.05)
        screen = pilot.app.screen
        if isinstance(screen, QueueScreen) and len(screen.rows) == count and str(screen.query_one("#queue-summary").visual):
            return screen
    raise AssertionError(f"the Queue screen never showed {count} rows")


@run_async
async def test_review_offers_train_now_and_add_to_queue_which_queues_a_copy_and_starts_the_worker(dataset, wizard_env, worker_starts):
    app = WizardApp(ready_draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_step(pilot, 4)
        labels = [str(button.label) for button in app.screen.query(Button)]
        assert "Train now (F5)" in labels and "Add to queue (F6)" in labels
        await pilot.press("f6")
        assert isinstance(app.screen, PathPromptScreen)
        await pilot.press("enter")
        screen = await wait_rows(pilot, 1)
        assert screen.rows[0].status == "queued" and screen.rows[0].position == "1"
        picture = app.export_screenshot()
    (entry,) = read_state().entries
    saved = Path(entry.source)
    assert saved.is_file() and Path(entry.snapshot).read_text() == saved.read_text()
    assert entry.cwd == str(wizard_env)
    assert worker_starts and worker_starts[0][1:4] == ["-m", "engine.queue", "work"]
    assert "queued" in picture


@run_async
async def test_queue_screen_from_the_start_screen_reorders_removes_and_pauses_with_keys(tiny_config, tmp_path, worker_starts):
    assert main(["queue", "pause"]) == 0
    files = [write_run(tiny_config, tmp_path, name) for name in ("a", "b", "c")]
    assert main(["queue", "add", *map(str, files)]) == 0
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        screen = await wait_rows(pilot, 3)
        assert [row.name.split()[0] for row in screen.rows] == ["a", "b", "c"]
        await pilot.press("right_square_bracket")  # a one place later
        assert [e.name for e in read_state().queued()] == ["b", "a", "c"]
        await pilot.pause(1.2)
        await pilot.press("down")  # the cursor followed a to the second row; now on c
        await pilot.press("x")
        assert [e.name for e in read_state().queued()] == ["b", "a"]
        await pilot.press("p")  # resume: the worker is asked to start
        assert not read_state().paused and len(worker_starts) == 1
        await pilot.press("p")
        assert read_state().paused
        await pilot.press("escape")
        assert not isinstance(app.screen, QueueScreen)


def _run_folder(root: Path, run_id: str, *, finished: bool) -> Path:
    run = root / ".runs" / run_id
    run.mkdir(parents=True)
    lines = EVENTS.read_text().splitlines()
    (run / "events.jsonl").write_text("\n".join(lines if finished else lines[:6]) + "\n")
    (run / "pid").write_text(str(os.getpid()))  # alive: the unfinished one reads running
    return run


def _two_entry_queue(tmp_path: Path, *, second_running: bool) -> tuple[Path, Path]:
    first = _run_folder(tmp_path / "out", "run-one", finished=True)
    second = _run_folder(tmp_path / "out", "run-two", finished=False)
    with transaction() as state:  # both added at once (one batch), then the worker got going
        for name, run in (("one", first), ("two", second)):
            entry = new_entry(state, source=f"{name}.yaml", snapshot=f"{name}.yaml", cwd=str(tmp_path), name=name,
                              output=str(tmp_path / "out"))
            entry.run_id, entry.run_path = run.name, str(run)
        state.entries[0].status = "completed"
        state.entries[1].status = "running" if second_running else "queued"
    return first, second


@run_async
async def test_enter_on_a_queue_entry_opens_its_dashboard_with_its_place_in_the_queue(tmp_path):
    from tui_lora.queue_monitor import QueueDashboardScreen

    _two_entry_queue(tmp_path, second_running=True)
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_queue()
        await wait_rows(pilot, 2)
        await pilot.press("down", "enter")
        await pilot.pause(0.5)
        assert isinstance(app.screen, QueueDashboardScreen) and app.screen.run.run_id == "run-two"
        assert "queue 2/2" in app.export_screenshot().replace("&#160;", " ")
        await pilot.press("d")  # detach: back to the queue
        assert isinstance(app.screen, QueueScreen)


@run_async
async def test_the_command_palette_opens_the_queue(wizard_env):  # noqa: ARG001 - isolated user folders
    from .wizard_support import type_text

    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await type_text(pilot, "run queue")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_rows(pilot, 0)
        assert "Nothing queued" in app.export_screenshot().replace("&#160;", " ")


@run_async
async def test_monitor_follows_the_queue_to_the_next_run_and_shows_queue_2_of_2(tmp_path):
    from tui_lora.queue_monitor import QueueDashboardScreen, QueueMonitorApp, queue_entry_to_follow

    first, second = _two_entry_queue(tmp_path, second_running=False)
    state = read_state()
    app = QueueMonitorApp(state.entries[0], "queue 1/2")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(1.5)
        assert app.screen.run.run_id == "run-one" and app.screen.state.finished
        assert "queue 1/2" in app.export_screenshot().replace("&#160;", " ")
        with transaction() as state:  # the worker starts the second run
            state.entries[1].status = "running"
        for _ in range(60):
            await pilot.pause(0.1)
            if isinstance(app.screen, QueueDashboardScreen) and app.screen.run.run_id == "run-two":
                break
        assert app.screen.run.run_id == "run-two"
        await pilot.pause(0.5)
        assert "queue 2/2" in app.export_screenshot().replace("&#160;", " ")
    assert queue_entry_to_follow(read_state()).run_id == "run-two"
    shutil.rmtree(first)
