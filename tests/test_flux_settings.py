"""FLUX.1 settings: shown with a reason where they do not apply, refused where a run could not use them,
and a single-file FLUX.1 that lacks its separate files stops with the field to set."""

from __future__ import annotations

import json
import struct

import pytest

from engine import families
from engine.config import SETTINGS, validate_values
from engine.problems import ProblemError

from .helpers import load_text

FLUX = {"model.quick_pick": "builtin-tiny-flux1", "folders.images": "/data"}
SD = {"model.quick_pick": "builtin-tiny-sd1", "folders.images": "/data"}


def _problems(values):
    _, problems = validate_values(values)
    return {p.field: p for p in problems}


def test_flux_options_are_disabled_with_a_reason_for_other_families_and_sd_options_for_flux():
    flux_values, _ = validate_values(FLUX)
    sd_values, _ = validate_values(SD)
    for key in ("flux.timestep_sampling", "flux.guidance_scale", "flux.model_prediction_type",
                "flux.apply_t5_attn_mask", "flux.t5xxl_max_token_length"):
        assert SETTINGS[key].applies(flux_values) is None
        assert "only for FLUX.1" in SETTINGS[key].applies(sd_values)
    for key in ("training.min_snr_gamma", "training.noise_offset", "training.clip_skip", "training.min_timestep"):
        assert SETTINGS[key].applies(sd_values) is None
        assert "FLUX.1" in SETTINGS[key].applies(flux_values)
    assert "single FLUX.1 transformer file" in SETTINGS["model.t5xxl"].applies(flux_values)
    assert SETTINGS["model.t5xxl"].applies({**flux_values, "model.path": "/m/flux1-dev.safetensors"}) is None


@pytest.mark.parametrize("change, field", [
    ({"training.min_snr_gamma": 5.0}, "training.min_snr_gamma"),
    ({"training.noise_offset": 0.05}, "training.noise_offset"),
    ({"training.debiased_estimation_loss": True}, "training.debiased_estimation_loss"),
    ({"training.max_timestep": 900}, "training.max_timestep"),
    ({"training.attention": "xformers"}, "training.attention"),
    ({"network.type": "locon"}, "network.type"),
    ({"training.loss_type": "huber"}, "training.huber_schedule"),
])
def test_flux_runs_refuse_what_flow_matching_does_not_use(change, field):
    found = _problems({**FLUX, **change})
    assert field in found and found[field].is_error
    assert field not in _problems({**SD, **change}) or not _problems({**SD, **change})[field].is_error


def test_huber_with_a_flow_matching_schedule_is_accepted_for_flux():
    found = _problems({**FLUX, "training.loss_type": "huber", "training.huber_schedule": "exponential"})
    assert "training.huber_schedule" not in found


def test_flux_option_set_on_an_sd_run_is_a_warning_not_silence():
    found = _problems({**SD, "flux.timestep_sampling": "shift"})
    assert not found["flux.timestep_sampling"].is_error and "only for FLUX.1" in found["flux.timestep_sampling"].message


@pytest.mark.parametrize("change, field, words", [
    ({"training.cache_text_encoder_outputs": True, "optimizer.text_encoder_lr": 1e-5},
     "training.cache_text_encoder_outputs", "text encoder that is being trained"),
    ({"training.cache_text_encoder_outputs": True, "optimizer.text_encoder_lr": 0.0, "captions.shuffle": True},
     "captions.shuffle", "cannot be cached"),
    ({"training.cache_text_encoder_outputs_to_disk": True, "optimizer.text_encoder_lr": 0.0},
     "training.cache_text_encoder_outputs_to_disk", "needs training.cache_text_encoder_outputs"),
    ({"training.fp8_base": True, "training.mixed_precision": "no"}, "training.fp8_base", "bf16 or fp16"),
])
def test_caching_and_fp8_combinations_that_cannot_work_are_errors(change, field, words):
    for family in (FLUX, SD):  # one implementation for every family
        found = _problems({**family, **change})
        assert field in found and found[field].is_error and words in found[field].message


def test_single_file_flux_run_file_names_each_missing_file(tmp_path):
    text = """\
        model:
          quick_pick: custom
          family: flux1
          path: /models/flux1-dev.safetensors
          t5xxl: /models/t5xxl_fp16.safetensors
        folders:
          images: /data
        """
    with pytest.raises(ProblemError) as info:
        load_text(tmp_path, text)
    fields = {p.field for p in info.value.errors}
    assert {"model.clip_l", "model.ae", "model.config_dir"} <= fields and "model.t5xxl" not in fields


def _bfl_file(path, guidance: bool):
    """A safetensors file with FLUX.1's BFL key layout (tiny tensors: only the names matter here)."""
    names = ["double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight", "img_in.weight"]
    if guidance:
        names.append("guidance_in.in_layer.weight")
    header = {name: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i, name in enumerate(names)}
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 4 * len(names))
    return path


def test_single_flux_transformer_file_is_detected_and_asks_for_its_encoders_and_autoencoder(tmp_path):
    from engine.families.load import describe_model_path, load_base_model

    file = _bfl_file(tmp_path / "flux1-dev.safetensors", guidance=True)
    assert describe_model_path(str(file)).family == "flux1"
    with pytest.raises(ProblemError) as info:
        load_base_model(str(file), family=None, companions={"t5xxl": str(tmp_path / "missing.safetensors")})
    messages = {p.field: p.message for p in info.value.errors}
    assert {"model.clip_l", "model.t5xxl", "model.ae", "model.config_dir"} <= set(messages)
    assert "does not exist" in messages["model.t5xxl"]
    with pytest.raises(ProblemError) as info:
        load_base_model(str(file), family=families.get("sdxl"))
    assert {p.field for p in info.value.errors} == {"model.family"}


def test_schnell_is_told_by_its_config_in_metadata_and_t5_length():
    from types import SimpleNamespace

    from engine.config import RunConfig
    from engine import families

    flux = families.get("flux1")
    cfg = RunConfig.from_values(FLUX)
    schnell = SimpleNamespace(unet=SimpleNamespace(config={"guidance_embeds": False}))
    dev = SimpleNamespace(unet=SimpleNamespace(config={"guidance_embeds": True}))
    assert flux.text_options(cfg, schnell)["t5_max_tokens"] == 256
    assert flux.text_options(cfg, dev)["t5_max_tokens"] == 512
    assert flux.text_options(cfg.replace(flux__t5xxl_max_token_length=77), schnell)["t5_max_tokens"] == 77
    metadata = flux.finish_metadata({"modelspec.prediction_type": "epsilon", "ss_clip_skip": "1"}, cfg, schnell)
    assert metadata["modelspec.architecture"] == "flux-1-schnell/lora"
    assert "modelspec.prediction_type" not in metadata and "ss_clip_skip" not in metadata
