"""Snapshots of every wizard screen at 80×24 (the SSH minimum) and 120×40.

Regenerate deliberately with `pytest tests/test_wizard_snapshots.py --snapshot-update` after a
visual change has been looked at, never to make a red test green.
"""

from __future__ import annotations

import pytest

from textual.widgets import Input

from tui_lora.app import WizardApp
from tui_lora.draft import Draft

from . import wizard_support
from .wizard_support import settle

dataset = wizard_support.dataset  # a fixture shared by the wizard's tests
wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests

SIZES = [(80, 24), (120, 40)]


@pytest.fixture(autouse=True)
def no_built_model(monkeypatch, tmp_path):
    """Screens show more once the tiny model exists (its tokenizer, its file size); whether another
    test in this process built it first must not change a picture, so these start with none."""
    monkeypatch.setenv("TUI_LORA_CACHE", str(tmp_path / "empty-model-cache"))


def demo_like_draft() -> Draft:
    return Draft({"model.quick_pick": "builtin-tiny-sd1", "folders.images": "dataset/images",
                  "folders.output_name": "mychar"})


def steps_to(step: int):
    async def run_before(pilot) -> None:
        await settle(pilot)
        for number in range(2, step + 1):
            pilot.app.open_step(number)
            await settle(pilot)
        await settle(pilot)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor is on or off by the clock: pin it on
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_start_screen(snap_compare, wizard_env, size):
    assert snap_compare(WizardApp(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("step, name", [(1, "model"), (2, "folders"), (3, "parameters"), (4, "review")])
def test_wizard_step(snap_compare, dataset, step, name, size):
    assert snap_compare(WizardApp(demo_like_draft()), terminal_size=size, run_before=steps_to(step))
