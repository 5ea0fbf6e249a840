"""The Folders step's per-folder table: the scan fills it, Enter opens a folder's form, the form's
values reach the draft (and the scan), bad values are refused in the form; keyboard only, 80×24."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from engine.config import RunConfig, load_run_file
from tests import wizard_support
from tests.wizard_support import run_async, settle, type_text
from tui_lora.app import WizardApp
from tui_lora.draft import Draft
from tui_lora.screens.subset_form import SubsetFormScreen
from tui_lora.widgets.subsets_table import SubsetsTable

wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests


def _folders(root: Path) -> Path:
    images = root / "images"
    for name, count in (("5_alpha", 2), ("3_beta", 1)):
        (images / name).mkdir(parents=True)
        for index in range(count):
            Image.new("RGB", (64, 64), (100, 20 * index, 50)).save(images / name / f"i{index}.png")
            (images / name / f"i{index}.caption").write_text(f"{name[2:]}, tag")
    return images


async def _open_beta_form(pilot, app) -> SubsetFormScreen:
    app.screen.focus_field("dataset.subsets")
    await pilot.pause()
    table = app.screen.query_one(SubsetsTable)
    assert app.focused is table
    while table.folder_rows()[table.cursor_row][0] != "3_beta":
        await pilot.press("down")
    await pilot.press("enter")
    await pilot.pause()
    assert isinstance(app.screen, SubsetFormScreen)
    return app.screen


@run_async
async def test_a_folders_own_values_are_edited_by_keys_and_reach_the_run(wizard_env):
    images = _folders(wizard_env)
    draft = Draft.from_config(RunConfig({"folders.images": str(images), "model.quick_pick": "builtin-tiny-sd1"}),
                              path=wizard_env / "run.yaml")
    app = WizardApp(draft)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_step(2)
        await settle(pilot)
        table = app.screen.query_one(SubsetsTable)
        assert [(name, entry) for name, entry, _ in table.folder_rows()] == [("3_beta", {}), ("5_alpha", {})]
        form = await _open_beta_form(pilot, app)
        for control in form.query("Input, Select"):  # the whole form is on an 80×24 screen
            region = control.region
            assert region.height >= 1 and region.bottom <= 24 and region.right <= 80, control.id
        await type_text(pilot, "4")  # repeats (the first field has focus)
        await pilot.press("tab", "tab")
        await type_text(pilot, ".txt")  # caption extension: the .caption files are then not read
        await pilot.press("tab", "tab")
        await type_text(pilot, "1")  # keep tokens
        await pilot.press("tab", "enter", "down", "enter")  # shuffle captions: on
        await pilot.press("shift+tab", "enter")  # Enter in a text field applies
        await settle(pilot)
        assert not isinstance(app.screen, SubsetFormScreen)
        expected = {"image_dir": "3_beta", "num_repeats": 4, "caption_extension": ".txt", "keep_tokens": 1,
                    "shuffle_caption": True}
        assert app.draft.typed()["dataset.subsets"] == [expected]
        beta = next(row for row in table.folder_rows() if row[0] == "3_beta")
        assert beta[2].repeats == 4 and beta[2].captions_missing == 1  # the scan re-ran with the folder's values
        assert "rep 4" in str(table.get_row("3_beta")[-1])
        # Delete clears the folder's values again
        await pilot.press("delete")
        await settle(pilot)
        assert app.draft.typed()["dataset.subsets"] == []
        await pilot.press("enter")
        await pilot.pause()
        await type_text(pilot, "2")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("ctrl+s")  # save the run file
        await pilot.pause()
        assert not app.draft.dirty
    loaded, _ = load_run_file(wizard_env / "run.yaml")
    assert loaded.dataset.subsets == [{"image_dir": "3_beta", "num_repeats": 2}]


@run_async
async def test_the_form_refuses_a_bad_value_and_applies_nothing(wizard_env):
    images = _folders(wizard_env)
    draft = Draft.from_config(RunConfig({"folders.images": str(images), "model.quick_pick": "builtin-tiny-sd1"}))
    app = WizardApp(draft)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_step(2)
        await settle(pilot)
        form = await _open_beta_form(pilot, app)
        await pilot.press("tab", "tab", "tab", "tab")
        await type_text(pilot, "x")  # keep tokens
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is form
        assert "keep_tokens: 'x' is not a whole number" in str(form.query_one("#subset-error").render())
        await pilot.press("escape")
        await settle(pilot)
        assert app.draft.typed()["dataset.subsets"] == []
