"""FLUX.1 facts kept for the coming family: metadata strings, options, variant detection."""

from __future__ import annotations

import json

import pytest

from engine.families.flux1 import reference as flux


def test_lora_metadata_uses_sd_scripts_strings_and_defaults():
    metadata = flux.lora_metadata("dev")
    assert metadata["ss_base_model_version"] == "flux1"
    assert metadata["modelspec.architecture"] == "flux-1-dev/lora"
    assert metadata["modelspec.implementation"] == "https://github.com/black-forest-labs/flux"
    assert metadata["ss_timestep_sampling"] == "sigma"
    assert metadata["ss_model_prediction_type"] == "sigma_scaled"
    assert metadata["ss_discrete_flow_shift"] == "3.0" and metadata["ss_guidance_scale"] == "3.5"
    assert "modelspec.prediction_type" not in metadata  # sd-scripts writes none for Flux
    assert all(isinstance(value, str) for value in metadata.values())  # safetensors metadata is text


def test_lora_metadata_records_the_chosen_options_and_refuses_unknown_ones():
    metadata = flux.lora_metadata("schnell", {"timestep_sampling": "shift", "discrete_flow_shift": 3.1582})
    assert metadata["modelspec.architecture"] == "flux-1-schnell/lora"
    assert metadata["ss_timestep_sampling"] == "shift" and metadata["ss_discrete_flow_shift"] == "3.1582"
    assert flux.lora_metadata(None)["modelspec.architecture"] == "flux-1/lora"
    with pytest.raises(ValueError, match="timestep_sampler"):
        flux.lora_metadata("dev", {"timestep_sampler": "shift"})


def test_variant_is_read_from_structure_not_names():
    assert flux.variant_of_config({"guidance_embeds": True}) == "dev"
    assert flux.variant_of_config({"guidance_embeds": False}) == "schnell"
    bfl_dev = ["double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight", "guidance_in.in_layer.weight"]
    assert flux.is_bfl_transformer(bfl_dev) and flux.variant_of_bfl_keys(bfl_dev) == "dev"
    assert flux.variant_of_bfl_keys(bfl_dev[:2]) == "schnell"
    assert not flux.is_bfl_transformer(["input_blocks.0.0.weight", "double_blocks.0.x"])


def test_tiny_flux_model_reads_as_dev(model_cache):
    pytest.importorskip("torch")
    from engine.families.flux1.tiny import ensure_tiny_flux_model

    config = json.loads((ensure_tiny_flux_model() / "transformer" / "config.json").read_text())
    assert flux.variant_of_config(config) == "dev"
