"""Shared helpers of the wizard's tests: an isolated user environment and keyboard-only input.

Every helper drives the app with key presses, as a user at a terminal would: Tab to reach a
field, type into it, Enter and arrows for lists.
"""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path

import pytest
from textual.widgets import Input, Select, Switch, TextArea

from tui_lora.widgets.setting_field import SettingField

_KEY_NAMES = {" ": "space", "/": "slash", ".": "full_stop", "_": "underscore", "-": "minus", ",": "comma",
              "=": "equals_sign", ":": "colon", "~": "tilde"}


def run_async(test):
    """Run an async test function with asyncio (no pytest async plugin is needed)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper


@pytest.fixture
def wizard_env(tmp_path, monkeypatch) -> Path:
    """A user with empty state, data and cache folders, offline, working in `tmp_path`."""
    for name, folder in (("XDG_STATE_HOME", "state"), ("XDG_DATA_HOME", "data"), ("TUI_LORA_CACHE", "cache")):
        monkeypatch.setenv(name, str(tmp_path / folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def dataset(wizard_env) -> tuple[Path, Path]:
    """The synthetic dataset (images, regularisation) inside the working folder."""
    from engine.dataset.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(wizard_env / "dataset")


def focused_key(app) -> str | None:
    node = app.focused
    while node is not None and not isinstance(node, SettingField):
        node = node.parent
    return node.setting.key if node is not None else None


async def tab_to(pilot, key: str, limit: int = 120) -> SettingField:
    """Press Tab until the field of `key` has focus."""
    for _ in range(limit):
        if focused_key(pilot.app) == key:
            return pilot.app.screen.fields()[key]
        await pilot.press("tab")
    raise AssertionError(f"Tab never reached {key} (focus: {pilot.app.focused})")


async def reach(pilot, key: str, tab: bool) -> SettingField:
    """Give the field focus: with Tab presses (as a user), or directly (to keep a test short)."""
    if tab:
        return await tab_to(pilot, key)
    pilot.app.screen.focus_field(key)
    await pilot.pause()
    assert focused_key(pilot.app) == key
    return pilot.app.screen.fields()[key]


async def type_text(pilot, text: str) -> None:
    await pilot.press(*[_KEY_NAMES.get(ch, ch) for ch in text])


async def set_text(pilot, key: str, text: str, *, tab: bool = True) -> None:
    """Tab to a text field, clear it and type `text`."""
    field = await reach(pilot, key, tab)
    assert isinstance(field.control, (Input, TextArea)), key
    await pilot.press("end", "ctrl+u") if isinstance(field.control, Input) else await pilot.press("ctrl+a")
    if isinstance(field.control, TextArea) and field.control.text:
        await pilot.press("backspace")
    for number, line in enumerate(text.split("\n")):
        if number:
            await pilot.press("enter")
        await type_text(pilot, line)


async def choose(pilot, key: str, value, *, tab: bool = True) -> None:
    """Tab to a list, open it with Enter, move with the arrows and pick with Enter."""
    field = await reach(pilot, key, tab)
    select = field.control
    assert isinstance(select, Select), key
    choices = list(field.setting.choices)
    steps = choices.index(value) - choices.index(select.value)
    await pilot.press("enter")
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps))
    await pilot.press("enter")
    assert select.value == value


async def toggle(pilot, key: str, value: bool, *, tab: bool = True) -> None:
    field = await reach(pilot, key, tab)
    assert isinstance(field.control, Switch), key
    if field.control.value != value:
        await pilot.press("space")
    assert field.control.value == value


async def open_step(pilot, step: int) -> None:
    """Show one wizard step directly (the walk through the steps is tested on its own)."""
    pilot.app.open_step(step)
    await settle(pilot)


async def settle(pilot, timeout: float = 30.0) -> None:
    """Wait until the screen's delayed checks have started and its background work is done,
    including work that finished work starts (the dataset scan's result starts the doctor)."""
    from textual.worker import WorkerState

    def busy() -> bool:
        return getattr(pilot.app.screen, "checks_pending", False) or any(
            worker.state in (WorkerState.PENDING, WorkerState.RUNNING) for worker in pilot.app.workers)

    await pilot.pause()  # let a screen just pushed mount and schedule its checks
    deadline = time.monotonic() + timeout
    quiet_rounds = 0
    while quiet_rounds < 3 and time.monotonic() < deadline:
        await pilot.pause(0.05)
        quiet_rounds = 0 if busy() else quiet_rounds + 1
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
