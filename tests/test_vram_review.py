"""The Review screen's memory verdict follows the settings, and one key applies a way to fit."""

from __future__ import annotations

from tui_lora.app import WizardApp
from tui_lora.draft import Draft
from tui_lora.widgets.vram_panel import VramPanel

from . import wizard_support
from .wizard_support import open_step, run_async, settle

dataset = wizard_support.dataset  # a fixture shared by the wizard's tests
wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests


def _panel_text(app) -> str:
    return str(app.screen.query_one(VramPanel).render())


@run_async
async def test_review_says_whether_the_run_fits_and_a_number_key_applies_a_fix(dataset, wizard_env, monkeypatch):
    monkeypatch.setattr("engine.vram.gpu.gpu_memory_bytes", lambda index=0: None)  # no NVML: use the setting
    draft = Draft({"model.quick_pick": "sdxl-base", "folders.images": "dataset/images",
                   "training.max_resolution": "1024, 1024", "hardware.vram_gb": "12",
                   "optimizer.text_encoder_lr": "0"})
    app = WizardApp(draft)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await open_step(pilot, 4)
        text = _panel_text(app)
        assert "does not fit this 12 GiB GPU" in text
        assert "1 turn on gradient checkpointing" in text
        await pilot.press("1")
        await pilot.pause()
        assert app.draft.typed()["training.gradient_checkpointing"] is True
        assert "fits this 12 GiB GPU" in _panel_text(app) and "does not fit" not in _panel_text(app)
