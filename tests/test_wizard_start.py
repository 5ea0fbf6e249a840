"""The start screen's ways in: open a run file, import a Kohya SS config, go back and continue;
and F1 help, all by keys."""

from __future__ import annotations

import json

from engine.config import RunConfig, save_run_file
from tui_lora.app import WizardApp
from tui_lora.screens.modals import MessageScreen, PathPromptScreen, QuitUnsavedScreen
from tui_lora.screens.model import ModelScreen
from tui_lora.screens.start import StartScreen

from . import wizard_support
from .wizard_support import run_async, settle, type_text

wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests


@run_async
async def test_open_asks_for_a_path_refuses_a_missing_file_and_opens_a_run_file(wizard_env):
    save_run_file(RunConfig({"folders.images": "imgs", "training.epochs": 6}), wizard_env / "mine.yaml")
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("o")
        assert isinstance(app.screen, PathPromptScreen)
        await type_text(pilot, "nothere.yaml")
        await pilot.press("enter")
        assert isinstance(app.screen, PathPromptScreen)  # refused, with the reason in the dialog
        assert "is not a file" in str(app.screen.query_one("#path-error").visual)
        await pilot.press("ctrl+u")
        await type_text(pilot, "mine.yaml")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ModelScreen)
        assert app.draft.values["training.epochs"] == "6"
        assert app.draft.path == (wizard_env / "mine.yaml").resolve()


@run_async
async def test_kohya_import_opens_the_converted_run_and_lists_the_notes(wizard_env):
    kohya = wizard_env / "kohya.json"
    kohya.write_text(json.dumps({"LoRA_type": "Kohya LoCon", "network_dim": "16", "conv_dim": "4",
                                 "train_data_dir": "imgs", "epoch": "4", "made_up_key": "x"}))
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i")
        await type_text(pilot, "kohya.json")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MessageScreen)  # the importer's notes come first
        assert "made_up_key" in str(app.screen.body)
        await pilot.press("enter")
        assert isinstance(app.screen, ModelScreen)
        values = app.draft.values
        assert (values["network.type"], values["network.rank"], values["training.epochs"]) == ("locon", "16", "4")
        assert app.draft.path is None and app.draft.suggested_path == kohya.with_suffix(".yaml")
        assert app.draft.dirty  # only in memory: quitting now must ask, or the import is lost
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, QuitUnsavedScreen)


@run_async
async def test_kohya_import_reads_an_sd_scripts_command_line_file(wizard_env):
    command = wizard_env / "flux.sh"
    command.write_text("accelerate launch flux_train_network.py \\\n  --pretrained_model_name_or_path /m/flux1-dev.safetensors "
                       "--clip_l /m/clip_l.safetensors --t5xxl /m/t5xxl.safetensors --ae /m/ae.safetensors \\\n"
                       "  --network_module networks.lora_flux --network_dim 16 --max_train_epochs 5 --train_data_dir imgs\n")
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i")
        await type_text(pilot, "flux.sh")
        await pilot.press("enter")
        await settle(pilot)
        if isinstance(app.screen, MessageScreen):  # the importer's notes, when there are any
            await pilot.press("enter")
        assert isinstance(app.screen, ModelScreen)
        values = app.draft.values
        assert (values["model.family"], values["model.clip_l"], values["network.rank"], values["training.epochs"]) == (
            "flux1", "/m/clip_l.safetensors", "16", "5")


@run_async
async def test_q_and_escape_on_the_start_screen_quit_asking_first_when_work_is_unsaved(wizard_env):
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("escape")
        await pilot.pause()
        assert not app.is_running  # nothing started: Esc simply leaves
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await settle(pilot)
        app.draft.set("network.rank", "4")
        await pilot.press("escape")  # back to the start screen
        assert isinstance(app.screen, StartScreen)
        await pilot.press("q")
        assert isinstance(app.screen, QuitUnsavedScreen) and app.is_running
        await pilot.press("escape")
        assert isinstance(app.screen, StartScreen)


@run_async
async def test_escape_goes_back_to_start_where_the_run_can_be_continued(wizard_env):
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, StartScreen)
        await pilot.press("enter")  # the first entry is now "Continue the current run"
        await settle(pilot)
        assert isinstance(app.screen, ModelScreen)


@run_async
async def test_f1_opens_the_focused_fields_full_explanation(wizard_env):
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, MessageScreen)
        body = " ".join(str(app.screen.body).split())
        assert "Choose the model your LoRA will be trained against" in body
        assert "Ctrl+S save" in body
        await pilot.press("escape")
        assert isinstance(app.screen, ModelScreen)
