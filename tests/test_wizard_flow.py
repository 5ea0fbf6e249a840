"""A run file made from scratch with key presses alone, through every screen, saved and compared."""

from __future__ import annotations

from engine.config import RunConfig, dump_run_yaml, load_run_file
from tui_lora.app import WizardApp
from tui_lora.screens.folders import FoldersScreen
from tui_lora.screens.modals import PathPromptScreen
from tui_lora.screens.model import ModelScreen
from tui_lora.screens.parameters import ParametersScreen
from tui_lora.screens.review import ReviewScreen
from tui_lora.screens.start import StartScreen

from . import wizard_support
from .wizard_support import choose, run_async, set_text, settle, toggle, type_text

dataset = wizard_support.dataset  # a fixture shared by the wizard's tests
wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests


@run_async
async def test_every_screen_filled_by_keys_saves_the_expected_yaml(dataset, wizard_env):
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, StartScreen)
        await pilot.press("n")
        await settle(pilot)

        assert isinstance(app.screen, ModelScreen)
        await choose(pilot, "model.quick_pick", "builtin-tiny-sd1")
        assert app.draft.values["model.family"] == "sd1"  # the pick set the family
        await pilot.press("ctrl+n")
        await settle(pilot)

        assert isinstance(app.screen, FoldersScreen)
        await set_text(pilot, "folders.images", "dataset/images")
        await set_text(pilot, "folders.regularization", "dataset/regularization")
        await set_text(pilot, "folders.output", "out")
        await set_text(pilot, "folders.output_name", "mychar_v1")
        await pilot.press("ctrl+n")
        await settle(pilot)

        assert isinstance(app.screen, ParametersScreen)
        await choose(pilot, "network.type", "locon")
        await set_text(pilot, "network.rank", "16")
        await set_text(pilot, "network.alpha", "8")
        await set_text(pilot, "network.conv_rank", "4")
        await set_text(pilot, "training.batch_size", "2")
        await set_text(pilot, "training.epochs", "3")
        await choose(pilot, "optimizer.name", "AdamW")
        await set_text(pilot, "optimizer.learning_rate", "2e-4")
        await set_text(pilot, "optimizer.text_encoder_lr", "")
        await choose(pilot, "optimizer.scheduler", "cosine_with_restarts")
        await set_text(pilot, "optimizer.num_cycles", "3")
        await set_text(pilot, "optimizer.extra_args", "weight_decay=0.01")
        await set_text(pilot, "training.seed", "7")
        await pilot.press("ctrl+t")  # Advanced tab
        await pilot.pause()
        await set_text(pilot, "network.dropout", "0.1")
        await toggle(pilot, "training.gradient_checkpointing", True)
        await set_text(pilot, "sampling.prompts", "mychar smiling --n blurry --d 3\na plain prompt")
        await pilot.press("ctrl+n")
        await settle(pilot)

        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, PathPromptScreen)
        await pilot.press("end", "ctrl+u")
        await type_text(pilot, "runs/mychar.yaml")
        await pilot.press("enter")
        await pilot.pause()
        assert not app.draft.dirty

    saved = (wizard_env / "runs" / "mychar.yaml").read_text()
    expected = RunConfig({
        "model.quick_pick": "builtin-tiny-sd1",
        "folders.images": "dataset/images",
        "folders.regularization": "dataset/regularization",
        "folders.output": "out",
        "folders.output_name": "mychar_v1",
        "network.type": "locon", "network.rank": 16, "network.alpha": 8.0, "network.conv_rank": 4,
        "training.batch_size": 2, "training.epochs": 3,
        "optimizer.name": "AdamW", "optimizer.learning_rate": 2e-4, "optimizer.text_encoder_lr": None,
        "optimizer.scheduler": "cosine_with_restarts", "optimizer.num_cycles": 3,
        "optimizer.extra_args": ["weight_decay=0.01"], "training.seed": 7,
        "network.dropout": 0.1, "training.gradient_checkpointing": True,
        "sampling.prompts": [{"prompt": "mychar smiling", "negative": "blurry", "seed": 3}, "a plain prompt"],
    })
    assert saved == dump_run_yaml(expected)
    loaded, _ = load_run_file(wizard_env / "runs" / "mychar.yaml")
    assert loaded == expected


@run_async
async def test_edit_opens_a_run_file_and_saves_it_back_without_asking(dataset, wizard_env):
    images, _ = dataset
    run_file = wizard_env / "run.yaml"
    from engine.config import save_run_file
    from tui_lora.sources import load_draft

    save_run_file(RunConfig({"folders.images": str(images), "model.quick_pick": "builtin-tiny-sd1"}), run_file)
    app = WizardApp(load_draft(run_file))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ModelScreen)
        await pilot.press("ctrl+n")
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        await set_text(pilot, "network.rank", "32")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not app.draft.dirty  # written straight back: it is the file being edited
    loaded, _ = load_run_file(run_file)
    assert loaded.network.rank == 32
    assert str(run_file) in app.user_state.recent
