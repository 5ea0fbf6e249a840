"""Every theme is legible: text at least 4.5:1 and badges/keys at least 3:1 against what they sit on
(WCAG), in 256 colours and as a 16-colour terminal shows them; the palette offers only these themes."""

from __future__ import annotations

import pytest

from themes import THEMES
from themes.contrast import MARK, PAIRS, TEXT, contrasts, in_16_colours, ratio


@pytest.mark.parametrize("name", list(THEMES))
def test_every_pair_meets_wcag_in_256_and_16_colours(name):
    found = contrasts(THEMES[name])
    assert {c.colours for c in found} == {256, 16} and len(found) == 2 * len(PAIRS)
    failing = [str(c) for c in found if not c.ok]
    assert not failing, "\n".join(failing)


def test_the_contrast_maths_is_wcags():
    assert ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert ratio((118, 118, 118), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)  # WCAG's own example grey
    assert in_16_colours((0x1c, 0x1c, 0x1c)) == (0, 0, 0)
    assert in_16_colours((0x3a, 0x3a, 0x3a)) == (85, 85, 85)  # the old dark panel: grey under grey text
    assert {minimum for *_, minimum in PAIRS} == {TEXT, MARK}


def test_the_check_catches_the_old_themes_failures():
    """The themes as they were: the dark header in 16 colours, light placeholders (issue 26)."""
    from textual.theme import Theme

    old_dark = Theme(name="old", primary="#5fafff", accent="#ffaf00", warning="#ffaf00", error="#ff5f5f",
                     success="#87d787", foreground="#d0d0d0", background="#1c1c1c", surface="#262626",
                     panel="#3a3a3a", dark=True)
    failing = {(c.what, c.colours) for c in contrasts(old_dark) if not c.ok}
    assert ("text on panel", 16) in failing and ("disabled labels and placeholders on surface", 256) in failing


def test_the_palette_offers_only_the_documented_themes(tmp_path, monkeypatch):
    import asyncio

    from tui_lora.app import WizardApp, theme_names

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))

    async def drive():
        app = WizardApp()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            return set(app.available_themes)

    assert asyncio.run(drive()) == set(THEMES) == set(theme_names()) == {"dark", "light", "contrast"}


def test_monitor_uses_the_wizards_theme(tmp_path, monkeypatch):
    import asyncio

    from tests.test_dashboard_screen import make_run
    from tui_lora.dashboard.screen import DashboardApp
    from tui_lora.user_state import UserState

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    state = UserState.load()
    state.theme = "light"
    state.save()
    run = make_run(tmp_path, "normal_run")

    async def drive():
        app = DashboardApp(run.path, mouse=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            return app.theme, set(app.available_themes)

    theme, available = asyncio.run(drive())
    assert theme == "light" and available == set(THEMES)
