"""The dataset doctor on the Folders screen: findings listed at 80x24, progress messages from the
worker, and Next refused only for what would stop training."""

from __future__ import annotations

from textual.widgets import ProgressBar, Static

from tui_lora.app import WizardApp
from tui_lora.draft import Draft
from tui_lora.screens.folders import FoldersScreen
from tui_lora.screens.modals import MessageScreen
from tui_lora.screens.parameters import ParametersScreen
from tui_lora.widgets.doctor_panel import DoctorPanel

from . import wizard_support
from .doctor_support import concept
from .wizard_support import open_step, run_async, set_text, settle

wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests


def _messy(root):
    folder = concept(root, "10_ohwx cat", 3, captions="ohwx, cat")
    (folder / "img2.txt").unlink()  # a warning: one image without a caption
    concept(root, "5 dog", 1, seed=2)  # a warning: a typo-like folder name
    (folder / "broken.png").write_bytes(b"")  # an error: training refuses zero-byte images
    return folder


def _panel_text(app) -> str:
    panel = app.screen.query_one(DoctorPanel)
    return "\n".join(str(s.render()) for s in panel.query(Static))


@run_async
async def test_folders_screen_lists_findings_and_blocks_next_only_on_errors(wizard_env):
    folder = _messy(wizard_env / "img")
    app = WizardApp(Draft({"model.quick_pick": "builtin-tiny-sd1", "folders.images": "img"}))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_step(pilot, 2)
        await settle(pilot)
        text = _panel_text(app)
        assert "1 error(s)" in text and "training would refuse to start" in text
        assert "is empty (0 bytes) (broken.png)" in text and "→ copy them again" in text
        assert "rename it `5_dog`" in text
        bar = app.screen.query_one(DoctorPanel).query_one(ProgressBar)  # fed by the worker's messages
        assert (bar.total, bar.progress, bar.display) == (4, 4, False)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, FoldersScreen)  # the zero-byte image stops training

        app.screen.query_one(DoctorPanel).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MessageScreen)
        await pilot.press("escape")
        await pilot.pause()

        (folder / "broken.png").unlink()
        await set_text(pilot, "folders.images", "img/", tab=False)  # the folder is checked again
        await settle(pilot)
        text = _panel_text(app)
        assert "0 error(s)" in text and "training can start" in text and "rename it `5_dog`" in text
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, ParametersScreen)  # warnings do not block
