"""docs/settings.md is the schema written out: every setting, and current."""

from __future__ import annotations

from pathlib import Path

from engine.config import SETTINGS
from engine.config.reference import COMMAND, render_reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_settings_reference_is_current():
    assert DOC.read_text(encoding="utf-8") == render_reference(), (
        f"docs/settings.md does not match the schema; regenerate it with `{COMMAND}` and commit it")


def test_reference_has_a_row_and_an_explanation_for_every_setting():
    text = render_reference()
    for setting in SETTINGS:
        assert f"| `{setting.key}` |" in text and f"**`{setting.key}`** — {setting.label}." in text, setting.key
        if setting.kohya:
            assert f"| `{setting.kohya}` |" in text, setting.key


def test_a_pipe_in_an_explanation_does_not_break_the_table():
    from engine.config.reference import _cell

    assert _cell("a | b\n  c") == "a \\| b c"
