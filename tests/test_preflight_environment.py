"""validate and the Review screen catch, before anything loads, what training would hit here:
xformers chosen but not installed (an error, not a silent switch to sdpa), and a hub model that
needs a download the machine cannot make."""

from __future__ import annotations

import importlib.util

import pytest

from engine.config import save_run_file
from engine.train import preflight
from tui_lora.app import WizardApp
from tui_lora.cli import main
from tui_lora.draft import Draft

from . import wizard_support
from .wizard_support import open_step, run_async

dataset = wizard_support.dataset
wizard_env = wizard_support.wizard_env

needs_no_xformers = pytest.mark.skipif(importlib.util.find_spec("xformers") is not None, reason="xformers installed")


@needs_no_xformers
def test_validate_refuses_xformers_when_it_is_not_installed(tiny_config, tmp_path, capsys):
    run_file = save_run_file(tiny_config(training__attention="xformers"), tmp_path / "run.yaml")
    assert main(["validate", str(run_file)]) == 2
    err = capsys.readouterr().err
    assert "error: training.attention: xformers is chosen but not installed" in err
    assert "training.attention: sdpa" in err  # the fix is named


def test_validate_refuses_a_hub_model_missing_from_the_cache_when_hf_hub_offline_is_set(
        tiny_config, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))  # nothing cached
    cfg = tiny_config().replace(model__quick_pick="custom", model__path="someone/not-cached-model")
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    assert main(["validate", str(run_file)]) == 2
    err = capsys.readouterr().err
    assert "error: model.path: someone/not-cached-model is not in the local Hugging Face cache" in err
    assert "offline" in err and "hf download someone/not-cached-model" in err


def test_an_unreachable_hub_is_a_warning_when_not_declared_offline(tiny_config, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(preflight, "HUB_HOST", ("127.0.0.1", 9))  # a port nothing listens on: unreachable
    cfg = tiny_config().replace(model__quick_pick="custom", model__path="someone/not-cached-model")
    (problem,) = preflight.download_problems(cfg)
    assert not problem.is_error and "cannot be reached" in problem.message


@needs_no_xformers
@run_async
async def test_review_lists_the_xformers_error_and_save_and_train_refuses(dataset):
    images, _ = dataset
    draft = Draft({"model.quick_pick": "builtin-tiny-sd1", "folders.images": str(images),
                   "folders.output_name": "xf", "training.attention": "xformers"})
    launched = []
    app = WizardApp(draft, train_launcher=lambda path: launched.append(path))
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await open_step(pilot, 4)
        problems = str(app.screen.query_one("#review-problems").render())
        assert "training.attention" in problems and "xformers is chosen but not installed" in problems
        app.screen.action_save_and_train()
        await pilot.pause(0.2)
    assert launched == []
