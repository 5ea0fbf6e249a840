"""The wizard is generated from the schema: every setting is on exactly one screen, shows its hint,
and its full explanation follows focus into the help panel."""

from __future__ import annotations

from engine.config import SETTINGS
from tui_lora.app import WizardApp
from tui_lora.draft import Draft
from tui_lora.widgets.help_panel import HelpPanel
from tui_lora.widgets.setting_field import SettingField

from . import wizard_support
from .wizard_support import focused_key, open_step, run_async, settle

wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests


def flat(text: str) -> str:
    return " ".join(text.split())


@run_async
async def test_every_setting_is_on_one_screen_with_its_hint_and_explanation(wizard_env):
    app = WizardApp(Draft({"model.quick_pick": "builtin-tiny-sd1"}))
    seen: dict[str, str] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for step in (1, 2, 3):
            if step > 1:
                await open_step(pilot, step)
            screen = app.screen
            for key, field in screen.fields().items():
                assert key not in seen, f"{key} is on {seen[key]} and {type(screen).__name__}"
                seen[key] = type(screen).__name__
                setting = SETTINGS[key]
                notes = str(field.query_one(".field-notes").visual)
                assert flat(setting.hint) in flat(notes), key
                assert flat(setting.label) == flat(str(field.query_one(".field-label").visual)), key

                screen.focus_field(key)
                await pilot.pause()
                assert focused_key(app) == key  # disabled fields too: they take focus themselves
                for _ in range(40):  # switching to the Advanced tab can take a few frames on a busy machine
                    help_text = flat(screen.query_one(HelpPanel).text)
                    if setting.key in help_text:
                        break
                    await pilot.pause(0.05)
                assert flat(setting.help) in help_text, key
                assert setting.key in help_text, key
    assert sorted(seen) == sorted(SETTINGS.keys())


@run_async
async def test_the_ui_keeps_no_list_of_settings_of_its_own(wizard_env):
    """Fields come from SETTINGS.on_screen in schema order; nothing is added or left out."""
    app = WizardApp(Draft({"model.quick_pick": "builtin-tiny-sd1"}))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_step(pilot, 3)
        keys = [field.setting.key for field in app.screen.query(SettingField)]
        expected = [s.key for s in SETTINGS.on_screen("basic")] + [s.key for s in SETTINGS.on_screen("advanced")]
        assert keys == expected
