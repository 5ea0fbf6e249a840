"""Importing Kohya SS GUI FLUX.1 configs: the GUI's own Flux preset, the Flux keys, and SD configs untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_run_file
from engine.config.kohya_import import convert_kohya_settings, import_kohya_config, write_imported
from engine.problems import ProblemError

DATA = Path(__file__).parent / "data" / "kohya"
# bmaltais/kohya_ss presets/lora/flux1D - adamw8bit fp8.json, as the GUI ships it.
FLUX_PRESET = DATA / "flux1D - adamw8bit fp8.json"


def test_the_guis_flux_preset_imports_as_a_flux_run_with_every_flux_value():
    result = import_kohya_config(FLUX_PRESET)
    cfg = result.config
    assert (cfg.model.family, cfg.model.quick_pick) == ("flux1", "custom")
    assert cfg.model.path == "E:\\models\\flux1\\flux1-dev.safetensors"
    assert (cfg.model.clip_l, cfg.model.t5xxl, cfg.model.ae) == (
        "H:/ComfyUI2/models/clip/clip_l.safetensors", "H:/ComfyUI2/models/clip/t5xxl_fp16.safetensors",
        "H:/ComfyUI2/models/vae/ae.sft")
    assert (cfg.flux.timestep_sampling, cfg.flux.discrete_flow_shift, cfg.flux.model_prediction_type) == (
        "sigma", 1.0, "raw")
    assert (cfg.flux.guidance_scale, cfg.flux.t5xxl_max_token_length) == (3.5, 512)
    # the Flux tab's own cache checkboxes are sd-scripts' plain --cache_text_encoder_outputs(_to_disk)
    assert cfg.training.cache_text_encoder_outputs and cfg.training.cache_text_encoder_outputs_to_disk
    assert cfg.training.fp8_base and cfg.training.mixed_precision == "bf16"
    assert (cfg.network.type, cfg.network.rank, cfg.network.alpha) == ("lora", 8, 8.0)
    assert (cfg.optimizer.name, cfg.optimizer.unet_lr, cfg.optimizer.text_encoder_lr) == ("AdamW8bit", 1e-4, 0.0)
    assert cfg.training.gradient_checkpointing and cfg.training.max_resolution == [512, 512]


def test_the_guis_flux_preset_warns_only_about_paths_gui_state_and_modes_without_counterpart():
    notes = {note.field: note.message for note in import_kohya_config(FLUX_PRESET).notes}
    # Windows paths to change, the GUI's epoch/step bookkeeping, highvram (a speed mode), and the
    # configs folder a single-file FLUX.1 needs here (sd-scripts carries BFL's model code instead).
    assert set(notes) == {"pretrained_model_name_or_path", "clip_l", "t5xxl", "ae",
                          "max_train_epochs", "max_train_steps", "highvram", "model.config_dir"}
    assert all("Windows path" in notes[key] for key in ("pretrained_model_name_or_path", "clip_l", "t5xxl", "ae"))


def test_sd_objective_keys_sd_scripts_flux_trainer_ignores_are_dropped_for_flux():
    # The preset holds min_snr_gamma 10, multires noise 8 and sampler euler: none may block the run.
    cfg = import_kohya_config(FLUX_PRESET).config
    assert cfg.training.min_snr_gamma is None and cfg.training.multires_noise_iterations == 0
    assert cfg.sampling.sampler == "euler_a"  # the default; Flux samples with its own flow sampler


def test_imported_flux_preset_writes_a_run_file_that_loads_once_its_config_folder_is_named(tmp_path):
    result = import_kohya_config(FLUX_PRESET)
    with pytest.raises(ProblemError) as info:  # the one thing left to fill in is named
        load_run_file(write_imported(result, tmp_path / "flux.yaml"))
    assert [p.field for p in info.value.errors] == ["model.config_dir"]
    result.config = result.config.replace(model__config_dir=str(tmp_path))
    loaded, _ = load_run_file(write_imported(result, tmp_path / "flux2.yaml"))
    assert loaded == result.config and loaded.model.family == "flux1"


def test_flux_hub_id_becomes_its_quick_pick_and_no_path_means_flux1_dev():
    cfg = convert_kohya_settings({"flux1_checkbox": True, "LoRA_type": "Flux1",
                                  "pretrained_model_name_or_path": "black-forest-labs/FLUX.1-schnell"}).config
    assert (cfg.model.quick_pick, cfg.model.family) == ("flux1-schnell", "flux1")
    result = convert_kohya_settings({"flux1_checkbox": True})
    assert (result.config.model.quick_pick, result.config.model.family) == ("flux1-dev", "flux1")
    assert "flux1-dev" in {n.field: n.message for n in result.notes}["pretrained_model_name_or_path"]


def test_flux_checkbox_with_an_sd_model_uses_flux1_dev_and_says_so():
    result = convert_kohya_settings({"flux1_checkbox": True, "pretrained_model_name_or_path": "runwayml/stable-diffusion-v1-5",
                                     "sdxl": True})
    notes = {n.field: n.message for n in result.notes}
    assert result.config.model.quick_pick == "flux1-dev"
    assert "not a FLUX.1 model" in notes["pretrained_model_name_or_path"] and "ignored" in notes["sdxl"]


def test_lycoris_types_are_refused_for_flux():
    with pytest.raises(ProblemError) as info:
        convert_kohya_settings({"flux1_checkbox": True, "LoRA_type": "LyCORIS/LoHa"})
    assert [p.field for p in info.value.errors] == ["LoRA_type"]


def test_an_sd_config_ignores_the_flux_keys_the_gui_saves_filled():
    cfg_result = convert_kohya_settings({"pretrained_model_name_or_path": "sd15",
                                         "flux1_checkbox": False, "t5xxl_max_token_length": 512,
                                         "model_prediction_type": "raw", "ae": "/x/ae.sft",
                                         "flux1_cache_text_encoder_outputs": True, "blocks_to_swap": 8})
    cfg = cfg_result.config
    assert cfg.model.family == "sd1" and cfg.flux.t5xxl_max_token_length is None
    assert cfg.flux.model_prediction_type == "sigma_scaled" and cfg.model.ae is None
    assert not cfg.training.cache_text_encoder_outputs
    assert [n.field for n in cfg_result.notes] == ["folders.images"]  # only the missing folder


def test_flux_options_without_counterpart_are_named_for_flux():
    notes = {n.field: n.message for n in convert_kohya_settings({"flux1_checkbox": True, "double_blocks_to_swap": 8,
                                                                 "train_t5xxl": True}).notes}
    assert "swap counts" in notes["double_blocks_to_swap"] and "T5" in notes["train_t5xxl"]


# FLUX.1 configs as users share them: the GUI's preset with the memory savers people turn on
# (full_bf16 in all three; 16 swapped blocks for 12 GB; offloaded checkpoints; single blocks only).
USER_CONFIGS = {
    "24 GB, full bf16": {"full_bf16": True, "train_blocks": "single"},
    "12 GB, swap 16": {"full_bf16": True, "blocks_to_swap": 16, "train_batch_size": 1},
    "16 GB, offloaded checkpoints": {"full_bf16": True, "cpu_offload_checkpointing": True},
}


@pytest.mark.parametrize("name", list(USER_CONFIGS))
def test_flux_user_configs_import_with_their_memory_savers_honoured(name):
    import json

    data = {**json.loads(FLUX_PRESET.read_text()), **USER_CONFIGS[name]}
    result = convert_kohya_settings(data)
    cfg = result.config
    assert cfg.training.full_bf16 and cfg.training.mixed_precision == "bf16"
    assert cfg.training.blocks_to_swap == data.get("blocks_to_swap", 0)
    assert cfg.training.cpu_offload_checkpointing == data.get("cpu_offload_checkpointing", False)
    assert cfg.flux.train_blocks == data.get("train_blocks", "all")
    noted = {n.field for n in result.notes}
    assert not noted & {"full_bf16", "blocks_to_swap", "cpu_offload_checkpointing", "train_blocks",
                        "training.full_bf16", "training.blocks_to_swap"}


def test_the_guis_flux_preset_keeps_full_bf16_off_as_it_says():
    cfg = import_kohya_config(FLUX_PRESET).config
    assert not cfg.training.full_bf16 and cfg.training.blocks_to_swap == 0 and cfg.flux.train_blocks == "all"


def test_sdxl_tab_cache_checkbox_turns_on_text_encoder_caching_for_sdxl_only():
    sdxl = convert_kohya_settings({"sdxl": True, "pretrained_model_name_or_path": "sdxl-base", "text_encoder_lr": 0,
                                   "sdxl_cache_text_encoder_outputs": True})
    assert sdxl.config.training.cache_text_encoder_outputs
    assert "sdxl_cache_text_encoder_outputs" not in {n.field for n in sdxl.notes}
    sd15 = convert_kohya_settings({"pretrained_model_name_or_path": "sd15", "sdxl_cache_text_encoder_outputs": True})
    assert not sd15.config.training.cache_text_encoder_outputs  # the SDXL tab is not read for SD 1.x

