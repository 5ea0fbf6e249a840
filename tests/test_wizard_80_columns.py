"""The wizard at 80x24, the SSH minimum: nothing a user needs is cut off."""

from __future__ import annotations

from textual.widgets import TextArea

from engine.config import SETTINGS
from tui_lora.app import WizardApp
from tui_lora.draft import Draft
from tui_lora.screens.form import FormScreen
from tui_lora.widgets.help_panel import HelpPanel, help_content
from tui_lora.widgets.step_bar import StepBar

from . import wizard_support
from .wizard_support import open_step, reach, run_async, settle

dataset = wizard_support.dataset
wizard_env = wizard_support.wizard_env


def draft(**values) -> Draft:
    return Draft({"model.quick_pick": "builtin-tiny-sd1", "folders.images": "dataset/images", **values})


@run_async
async def test_unsaved_stays_in_the_header_at_80_columns_even_with_a_long_file_name(dataset, tmp_path):
    path = tmp_path / "my_character_lora_for_the_spring_collection_v2.yaml"
    app = WizardApp(draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.draft.path = path
        for step in (1, 3):
            await open_step(pilot, step)
            app.draft.set("network.rank", str(step))
            app.screen.refresh_bar()
            await pilot.pause()
            header = app.screen.query_one(StepBar).visual.plain
            assert header.endswith("• unsaved") and len(header) <= 78, header
            assert "…" in header and header.split("  ")[-1].startswith("my_ch")
            # the file name gives way before the step names (issue 26: `1 Model › 2 › 3 › 4`)
            assert "Folders" in header and "Parameters" in header and "Review" in header, header


def test_help_of_optional_paths_and_texts_no_longer_reads_allowed_or_empty():
    for setting in SETTINGS:
        text = help_content(setting).plain
        assert "Allowed: (or empty)" not in text, setting.key
    assert "May be left empty." in help_content(SETTINGS["folders.regularization"]).plain


@run_async
async def test_focused_explanation_reads_in_full_at_80x24_and_ctrl_down_scrolls_a_longer_one(dataset):
    app = WizardApp(draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_step(pilot, 3)
        screen = app.screen
        assert isinstance(screen, FormScreen)
        panel = screen.query_one(HelpPanel)
        longest = None
        for key in ("network.type", "optimizer.scheduler", "optimizer.name"):
            await reach(pilot, key, tab=False)
            await pilot.pause(0.1)
            assert screen.fields()[key].region.height and screen.fields()[key].region.y < panel.region.y, key
            if panel.max_scroll_y == 0:
                assert "Run file: " + key in panel.text  # the whole explanation, to its last fact
            else:
                longest = key
        if longest is not None:  # taller than a third of the screen: the keys reach its end
            await reach(pilot, longest, tab=False)
            for _ in range(4):
                await pilot.press("ctrl+down")
                await pilot.pause(0.1)
            assert panel.scroll_y == panel.max_scroll_y > 0
            await pilot.press("ctrl+up")
            await pilot.pause(0.1)
            assert panel.scroll_y < panel.max_scroll_y


@run_async
async def test_the_form_keeps_most_rows_at_80x24(dataset):
    """The help panel takes at most a third of the screen: at least five fields stay in view."""
    app = WizardApp(draft())
    async with app.run_test(size=(80, 24)) as pilot:
        for step in (2, 3):
            await open_step(pilot, step)
            panel = app.screen.query_one(HelpPanel)
            assert panel.region.height <= 8, panel.region
            form = app.screen.query_one("#form" if step == 2 else "TabbedContent")
            assert form.region.height >= 11, form.region


@run_async
async def test_sample_prompt_placeholder_fits_its_box_at_80_columns(dataset):
    app = WizardApp(draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_step(pilot, 3)
        field = await reach(pilot, "sampling.prompts", tab=False)
        await pilot.pause(0.2)
        area = field.control
        assert isinstance(area, TextArea)
        assert len(area.placeholder) <= area.content_size.width, (area.placeholder, area.content_size.width)
