"""TensorBoard logging through accelerate's trackers, and the W&B extra's install hint."""

from __future__ import annotations

import importlib.util

import pytest

from engine.problems import ProblemError
from engine.train.entry import run_config


def _read_events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = [p for p in folder.iterdir() if p.is_dir()]  # one folder per run
    accumulator = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return run, accumulator


@pytest.mark.slow
def test_logging_folder_holds_loss_lr_max_norm_and_sample_images(tiny_config, tmp_path):
    logs = tmp_path / "logs"
    cfg = tiny_config(folders__logging=str(logs), training__epochs=2, optimizer__learning_rate=2e-3,
                      optimizer__text_encoder_lr=5e-4, network__scale_weight_norms=1.0,
                      sampling__prompts=["red thing --s 2"], sampling__every_n_epochs=1)
    events = []
    result = run_config(cfg, on_event=events.append)
    assert result.status == "completed", result.message
    run, tb = _read_events(logs)
    assert run.name.startswith("test_lora-")
    tags = tb.Tags()
    assert {"loss/current", "loss/average", "lr/unet", "lr/text_encoder", "max_norm/keys_scaled",
            "max_norm/mean", "max_norm/max"} <= set(tags["scalars"])
    losses = {e["step"]: e["loss"] for e in events if e["type"] == "step"}
    logged = {s.step: s.value for s in tb.Scalars("loss/current")}
    assert logged.keys() == losses.keys() == {1, 2, 3, 4}
    assert all(logged[step] == pytest.approx(losses[step], rel=1e-6) for step in losses)
    assert [s.value for s in tb.Scalars("lr/unet")] == pytest.approx([2e-3] * 4)
    assert [s.value for s in tb.Scalars("lr/text_encoder")] == pytest.approx([5e-4] * 4)
    images = tb.Images("sample/00")
    assert [(i.step, i.width, i.height) for i in images] == [(2, 64, 64), (4, 64, 64)]


@pytest.mark.slow
def test_no_logging_folder_means_no_trackers(tiny_config, tmp_path):
    result = run_config(tiny_config())
    assert result.status == "completed" and result.trainer.accelerator.trackers == []
    assert not any(tmp_path.rglob("events.out.tfevents*"))


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
@pytest.mark.parametrize("choice", ["wandb", "all"])
def test_wandb_without_the_package_stops_the_run_with_the_install_hint(tiny_config, tmp_path, choice):
    cfg = tiny_config(folders__logging=str(tmp_path / "logs"), logging__log_with=choice)
    with pytest.raises(ProblemError) as caught:
        run_config(cfg)
    (problem,) = [p for p in caught.value.errors if p.field == "logging.log_with"]
    assert "wandb" in problem.message and "pip install 'tui-lora[wandb]'" in problem.hint
    assert not (tmp_path / "out").exists() and not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_log_prefix_goes_in_front_of_the_run_folder_name(tiny_config, tmp_path):
    """sd-scripts' --log_prefix: the text starts the log folder's name."""
    logs = tmp_path / "logs"
    result = run_config(tiny_config(folders__logging=str(logs), logging__log_prefix="xl-loha_", training__max_train_steps=1))
    assert result.status == "completed", result.message
    (run,) = [p for p in logs.iterdir() if p.is_dir()]
    assert run.name.startswith("xl-loha_test_lora-")


def test_a_log_prefix_that_is_not_a_plain_folder_name_is_refused(tmp_path):
    from .helpers import errors_of

    errors = errors_of(tmp_path, "folders: {images: imgs, logging: logs}\nlogging: {log_prefix: ../up}\n")
    assert any(e.startswith("logging.log_prefix") for e in errors)
