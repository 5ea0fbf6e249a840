"""Save & Train: the wizard starts a detached engine and its dashboard follows the run to the end."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from engine.config import save_run_file
from engine.runs import list_runs, pid_alive

pytestmark = pytest.mark.slow


def _wait(predicate, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def test_save_and_train_reaches_completed_with_the_path(tiny_config, tmp_path, monkeypatch):
    from tui_lora.app import WizardApp
    from tui_lora.dashboard.screen import DashboardScreen
    from tui_lora.handoff import launch_and_watch
    from tui_lora.sources import load_draft

    monkeypatch.chdir(tmp_path)
    run_file = save_run_file(tiny_config(training__epochs=2), tmp_path / "run.yaml")
    exits: list = []

    async def drive():
        app = WizardApp(load_draft(run_file), train_launcher=launch_and_watch)
        app.exit = lambda *args, **kwargs: exits.append((args, kwargs))  # keep the app up to read it
        async with app.run_test(size=(100, 32)) as pilot:
            app.open_step(4)
            await pilot.pause(0.5)
            await pilot.press("f5")
            for _ in range(600):
                await pilot.pause(0.25)
                if isinstance(app.screen, DashboardScreen) and app.screen.state.status == "completed":
                    break
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            assert screen.state.status == "completed"
            await pilot.pause(0.6)  # one more refresh of the panels
            return screen, app.export_screenshot().replace("&#160;", " ")

    screen, picture = asyncio.run(drive())
    final = tmp_path / "out" / "test_lora.safetensors"
    assert final.exists()
    assert str(final) in screen.state.outcome.outputs
    assert "COMPLETED" in picture.upper() and "test_lora.safetensors" in picture
    (run,) = list_runs()
    assert run.status == "completed"


DRIVER = textwrap.dedent("""
    import asyncio, sys
    from tui_lora.app import WizardApp
    from tui_lora.handoff import launch_and_watch
    from tui_lora.sources import load_draft

    async def main():
        app = WizardApp(load_draft(sys.argv[1]), train_launcher=launch_and_watch)
        async with app.run_test(size=(100, 32)) as pilot:
            app.open_step(4)
            await pilot.pause(0.5)
            await pilot.press("f5")
            print("launched", flush=True)
            await pilot.pause(3600)

    asyncio.run(main())
""")


def test_run_survives_the_ui_being_killed_and_monitor_shows_it(tiny_config, tmp_path, capsys):
    from tui_lora.dashboard import run_monitor

    run_file = save_run_file(tiny_config(training__epochs=3), tmp_path / "run.yaml")
    ui = subprocess.Popen([sys.executable, "-c", DRIVER, str(run_file)], cwd=tmp_path, stdout=subprocess.PIPE,
                          text=True, env={**os.environ})
    try:
        assert ui.stdout.readline().strip() == "launched"
        assert _wait(lambda: list_runs() and list_runs()[0].last_event is not None, 60)
        engine_pid = int(list_runs()[0].run.pid_file.read_text())
        ui.send_signal(signal.SIGKILL)  # the terminal goes away
        ui.wait(10)
        assert pid_alive(engine_pid)
        assert _wait(lambda: list_runs()[0].status != "running", 180)
    finally:
        if ui.poll() is None:
            ui.kill()
    (run,) = list_runs()
    assert run.status == "completed"
    assert (tmp_path / "out" / "test_lora.safetensors").exists()
    capsys.readouterr()
    assert run_monitor(None) == 0  # stdout is not a terminal: a text summary
    out = capsys.readouterr().out
    assert "completed" in out and "test_lora.safetensors" in out
