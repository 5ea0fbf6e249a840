"""A run the engine refuses to start: Review names the problem before F5, and a refusal Review could
not foresee reaches the dashboard in the engine's own words, never as a "lost" run."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import save_run_file

COLLISION = "already exists and would be replaced"


def _collide(tmp_path: Path) -> Path:
    """A LoRA from an earlier run under the same output name."""
    final = tmp_path / "out" / "test_lora.safetensors"
    final.parent.mkdir(parents=True, exist_ok=True)
    final.write_bytes(b"an earlier LoRA")
    return final


async def _review(pilot, app) -> None:
    from tests.wizard_support import settle

    app.open_step(4)
    await settle(pilot)
    for _ in range(200):  # the scan, then the engine's start-up checks after it
        if app.screen.environment_complete:
            break
        await pilot.pause(0.1)
    await pilot.pause(0.2)


def test_review_lists_the_engines_start_up_refusal_before_f5(tiny_config, tmp_path, monkeypatch):
    from tui_lora.app import WizardApp
    from tui_lora.sources import load_draft

    monkeypatch.chdir(tmp_path)
    run_file = save_run_file(tiny_config(), tmp_path / "run.yaml")
    final = _collide(tmp_path)
    launched: list = []

    async def drive():
        app = WizardApp(load_draft(run_file), train_launcher=lambda app, path: launched.append(path))
        async with app.run_test(size=(80, 24)) as pilot:
            await _review(pilot, app)
            text = str(app.screen.query_one("#review-problems").render())
            await pilot.press("f5")
            await pilot.pause(0.3)
            return text

    text = asyncio.run(drive())
    assert f"{final} {COLLISION}" in text and "error" in text and "[Folders]" in text
    assert "none found" not in text
    assert launched == []  # F5 refused, as the engine would


@pytest.mark.slow
def test_a_refused_start_shows_the_engines_message_on_the_dashboard(tiny_config, tmp_path, monkeypatch):
    from tui_lora.app import WizardApp
    from tui_lora.dashboard.screen import DashboardScreen
    from tui_lora.handoff import launch_and_watch
    from tui_lora.sources import load_draft

    monkeypatch.chdir(tmp_path)
    run_file = save_run_file(tiny_config(), tmp_path / "run.yaml")

    async def drive():
        app = WizardApp(load_draft(run_file), train_launcher=launch_and_watch)
        app.exit = lambda *args, **kwargs: None  # keep the app up to read it
        async with app.run_test(size=(80, 24)) as pilot:
            await _review(pilot, app)
            _collide(tmp_path)  # after Review looked: only the engine can find it now
            await pilot.press("f5")
            for _ in range(400):
                await pilot.pause(0.25)
                if isinstance(app.screen, DashboardScreen) and app.screen.state.finished:
                    break
            await pilot.pause(1.0)
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            return screen.state, app.export_screenshot().replace("&#160;", " ")

    state, picture = asyncio.run(drive())
    assert state.status == "failed", state.status
    assert COLLISION in state.outcome.message and state.error is not None and COLLISION in state.error.message
    assert "LOST" not in picture and "FAILED" in picture and "already" in picture
    (run_dir,) = (tmp_path / "out" / ".runs").iterdir()
    assert "nothing was started" in (run_dir / "console.log").read_text()


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


class Tmux:
    """The wizard in a real pseudo-terminal of 80x24 (its own tmux server)."""

    def __init__(self, tmp_path: Path, run_file: Path):
        self.name = f"ux-refusal-{os.getpid()}-{time.monotonic_ns()}"
        root = Path(__file__).resolve().parents[1]
        env = f"PYTHONPATH={root} HF_HUB_OFFLINE=1 XDG_STATE_HOME={tmp_path}/state TERM=tmux-256color"
        command = f"cd {tmp_path} && env {env} {sys.executable} -m tui_lora.cli --no-mouse edit {run_file}"
        self.run("new-session", "-d", "-x", "80", "-y", "24", "-s", self.name, command)

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.name, *args], check=True, capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.run("send-keys", "-t", self.name, key)
            time.sleep(0.5)

    def until(self, words: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.run("capture-pane", "-p", "-t", self.name)
            if words in text:
                return text
            time.sleep(0.3)
        raise AssertionError(f"{words!r} never showed:\n{text}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.name, "kill-server"], capture_output=True)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_refusal_in_a_real_terminal(tiny_config, tmp_path):
    run_file = save_run_file(tiny_config(), tmp_path / "run.yaml")
    final = _collide(tmp_path)
    term = Tmux(tmp_path, run_file)  # Review names the existing file before F5
    try:
        for words in ("Base model", "Image folder", "Network type", "already exists"):
            text = term.until(words)  # one step per Ctrl+N: each press once the step is there
            if words != "already exists":
                term.keys("C-n")
        assert "✗ error" in text and "none found" not in text
    finally:
        term.close()
    final.unlink()
    term = Tmux(tmp_path, run_file)  # the file appears after Review looked: the engine's words show
    try:
        for words in ("Base model", "Image folder", "Network type", "none found"):
            term.until(words)
            if words != "none found":
                term.keys("C-n")
        _collide(tmp_path)
        term.keys("F5")
        text = term.until("FAILED", 120)
        assert "LOST" not in text and "already" in text
    finally:
        term.close()
