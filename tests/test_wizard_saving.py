"""Never losing work: replacing a run file asks first, an existing LoRA gets a free versioned name,
quitting with unsaved changes asks (Enter confirms); Save & Train hands the saved file over."""

from __future__ import annotations

from pathlib import Path

from tui_lora.app import WizardApp
from tui_lora.draft import Draft
from tui_lora.screens.folders import FoldersScreen
from tui_lora.screens.modals import ConfirmScreen, PathPromptScreen, QuitUnsavedScreen
from tui_lora.screens.review import ReviewScreen

from . import wizard_support
from .wizard_support import open_step, run_async, set_text, settle, type_text

dataset = wizard_support.dataset  # a fixture shared by the wizard's tests
wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests


def ready_draft(**values) -> Draft:
    return Draft({"model.quick_pick": "builtin-tiny-sd1", "folders.images": "dataset/images", **values})


async def save_as(pilot, name: str) -> None:
    await pilot.press("ctrl+s")
    assert isinstance(pilot.app.screen, PathPromptScreen)
    await pilot.press("end", "ctrl+u")
    await type_text(pilot, name)
    await pilot.press("enter")


@run_async
async def test_saving_over_an_existing_run_file_asks_first(dataset, wizard_env):
    existing = wizard_env / "run.yaml"
    existing.write_text("# someone's earlier run\n")
    app = WizardApp(ready_draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await save_as(pilot, "run.yaml")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")  # keep the old file
        assert existing.read_text() == "# someone's earlier run\n"
        assert app.draft.path is None

        await save_as(pilot, "run.yaml")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")  # replace it
        assert "folders:" in existing.read_text()
        assert app.draft.path == existing.resolve()

        await pilot.press("ctrl+s")  # the same file again: no question this time
        assert not isinstance(app.screen, ConfirmScreen)


@run_async
async def test_existing_lora_offers_the_next_free_versioned_name(dataset, wizard_env):
    output = wizard_env / "output"
    output.mkdir()
    (output / "mychar.safetensors").write_bytes(b"")
    (output / "mychar_v2.safetensors").write_bytes(b"")
    app = WizardApp(ready_draft(**{"folders.output": "output", "folders.output_name": "mychar"}))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_step(pilot, 2)
        assert isinstance(app.screen, FoldersScreen)
        field = app.screen.fields()["folders.output_name"]
        assert field.message_kind == "warning" and "already exists" in field.message_text
        offer = app.screen.query_one("#use-free-name")
        assert offer.display and "mychar_v3" in str(offer.label)
        await pilot.press("f4")
        assert app.draft.values["folders.output_name"] == "mychar_v3"
        assert field.control.value == "mychar_v3"
        assert field.message_kind == "" and not offer.display


@run_async
async def test_quit_with_unsaved_changes_offers_save_quit_and_cancel(dataset):
    app = WizardApp(ready_draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_step(pilot, 3)
        await set_text(pilot, "network.rank", "4", tab=False)
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, QuitUnsavedScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, QuitUnsavedScreen) and app.is_running
        await pilot.press("ctrl+q", "tab", "tab", "enter")  # Enter on the Cancel button cancels
        assert not isinstance(app.screen, QuitUnsavedScreen) and app.is_running
        await pilot.press("ctrl+q", "q")
        await pilot.pause()
        assert not app.is_running
    assert app.return_code == 0


@run_async
async def test_save_in_the_quit_dialog_writes_the_run_file_then_quits(dataset):
    app = WizardApp(ready_draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_step(pilot, 3)
        await set_text(pilot, "network.rank", "4", tab=False)
        await pilot.press("ctrl+q", "s")
        assert isinstance(app.screen, PathPromptScreen)  # never saved: where to?
        await pilot.press("enter")
        await pilot.pause()
        assert not app.is_running
    from engine.config import load_run_file

    cfg, _ = load_run_file(Path.cwd() / "my_lora.yaml")
    assert cfg.network.rank == 4


@run_async
async def test_quit_without_changes_does_not_ask(dataset):
    app = WizardApp(ready_draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running


@run_async
async def test_demo_save_and_train_hands_the_saved_file_to_the_launcher(wizard_env):
    launched: list[Path] = []
    app = WizardApp(train_launcher=lambda _app, path: launched.append(path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, ReviewScreen)
        assert app.draft.values["model.quick_pick"] == "builtin-tiny-sd1"
        assert app.draft.values["optimizer.name"] == "AdamW"
        await pilot.press("f5")
        assert isinstance(app.screen, PathPromptScreen)  # suggests demo.yaml in the data folder
        await pilot.press("enter")
        await pilot.pause()
    demo_file = wizard_env / "data" / "tui-lora" / "demo" / "demo.yaml"
    assert launched == [demo_file]
    assert demo_file.is_file()


@run_async
async def test_save_and_train_without_a_launcher_is_disabled_with_a_reason(dataset):
    app = WizardApp(ready_draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_step(pilot, 4)
        button = app.screen.query_one("#save-train")
        assert button.disabled
        assert "tui-lora train" in str(app.screen.query_one("#train-note").visual)
        await pilot.press("f5")
        assert not isinstance(app.screen, PathPromptScreen)
