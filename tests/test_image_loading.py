"""Images decoded in worker threads (max_data_loader_n_workers, persistent_data_loader_workers; issue 17).

sd-scripts hands image loading to torch DataLoader workers; here worker threads decode and resize
ahead of the loop, and the result must be exactly what loading in the training thread gives.
"""

from __future__ import annotations

import threading

import pytest

from engine.config import dump_run_yaml

from .helpers import errors_of, load_text


@pytest.fixture
def decode_threads(monkeypatch):
    """Names of the threads that decoded each image."""
    import engine.train.image_loader as image_loader

    names: list[str] = []
    original = image_loader.decode_resized

    def spy(*args, **kwargs):
        names.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(image_loader, "decode_resized", spy)
    return names


def _train(tiny_config, name, **settings):
    from engine.train.entry import run_config

    losses: list[float] = []
    cfg = tiny_config(folders__output_name=name, training__batch_size=2, training__seed=11, **settings)
    result = run_config(cfg, on_event=lambda e: losses.append(e["loss"]) if e["type"] == "step" else None)
    assert result.status == "completed", (result.message, result.hint)
    return result, losses


@pytest.mark.slow
def test_workers_decode_training_images_in_threads_and_train_exactly_as_without(tiny_config, decode_threads):
    from safetensors.torch import load_file

    common = dict(training__cache_latents=False, augment__random_crop=True, augment__flip=True,
                  training__max_train_steps=3)
    plain, plain_losses = _train(tiny_config, "plain", training__max_data_loader_n_workers=0, **common)
    assert decode_threads and all(name == threading.main_thread().name for name in decode_threads)
    decode_threads.clear()
    threaded, threaded_losses = _train(tiny_config, "threaded", training__max_data_loader_n_workers=2, **common)
    assert decode_threads and all(name.startswith("tui-lora-image") for name in decode_threads)
    assert threaded_losses == plain_losses  # random crops and flips drawn in the same order
    a, b = load_file(str(plain.outputs[-1])), load_file(str(threaded.outputs[-1]))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.mark.slow
def test_the_latent_cache_pass_decodes_in_workers_with_the_same_latents(tiny_config, decode_threads):
    import torch

    common = dict(training__cache_latents=True, training__max_train_steps=1)
    plain, _ = _train(tiny_config, "plain", training__max_data_loader_n_workers=0, **common)
    decode_threads.clear()
    threaded, _ = _train(tiny_config, "threaded", training__max_data_loader_n_workers=3, **common)
    assert decode_threads and all(name.startswith("tui-lora-image") for name in decode_threads)
    before, after = plain.trainer.encoder.memory, threaded.trainer.encoder.memory
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
@pytest.mark.parametrize("persistent, pools", [(False, 2), (True, 1)])
def test_workers_restart_each_epoch_unless_persistent(tiny_config, persistent, pools):
    result, _ = _train(tiny_config, f"epochs{persistent}", training__cache_latents=False, training__epochs=2,
                       training__max_data_loader_n_workers=2, training__persistent_data_loader_workers=persistent)
    assert result.trainer.images.pools_started == pools


def test_loading_settings_round_trip_refuse_bad_values_and_import_from_kohya(tmp_path):
    from engine.config.kohya_import import convert_kohya_settings

    cfg, _ = load_text(tmp_path, "folders: {images: imgs}\ntraining: {max_data_loader_n_workers: 4, "
                                 "persistent_data_loader_workers: true}\n")
    again, _ = load_text(tmp_path, dump_run_yaml(cfg))
    assert (again.training.max_data_loader_n_workers, again.training.persistent_data_loader_workers) == (4, True)
    for bad in ("-1", "2.5", "many", "65"):
        errors = errors_of(tmp_path, f"folders: {{images: imgs}}\ntraining: {{max_data_loader_n_workers: {bad}}}\n")
        assert any(e.startswith("training.max_data_loader_n_workers") for e in errors), bad
    result = convert_kohya_settings({"train_data_dir": "imgs", "max_data_loader_n_workers": "4",
                                     "persistent_data_loader_workers": True})
    assert result.config.training.max_data_loader_n_workers == 4 and result.config.training.persistent_data_loader_workers
    assert not {"max_data_loader_n_workers", "persistent_data_loader_workers"} & {n.field for n in result.notes}
