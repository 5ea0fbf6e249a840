"""Mature-trainer options, end to end on the tiny SD1 model: each one changes what training does.

Observation goes through library-level hooks (every UNet / text-encoder / VAE-encoder forward, every
optimizer step), so the runs themselves are ordinary `run_config` runs.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_pre_hook

from engine.problems import ProblemError
from engine.train.entry import run_config

pytestmark = pytest.mark.slow


def train(cfg):
    events: list[dict] = []
    result = run_config(cfg, on_event=events.append)
    assert result.status == "completed", (result.message, result.hint)
    return result, events


def steps_of(events) -> list[dict]:
    return [e for e in events if e["type"] == "step"]


def started(events) -> dict:
    return next(e for e in events if e["type"] == "run_started")


def metadata(path) -> dict[str, str]:
    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


@contextmanager
def forward_inputs(class_name: str):
    """Record the positional inputs of every forward of modules of one class (detached copies)."""
    seen: list[tuple] = []

    def hook(module, args):
        if type(module).__name__ == class_name:
            seen.append(tuple(a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


@contextmanager
def optimizer_steps():
    """The total gradient norm at every real optimizer step (after clipping, before the update)."""
    norms: list[float] = []

    def hook(optimizer, args, kwargs):
        grads = [p.grad.detach().flatten() for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.cat(grads).norm()) if grads else 0.0)

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield norms
    finally:
        handle.remove()


def one_concept(root: Path, caption: str, *, repeats: int = 4, size=(64, 64), name="thing") -> Path:
    folder = root / f"{repeats}_{name}"
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(sum(size))
    pixels = (torch.rand(size[1], size[0], 3, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(folder / "img.png")
    (folder / "img.txt").write_text(caption)
    return root


def decoded_captions(result, text_inputs) -> list[str]:
    tokenizer = result.trainer.model.base.tokenizers[0]
    return [tokenizer.decode(ids, skip_special_tokens=True) for call in text_inputs for ids in call[0]]


def tags(caption: str) -> list[str]:
    return [t.strip() for t in caption.split(",") if t.strip()]


# ---- memory and steps ---------------------------------------------------------------------------

def test_gradient_checkpointing_is_on_in_the_unet_and_gives_the_same_lora(tiny_config):
    plain, _ = train(tiny_config(folders__output_name="plain"))
    checkpointed, _ = train(tiny_config(folders__output_name="ckpt", training__gradient_checkpointing=True))
    assert checkpointed.trainer.model.base.unet.is_gradient_checkpointing
    assert checkpointed.trainer.model.base.text_encoders[0].is_gradient_checkpointing
    assert not plain.trainer.model.base.unet.is_gradient_checkpointing
    a, b = load_file(str(plain.outputs[-1])), load_file(str(checkpointed.outputs[-1]))
    # recomputing activations must not change the gradients, and the LoRA still learns
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-7)
    assert all(b[k].abs().sum() > 0 for k in b if k.endswith("lora_up.weight"))
    assert metadata(checkpointed.outputs[-1])["ss_gradient_checkpointing"] == "True"


@pytest.mark.parametrize("accumulation, steps_per_epoch", [(1, 4), (2, 2), (3, 2)])
def test_gradient_accumulation_sets_the_optimizer_steps(tiny_config, accumulation, steps_per_epoch):
    # small_data at batch size 1: 4 batches an epoch; 3 → one group of 3 and the epoch's last batch alone
    cfg = tiny_config(training__batch_size=1, training__epochs=2, training__gradient_accumulation_steps=accumulation)
    with optimizer_steps() as norms:
        result, events = train(cfg)
    begun = started(events)
    assert begun["steps_per_epoch"] == steps_per_epoch and begun["total_steps"] == 2 * steps_per_epoch
    assert begun["gradient_accumulation_steps"] == accumulation
    assert len(norms) == len(steps_of(events)) == 2 * steps_per_epoch
    assert [e["step"] for e in steps_of(events)] == list(range(1, 2 * steps_per_epoch + 1))
    assert [e["epoch"] for e in steps_of(events)] == [1] * steps_per_epoch + [2] * steps_per_epoch
    assert metadata(result.outputs[-1])["ss_gradient_accumulation_steps"] == str(accumulation)


def test_max_grad_norm_bounds_the_gradient_at_every_optimizer_step(tiny_config):
    limit = 1e-3
    with optimizer_steps() as unclipped:
        train(tiny_config(folders__output_name="free", training__max_grad_norm=0.0))
    with optimizer_steps() as clipped:
        result, _ = train(tiny_config(folders__output_name="clipped", training__max_grad_norm=limit))
    assert max(unclipped) > 10 * limit  # the bound is not met by chance
    assert clipped and all(norm <= limit * (1 + 1e-3) for norm in clipped)
    assert metadata(result.outputs[-1])["ss_max_grad_norm"] == str(limit)


# ---- captions -----------------------------------------------------------------------------------

CAPTION = "trigger, red, round, shiny, small, bright"


def test_shuffle_caption_moves_tags_but_keeps_the_leading_ones(tiny_config, tmp_path):
    images = one_concept(tmp_path / "tagged", CAPTION)
    common = dict(folders__images=str(images), training__batch_size=1, training__epochs=3)
    with forward_inputs("CLIPTextModel") as seen:
        result, _ = train(tiny_config(folders__output_name="shuffled", captions__shuffle=True, captions__keep_tokens=1,
                                      **common))
    shuffled = [tags(c) for c in decoded_captions(result, seen)]
    assert len(shuffled) == 12
    assert all(t[0] == "trigger" and sorted(t) == sorted(tags(CAPTION)) for t in shuffled)
    assert len({tuple(t) for t in shuffled}) > 3
    with forward_inputs("CLIPTextModel") as seen:
        result, _ = train(tiny_config(folders__output_name="plain", **common))
    assert {tuple(tags(c)) for c in decoded_captions(result, seen)} == {tuple(tags(CAPTION))}
    meta = metadata(result.outputs[-1])
    assert meta["ss_shuffle_caption"] == "False" and meta["ss_keep_tokens"] == "0"


def test_caption_dropout_trains_with_empty_captions_at_its_rate(tiny_config, tmp_path):
    images = one_concept(tmp_path / "tagged", CAPTION, repeats=8)
    common = dict(folders__images=str(images), training__batch_size=1, training__epochs=3)
    with forward_inputs("CLIPTextModel") as seen:
        result, _ = train(tiny_config(captions__dropout_rate=0.5, folders__output_name="dropped", **common))
    captions = decoded_captions(result, seen)
    empty = sum(1 for c in captions if c == "")
    assert len(captions) == 24 and 4 <= empty <= 20
    assert all(c == "" or tags(c) == tags(CAPTION) for c in captions)
    with forward_inputs("CLIPTextModel") as seen:
        result, _ = train(tiny_config(folders__output_name="kept", **common))
    assert "" not in decoded_captions(result, seen)
    assert metadata(result.outputs[-1])["ss_caption_dropout_rate"] == "0.0"


def _first_conditioning(cfg):
    with forward_inputs("UNet2DConditionModel") as unet_calls, forward_inputs("CLIPTextModel") as text_calls:
        result, _ = train(cfg)
    return result, unet_calls[0], text_calls[0][0]


def test_clip_skip_conditions_the_unet_on_an_earlier_text_encoder_layer(tiny_config):
    common = dict(optimizer__text_encoder_lr=0.0, training__batch_size=1)
    last, (_, _, hidden_1), ids = _first_conditioning(tiny_config(folders__output_name="skip1", **common))
    skipped, (_, _, hidden_2), ids_2 = _first_conditioning(tiny_config(folders__output_name="skip2",
                                                                       training__clip_skip=2, **common))
    assert torch.equal(ids, ids_2) and hidden_1.shape == hidden_2.shape
    assert not torch.allclose(hidden_1, hidden_2)
    encoder = skipped.trainer.model.base.text_encoders[0]  # not trained: the base encoder
    with torch.no_grad():
        states = encoder(ids, output_hidden_states=True).hidden_states
        expected_2 = encoder.final_layer_norm(states[-2])
        expected_1 = encoder.final_layer_norm(states[-1])
    torch.testing.assert_close(hidden_2, expected_2[:1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hidden_1, expected_1[:1], rtol=1e-5, atol=1e-6)
    assert metadata(skipped.outputs[-1])["ss_clip_skip"] == "2"


@pytest.mark.parametrize("max_tokens, sequence", [(75, 77), (150, 152), (225, 227)])
def test_max_token_length_sets_the_sequence_the_unet_attends_to(tiny_config, max_tokens, sequence):
    cfg = tiny_config(training__max_token_length=max_tokens, training__batch_size=1)
    with forward_inputs("UNet2DConditionModel") as unet_calls, forward_inputs("CLIPTextModel") as text_calls:
        result, _ = train(cfg)
    assert {call[2].shape[1] for call in unet_calls} == {sequence}
    # the text encoder itself sees 75-token windows framed by begin/end tokens, as CLIP was trained
    assert {call[0].shape for call in text_calls} == {torch.Size([max_tokens // 75, 77])}
    assert metadata(result.outputs[-1])["ss_max_token_length"] == str(max_tokens)


# ---- images and noise ---------------------------------------------------------------------------

def test_flip_doubles_the_cached_latents_with_mirrored_images(tiny_config):
    plain, events_plain = train(tiny_config(folders__output_name="plain"))
    flipped, events = train(tiny_config(folders__output_name="flipped", augment__flip=True))
    items = flipped.trainer.plan.dataset.items
    assert len(plain.trainer.encoder.memory) == len(items)
    assert len(flipped.trainer.encoder.memory) == 2 * len(items)
    assert [e for e in events if e["type"] == "caching"][-1]["total"] == 2 * len(items)
    encoder = flipped.trainer.encoder
    for index, item in enumerate(items):
        assert not torch.equal(encoder.memory[(index, False)], encoder.memory[(index, True)])
        upright, mirrored = encoder.pixels(item, False)[0], encoder.pixels(item, True)[0]
        assert torch.equal(mirrored, upright.flip(-1))
    assert metadata(flipped.outputs[-1])["ss_flip_aug"] == "True"


def test_random_crop_changes_the_crop_each_time_and_needs_uncached_latents(tiny_config, tmp_path):
    images = one_concept(tmp_path / "wide", "wide thing", size=(160, 64))
    common = dict(folders__images=str(images), training__batch_size=1, training__cache_latents=False,
                  optimizer__text_encoder_lr=0.0)
    with forward_inputs("Encoder") as crops:
        result, _ = train(tiny_config(augment__random_crop=True, folders__output_name="random", **common))
    assert len(crops) == 4 and len({c[0].sum().item() for c in crops}) > 1
    with forward_inputs("Encoder") as crops:
        train(tiny_config(folders__output_name="centre", **common))
    assert len(crops) == 4 and all(torch.equal(c[0], crops[0][0]) for c in crops)
    assert metadata(result.outputs[-1])["ss_random_crop"] == "True"
    from engine.config import dump_run_yaml
    from engine.train.entry import run_from_file

    run_file = tmp_path / "cached.yaml"  # with cached latents the crop would be drawn once: refused
    run_file.write_text(dump_run_yaml(tiny_config(augment__random_crop=True, folders__images=str(images))))
    with pytest.raises(ProblemError) as info:
        run_from_file(run_file)
    assert info.value.errors[0].field == "augment.random_crop"
    from engine.train.entry import run_config

    with pytest.raises(ProblemError) as info:  # a config built in code gets the same rules
        run_config(tiny_config(augment__random_crop=True, folders__images=str(images)))
    assert info.value.errors[0].field == "augment.random_crop"


def test_noise_offset_shifts_each_channel_of_the_noise(tiny_config):
    from engine.diffusion.noise import NoiseOptions, sample_noise

    latents = torch.zeros(2, 4, 8, 8)
    plain = sample_noise(latents, NoiseOptions(), torch.Generator().manual_seed(1))
    offset = sample_noise(latents, NoiseOptions(offset=0.3), torch.Generator().manual_seed(1))
    shift = offset - plain  # same draws underneath: the offset adds one constant per image and channel
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-6)
    assert shift.abs().min() > 0 and shift[:, :, 0, 0].std() > 0

    def first_noisy_input(value):
        with forward_inputs("UNet2DConditionModel") as calls:
            result, events = train(tiny_config(training__noise_offset=value, folders__output_name=f"n{value}"))
        return result, calls[0][0], steps_of(events)[0]["loss"]

    _, without, loss_without = first_noisy_input(0.0)
    result, with_offset, loss_with = first_noisy_input(0.5)
    assert not torch.allclose(without, with_offset) and loss_without != loss_with
    assert metadata(result.outputs[-1])["ss_noise_offset"] == "0.5"


def test_min_snr_gamma_weights_the_loss_by_the_timesteps_snr(tiny_config):
    common = dict(training__batch_size=1, optimizer__text_encoder_lr=0.0)

    def first_step(**settings):
        with forward_inputs("UNet2DConditionModel") as calls:
            result, events = train(tiny_config(**common, **settings))
        return result, calls[0][1], steps_of(events)[0]["loss"]

    _, t_plain, loss_plain = first_step(folders__output_name="plain")
    result, t_snr, loss_snr = first_step(folders__output_name="snr", training__min_snr_gamma=0.05)
    assert torch.equal(t_plain, t_snr)  # the same draw: only the weighting differs
    scheduler = result.trainer.model.base.noise_scheduler
    alpha_bar = scheduler.alphas_cumprod[t_snr].double()
    snr = alpha_bar / (1 - alpha_bar)
    weight = float(torch.clamp(snr, max=0.05) / snr)
    assert weight < 0.9
    assert loss_snr == pytest.approx(loss_plain * weight, rel=1e-4)
    assert metadata(result.outputs[-1])["ss_min_snr_gamma"] == "0.05"


def test_bucket_no_upscale_trains_small_images_at_their_own_size(tiny_config, tmp_path):
    images = one_concept(tmp_path / "little", "little thing", size=(32, 32))
    common = dict(folders__images=str(images), buckets__min_resolution=32, training__batch_size=4,
                  optimizer__text_encoder_lr=0.0)
    with forward_inputs("UNet2DConditionModel") as calls:
        train(tiny_config(folders__output_name="upscaled", **common))
    assert {tuple(c[0].shape[-2:]) for c in calls} == {(16, 16)}  # enlarged to 64 px (the tiny VAE divides by 4)
    with forward_inputs("UNet2DConditionModel") as calls:
        result, _ = train(tiny_config(folders__output_name="own_size", buckets__no_upscale=True, **common))
    assert {tuple(c[0].shape[-2:]) for c in calls} == {(8, 8)}
    assert metadata(result.outputs[-1])["ss_bucket_no_upscale"] == "True"


def test_prior_loss_weight_scales_the_loss_of_regularisation_images(tiny_config, small_data, tmp_path):
    reg = one_concept(tmp_path / "reg", "thing", repeats=1, name="thing")
    common = dict(folders__regularization=str(reg), training__batch_size=1, optimizer__text_encoder_lr=0.0)
    result, events = train(tiny_config(folders__output_name="ignored", training__prior_loss_weight=0.0, **common))
    draws = started(events)["dataset"]
    reg_draws = draws["num_reg_images_used"]
    losses = [e["loss"] for e in steps_of(events)]
    assert reg_draws > 0 and sum(1 for loss in losses if loss == 0.0) == reg_draws
    assert metadata(result.outputs[-1])["ss_prior_loss_weight"] == "0.0"
    _, events = train(tiny_config(folders__output_name="weighted", training__prior_loss_weight=1.0, **common))
    assert all(e["loss"] > 0 for e in steps_of(events))


# ---- backend, saving, metadata ------------------------------------------------------------------

def test_sdpa_attention_uses_torch_scaled_dot_product_and_missing_xformers_is_refused(tiny_config, tmp_path):
    from diffusers.models.attention_processor import AttnProcessor2_0

    result, _ = train(tiny_config(training__attention="sdpa"))
    processors = result.trainer.model.base.unet.attn_processors
    assert processors and all(isinstance(p, AttnProcessor2_0) for p in processors.values())
    import importlib.util

    if importlib.util.find_spec("xformers") is None:
        with pytest.raises(ProblemError) as info:
            run_config(tiny_config(training__attention="xformers", folders__output_name="xf"))
        assert info.value.errors[0].field == "training.attention"
        assert "xformers" in info.value.errors[0].hint
        assert not (tmp_path / "out" / "xf.safetensors").exists()


def test_save_last_n_epochs_removes_older_saves_and_says_so(tiny_config, tmp_path):
    cfg = tiny_config(training__epochs=4, training__save_every_n_epochs=1, training__save_last_n_epochs=1)
    result, events = train(cfg)
    assert sorted(p.name for p in (tmp_path / "out").glob("test_lora-*.safetensors")) == ["test_lora-000003.safetensors"]
    removed = [e["message"] for e in events if e["type"] == "log" and "removed older save" in e.get("message", "")]
    assert len(removed) == 2
    assert metadata(result.outputs[-1])["ss_save_last_n_epochs"] == "1"


def test_metadata_fields_go_into_modelspec(tiny_config):
    cfg = tiny_config(metadata__title="Red Things", metadata__author="Ada", metadata__description="draws red things",
                      metadata__license="CC-BY-4.0", metadata__tags="red, thing")
    result, _ = train(cfg)
    meta = metadata(result.outputs[-1])
    assert meta["modelspec.title"] == "Red Things" and meta["modelspec.author"] == "Ada"
    assert meta["modelspec.description"] == "draws red things" and meta["modelspec.license"] == "CC-BY-4.0"
    assert meta["modelspec.tags"] == "red, thing"
    default, _ = train(tiny_config(folders__output_name="untitled"))
    meta = metadata(default.outputs[-1])
    assert meta["modelspec.title"] == "untitled" and "modelspec.author" not in meta


def test_every_option_set_is_recorded_in_ss_metadata(tiny_config):
    cfg = tiny_config(training__gradient_checkpointing=True, training__gradient_accumulation_steps=2,
                      training__max_grad_norm=0.5, captions__shuffle=True, captions__keep_tokens=1,
                      captions__dropout_rate=0.1, training__clip_skip=2, training__max_token_length=150,
                      augment__flip=True, training__noise_offset=0.05, training__min_snr_gamma=5.0,
                      buckets__no_upscale=True, training__prior_loss_weight=0.7, training__epochs=2,
                      training__save_every_n_epochs=1, training__save_last_n_epochs=1)
    result, _ = train(cfg)
    meta = metadata(result.outputs[-1])
    expected = {
        "ss_gradient_checkpointing": "True", "ss_gradient_accumulation_steps": "2", "ss_max_grad_norm": "0.5",
        "ss_shuffle_caption": "True", "ss_keep_tokens": "1", "ss_caption_dropout_rate": "0.1", "ss_clip_skip": "2",
        "ss_max_token_length": "150", "ss_flip_aug": "True", "ss_noise_offset": "0.05", "ss_min_snr_gamma": "5.0",
        "ss_bucket_no_upscale": "True", "ss_prior_loss_weight": "0.7", "ss_save_last_n_epochs": "1",
        "ss_random_crop": "False", "ss_xformers": "sdpa", "ss_num_processes": "1",
    }
    assert {key: meta.get(key) for key in expected} == expected
