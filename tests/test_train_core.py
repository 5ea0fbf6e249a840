"""End-to-end training on the built-in tiny SD1 model: each core setting changes what happens."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from engine.events import read_events
from engine.problems import ProblemError
from engine.train.entry import run_config

pytestmark = pytest.mark.slow


def train(cfg, **kwargs):
    events = []
    result = run_config(cfg, on_event=events.append, **kwargs)
    assert result.status == "completed", (result.message, result.hint)
    return result, events


def tensors(path):
    return load_file(str(path))


def metadata(path):
    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


def test_rank_sets_tensor_shapes_and_alpha_is_stored(tiny_config):
    cfg = tiny_config(network__rank=4, network__alpha=2.0)
    result, _ = train(cfg)
    state = tensors(result.outputs[-1])
    downs = {k: v for k, v in state.items() if k.endswith("lora_down.weight")}
    assert downs and all(v.shape[0] == 4 for v in downs.values())
    alphas = {k: v for k, v in state.items() if k.endswith(".alpha")}
    assert alphas and all(float(v) == 2.0 for v in alphas.values())
    assert any(k.startswith("lora_te_text_model_encoder_layers_") for k in state)
    assert any(k.startswith("lora_unet_") for k in state)
    meta = metadata(result.outputs[-1])
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2.0"
    assert meta["ss_base_model_version"] == "sd_v1"
    assert "sshs_model_hash" in meta and meta["modelspec.architecture"] == "stable-diffusion-v1/lora"


def test_output_files_and_run_file_copy(tiny_config, tmp_path):
    cfg = tiny_config(training__epochs=3, training__save_every_n_epochs=1)
    result, events = train(cfg)
    out = tmp_path / "out"
    assert (out / "test_lora.safetensors").exists()
    assert (out / "test_lora-000001.safetensors").exists()
    assert (out / "test_lora-000002.safetensors").exists()
    assert not (out / "test_lora-000003.safetensors").exists()  # the last epoch is the final file
    assert (out / "test_lora.yaml").exists()
    assert metadata(out / "test_lora-000001.safetensors")["ss_epoch"] == "1"
    kinds = [e["kind"] for e in events if e["type"] == "checkpoint"]
    assert kinds == ["epoch", "epoch", "final"]


def test_save_last_n_epochs_keeps_only_newest(tiny_config, tmp_path):
    cfg = tiny_config(training__epochs=4, training__save_every_n_epochs=1, training__save_last_n_epochs=2)
    train(cfg)
    names = sorted(p.name for p in (tmp_path / "out").glob("test_lora-*.safetensors"))
    assert names == ["test_lora-000002.safetensors", "test_lora-000003.safetensors"]


@pytest.mark.parametrize("precision, dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16), ("float", torch.float32)])
def test_save_precision_sets_dtypes(tiny_config, precision, dtype):
    result, _ = train(tiny_config(training__save_precision=precision))
    state = tensors(result.outputs[-1])
    assert {v.dtype for k, v in state.items() if k.endswith(".weight")} == {dtype}


def test_same_seed_same_lora_other_seed_differs(tiny_config, tmp_path):
    first, _ = train(tiny_config(training__seed=11, folders__output_name="a"))
    second, _ = train(tiny_config(training__seed=11, folders__output_name="b"))
    third, _ = train(tiny_config(training__seed=12, folders__output_name="c"))
    a, b, c = (tensors(r.outputs[-1]) for r in (first, second, third))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_empty_seed_is_drawn_and_recorded(tiny_config):
    result, events = train(tiny_config(training__seed=None))
    seed = next(e for e in events if e["type"] == "run_started")["seed"]
    assert isinstance(seed, int)
    assert metadata(result.outputs[-1])["ss_seed"] == str(seed)


def test_existing_output_is_refused_and_untouched(tiny_config, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "test_lora.safetensors"
    existing.write_bytes(b"precious")
    with pytest.raises(ProblemError) as info:
        run_config(tiny_config())
    assert info.value.errors[0].field == "folders.output_name"
    assert "test_lora_v2" in info.value.errors[0].hint
    assert existing.read_bytes() == b"precious"
    assert not (out / ".runs").exists()


def test_overwrite_true_replaces(tiny_config, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "test_lora.safetensors").write_bytes(b"old")
    result, _ = train(tiny_config(overwrite=True))
    assert result.outputs[-1].read_bytes()[:3] != b"old"


def test_scheduler_shapes_learning_rate_sequence(tiny_config):
    cfg = tiny_config(training__epochs=4, optimizer__scheduler="linear", optimizer__warmup_percent=25.0,
                      optimizer__learning_rate=1e-3, optimizer__unet_lr=None, optimizer__text_encoder_lr=None)
    _, events = train(cfg)
    steps = [e for e in events if e["type"] == "step"]
    total = steps[0]["total_steps"]
    lrs = [e["lr"]["unet"] for e in steps]
    warmup = round(0.25 * total)
    # step s updates with the schedule's value at s-1: a ramp from 0, the peak, then a linear fall
    for s, lr in enumerate(lrs, start=1):
        k = s - 1
        expected = 1e-3 * (k / warmup if k < warmup else max(0.0, (total - k) / (total - warmup)))
        assert lr == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_constant_scheduler_keeps_lr(tiny_config):
    _, events = train(tiny_config(training__epochs=2))
    assert {e["lr"]["unet"] for e in events if e["type"] == "step"} == {1e-3}


def test_text_encoder_frozen_after_stop_step(tiny_config, tmp_path):
    cfg = tiny_config(training__epochs=4, training__stop_text_encoder_percent=50.0, training__save_every_n_epochs=1)
    result, events = train(cfg)
    out = tmp_path / "out"
    total = events[-1]["step"]
    assert any("text encoder frozen at step" in e.get("message", "") for e in events if e["type"] == "log")
    # epoch 2 ends exactly at the stop step (50%): from then on text-encoder weights stay put
    at_stop, final = tensors(out / "test_lora-000002.safetensors"), tensors(out / "test_lora.safetensors")
    te_keys = [k for k in final if k.startswith("lora_te_") and not k.endswith("alpha")]
    unet_keys = [k for k in final if k.startswith("lora_unet_") and k.endswith("lora_up.weight")]
    assert te_keys and all(torch.equal(at_stop[k], final[k]) for k in te_keys)
    assert any(not torch.equal(at_stop[k], final[k]) for k in unet_keys)
    first = tensors(out / "test_lora-000001.safetensors")
    assert any(not torch.equal(first[k], at_stop[k]) for k in te_keys)  # it did train before the stop
    started = next(e for e in events if e["type"] == "run_started")
    assert total == started["total_steps"]


def test_text_encoder_lr_zero_trains_unet_only(tiny_config):
    result, events = train(tiny_config(optimizer__text_encoder_lr=0.0))
    state = tensors(result.outputs[-1])
    assert not any(k.startswith("lora_te") for k in state)
    assert set(next(e for e in events if e["type"] == "step")["lr"]) == {"unet"}


def test_run_registers_itself_and_writes_events(tiny_config, tmp_path):
    from engine.runs import list_runs

    result, _ = train(tiny_config())
    (info,) = list_runs()
    assert info.status == "completed"
    events = read_events(result.run.events)
    types = [e["type"] for e in events]
    # Only `phase` events (loading the model) may come before run_started.
    first = next(i for i, kind in enumerate(types) if kind != "phase")
    assert types[first] == "run_started" and types[-1] == "run_finished"
    assert "step" in types and "checkpoint" in types
    started = events[first]
    assert started["total_steps"] == started["steps_per_epoch"] * started["total_epochs"]
    assert started["mixed_precision"] == "no" and started["device"] == "cpu"
    step = next(e for e in events if e["type"] == "step")
    assert {"step", "total_steps", "epoch", "loss", "avg_loss", "lr", "eta_s", "memory"} <= set(step)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_regularisation_images_double_the_epoch(tiny_config):
    _, plain = train(tiny_config(folders__images="synthetic", folders__output_name="plain", training__batch_size=4))
    _, with_reg = train(tiny_config(folders__images="synthetic", folders__regularization="synthetic",
                                    folders__output_name="reg", training__batch_size=4))
    reg_started = next(e for e in with_reg if e["type"] == "run_started")
    plain_started = next(e for e in plain if e["type"] == "run_started")
    assert reg_started["dataset"]["num_reg_images_used"] == plain_started["dataset"]["num_train_images"]
    draws = plain_started["dataset"]["num_train_images"]  # one bucket here: steps = ceil(draws / batch)
    assert plain_started["total_steps"] == -(-draws // 4)
    assert reg_started["total_steps"] == -(-2 * draws // 4)


def test_locon_adds_resnet_convolutions_not_conv_in_out(tiny_config):
    result, _ = train(tiny_config(network__type="locon", network__conv_rank=2, network__conv_alpha=1.0))
    state = tensors(result.outputs[-1])
    conv_downs = {k: v for k, v in state.items() if k.endswith("lora_down.weight") and v.dim() == 4 and v.shape[-1] == 3}
    assert conv_downs and all(v.shape[0] == 2 for v in conv_downs.values())
    assert any("resnets" in k for k in conv_downs)
    assert not any("conv_in" in k or "conv_out" in k for k in state)
    meta = metadata(result.outputs[-1])
    assert json.loads(meta["ss_network_args"])["conv_dim"] in ("2", 2)
