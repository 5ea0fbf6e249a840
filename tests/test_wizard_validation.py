"""Validation at the field: errors are shown where they are and block Next and Save; warnings do not;
fields that do not apply are disabled with their reason."""

from __future__ import annotations

from tui_lora.app import WizardApp
from tui_lora.draft import Draft
from tui_lora.screens.folders import FoldersScreen
from tui_lora.screens.modals import PathPromptScreen
from tui_lora.screens.model import ModelScreen
from tui_lora.screens.parameters import ParametersScreen
from tui_lora.screens.review import ReviewScreen

from . import wizard_support
from .wizard_support import choose, open_step, run_async, set_text, settle

dataset = wizard_support.dataset  # a fixture shared by the wizard's tests
wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests


def ready_draft(**values) -> Draft:
    base = {"model.quick_pick": "builtin-tiny-sd1", "folders.images": "dataset/images"}
    return Draft({**base, **values})


async def open_parameters(pilot) -> None:
    await open_step(pilot, 3)
    assert isinstance(pilot.app.screen, ParametersScreen)


@run_async
async def test_invalid_number_is_marked_at_its_field_and_blocks_next_until_fixed(dataset):
    app = WizardApp(ready_draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_parameters(pilot)
        await set_text(pilot, "network.rank", "abc", tab=False)
        field = app.screen.fields()["network.rank"]
        assert field.message_kind == "error"
        assert "'abc' is not a whole number" in field.message_text
        assert field.has_class("-error")
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, ParametersScreen)  # blocked
        assert app.screen.focused is field.control  # and taken to the field

        await set_text(pilot, "network.rank", "2000", tab=False)
        assert "out of range" in field.message_text
        await set_text(pilot, "network.rank", "16", tab=False)
        assert field.message_kind == ""
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, ReviewScreen)


@run_async
async def test_warning_is_shown_but_does_not_block_next(dataset):
    app = WizardApp(ready_draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_parameters(pilot)
        await set_text(pilot, "network.alpha", "32", tab=False)  # above rank 8
        field = app.screen.fields()["network.alpha"]
        assert field.message_kind == "warning"
        assert "above rank" in field.message_text
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, ReviewScreen)


@run_async
async def test_missing_image_folder_blocks_next_on_folders(wizard_env):
    app = WizardApp(Draft({"model.quick_pick": "builtin-tiny-sd1"}))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, FoldersScreen)
        await set_text(pilot, "folders.images", "no/such/folder", tab=False)
        field = app.screen.fields()["folders.images"]
        assert field.message_kind == "error" and "does not exist" in field.message_text
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, FoldersScreen)


@run_async
async def test_save_is_blocked_while_any_field_has_an_error(dataset):
    app = WizardApp(ready_draft(**{"training.epochs": "zero"}))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, PathPromptScreen)
        assert app.draft.path is None
        assert not list(dataset[0].parent.parent.glob("*.yaml"))


@run_async
async def test_fields_that_do_not_apply_are_disabled_with_the_reason(dataset):
    app = WizardApp(ready_draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_parameters(pilot)
        fields = app.screen.fields()
        conv = fields["network.conv_rank"]
        assert conv.control.disabled and conv.message_kind == "disabled"
        assert "plain LoRA" in conv.message_text
        assert fields["optimizer.num_cycles"].control.disabled

        await choose(pilot, "network.type", "locon", tab=False)
        assert not conv.control.disabled

        await choose(pilot, "optimizer.scheduler", "constant", tab=False)
        warmup = fields["optimizer.warmup_percent"]
        assert warmup.control.disabled and "no warmup" in warmup.message_text
        await choose(pilot, "optimizer.scheduler", "cosine_with_restarts", tab=False)
        assert not fields["optimizer.num_cycles"].control.disabled


@run_async
async def test_empty_learning_rates_say_they_inherit_the_learning_rate(dataset):
    app = WizardApp(ready_draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_parameters(pilot)
        unet = app.screen.fields()["optimizer.unet_lr"]
        assert unet.control.value == ""
        assert unet.control.placeholder == "empty: uses learning rate (0.0001)"
        await set_text(pilot, "optimizer.learning_rate", "0.0003", tab=False)
        assert unet.control.placeholder == "empty: uses learning rate (0.0003)"


@run_async
async def test_quick_pick_sets_family_flags_and_locks_them(wizard_env):
    app = WizardApp(Draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ModelScreen)
        await choose(pilot, "model.quick_pick", "sdxl-base", tab=False)
        fields = app.screen.fields()
        assert fields["model.family"].control.value == "sdxl"
        assert fields["model.family"].control.disabled
        assert app.screen.fields()["model.path"].control.placeholder == "auto: stabilityai/stable-diffusion-xl-base-1.0"
        await choose(pilot, "model.quick_pick", "custom", tab=False)
        assert not fields["model.family"].control.disabled
        assert fields["model.path"].message_kind == "error"  # a custom model needs a path
