"""What the wizard remembers (recent run files, theme) and how it starts (themes, files)."""

from __future__ import annotations

import json

from engine.config import RunConfig, save_run_file
from themes import THEMES, resolve_theme_name
from tui_lora.app import WizardApp, run_app
from tui_lora.screens.model import ModelScreen
from tui_lora.user_state import MAX_RECENT, UserState

from . import wizard_support
from .wizard_support import run_async, settle

wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests


def xterm_256_palette() -> set[str]:
    levels = [0, 95, 135, 175, 215, 255]
    cube = {f"#{r:02x}{g:02x}{b:02x}" for r in levels for g in levels for b in levels}
    greys = {f"#{v:02x}{v:02x}{v:02x}" for v in range(8, 239, 10)}
    return cube | greys


def test_user_state_round_trips_and_survives_a_damaged_file(wizard_env):
    state = UserState()
    for index in range(MAX_RECENT + 2):
        state.remember_file(wizard_env / f"run{index}.yaml")
    state.remember_file(wizard_env / "run3.yaml")
    state.theme = "light"
    assert state.save()
    loaded = UserState.load()
    assert loaded.theme == "light"
    assert len(loaded.recent) == MAX_RECENT and loaded.recent[0].endswith("run3.yaml")
    assert loaded.recent.count(str(wizard_env / "run3.yaml")) == 1

    path = wizard_env / "state" / "tui-lora" / "wizard.json"
    path.write_text("{not json")
    assert UserState.load() == UserState()


def test_theme_colours_are_exact_256_colour_entries():
    palette = xterm_256_palette()
    for theme in THEMES.values():
        colours = [theme.primary, theme.secondary, theme.accent, theme.warning, theme.error, theme.success,
                   theme.foreground, theme.background, theme.surface, theme.panel]
        assert all(c.lower() in palette for c in colours), theme.name
    assert resolve_theme_name("Mono") == "contrast"


@run_async
async def test_theme_from_the_command_line_is_applied_and_remembered(wizard_env):
    app = WizardApp(theme="light")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == "light"
    assert UserState.load().theme == "light"

    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == "light"
        app.theme = "contrast"  # what the command palette's theme picker does
        await pilot.pause()
    assert json.loads((wizard_env / "state" / "tui-lora" / "wizard.json").read_text())["theme"] == "contrast"


def test_run_app_refuses_an_unknown_theme_and_an_unreadable_file(wizard_env, capsys):
    assert run_app(None, "purple") == 2
    assert "unknown theme 'purple'" in capsys.readouterr().err
    (wizard_env / "bad.yaml").write_text("network: [unclosed\n")
    assert run_app(str(wizard_env / "bad.yaml"), None) == 2
    assert "bad.yaml" in capsys.readouterr().err


@run_async
async def test_a_recent_run_file_opens_from_the_start_screen(wizard_env):
    run_file = wizard_env / "recent.yaml"
    save_run_file(RunConfig({"folders.images": "imgs", "network.rank": 12}), run_file)
    state = UserState()
    state.remember_file(run_file)
    state.save()
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("end", "enter")  # the newest recent file is the last entry
        await settle(pilot)
        assert isinstance(app.screen, ModelScreen)
        assert app.draft.path == run_file.resolve()
        assert app.draft.values["network.rank"] == "12"
