"""Importing Kohya SS GUI .json configs: real-shaped files, each conversion rule, bad input, the CLI."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import SETTINGS, RunConfig, load_run_file, parse_nested
from engine.config.kohya_import import (
    NO_COUNTERPART,
    ImportResult,
    convert_kohya_settings,
    import_kohya_config,
    write_imported,
)
from tui_lora.commands.import_kohya import main_import_kohya
from engine.problems import ProblemError

DATA = Path(__file__).parent / "data" / "kohya"


def convert(**kohya):
    return convert_kohya_settings(kohya)


def notes_by_key(result: ImportResult) -> dict[str, str]:
    return {note.field: note.message for note in result.notes}


def validation_fields(result: ImportResult) -> set[str]:
    """Notes about the imported run itself (they name our settings, which all contain a dot)."""
    return {note.field for note in result.notes if note.field in SETTINGS}


# --- real-shaped configs --------------------------------------------------------------------------

def test_full_gui_lora_config_imports_every_value():
    result = import_kohya_config(DATA / "lora_sd15_full.json")
    cfg = result.config
    assert cfg.model.quick_pick == "sd15" and cfg.model.family == "sd1"
    assert (cfg.folders.images, cfg.folders.regularization) == ("/srv/lora/marisol/img", "/srv/lora/marisol/reg")
    assert (cfg.folders.output, cfg.folders.logging, cfg.folders.output_name) == (
        "/srv/lora/marisol/model", "/srv/lora/marisol/log", "marisol_v3")
    assert (cfg.network.type, cfg.network.rank, cfg.network.alpha) == ("lora", 32, 16.0)
    assert (cfg.network.dropout, cfg.network.rank_dropout, cfg.network.module_dropout) == (0.1, 0.1, 0.05)
    assert cfg.network.scale_weight_norms == 1.0
    assert (cfg.training.batch_size, cfg.training.epochs, cfg.training.save_every_n_epochs) == (2, 8, 2)
    assert cfg.training.max_resolution == [512, 768]
    assert (cfg.buckets.min_resolution, cfg.buckets.max_resolution) == (256, 1024)
    assert (cfg.training.mixed_precision, cfg.training.save_precision, cfg.training.seed) == ("bf16", "fp16", 1234)
    assert cfg.training.cache_latents and cfg.training.cache_latents_to_disk
    assert (cfg.training.clip_skip, cfg.training.max_token_length, cfg.training.min_snr_gamma) == (2, 150, 5.0)
    assert (cfg.training.noise_offset, cfg.training.prior_loss_weight, cfg.training.gradient_accumulation_steps) == (0.05, 0.8, 2)
    assert cfg.training.attention == "sdpa" and cfg.training.gradient_checkpointing
    assert (cfg.captions.shuffle, cfg.captions.keep_tokens, cfg.captions.dropout_rate, cfg.augment.flip) == (True, 1, 0.05, True)
    assert (cfg.optimizer.name, cfg.optimizer.scheduler, cfg.optimizer.num_cycles) == ("AdamW8bit", "cosine_with_restarts", 3)
    assert (cfg.optimizer.learning_rate, cfg.optimizer.unet_lr, cfg.optimizer.text_encoder_lr) == (1e-4, 1e-4, 5e-5)
    assert cfg.optimizer.warmup_percent == 5.0
    assert cfg.optimizer.extra_args == ["weight_decay=0.01", "betas=0.9,0.99"]
    assert cfg.sampling.prompts == [
        {"prompt": "photo of mrsl woman, smiling", "negative": "lowres, blurry", "width": 512, "height": 768,
         "seed": 42, "steps": 28, "cfg": 7.5},
        "mrsl woman in a garden",
    ]
    assert (cfg.sampling.every_n_epochs, cfg.sampling.sampler) == (2, "euler_a")
    assert (cfg.hardware.num_processes, cfg.hardware.gpu_ids) == (2, [0, 1])
    assert (cfg.metadata.title, cfg.metadata.author, cfg.metadata.license) == ("Marisol", "ana", "CC-BY-4.0")
    assert cfg.logging.log_with == "tensorboard" and cfg.folders.training_comment == "trigger: mrsl woman"
    # Everything at Kohya's defaults and every Flux/SD3-only key is dropped silently.
    assert set(notes_by_key(result)) == {"pretrained_model_name_or_path"}


def test_full_config_writes_a_run_file_that_loads_back_equal(tmp_path):
    result = import_kohya_config(DATA / "lora_sd15_full.json")
    path = write_imported(result, tmp_path / "run.yaml")
    loaded, _ = load_run_file(path)
    assert loaded == result.config
    assert path.read_text().startswith("# Imported from the Kohya SS GUI config")


def test_lycoris_locon_config_keeps_conv_layers_and_prodigy_args():
    result = import_kohya_config(DATA / "locon_lycoris_prodigy.json")
    cfg = result.config
    assert cfg.model.quick_pick == "sd21-768-v" and cfg.model.family == "sd2-v"
    assert (cfg.network.type, cfg.network.rank, cfg.network.alpha) == ("locon", 32, 16.0)
    assert (cfg.network.conv_rank, cfg.network.conv_alpha) == (16, 8.0)
    assert cfg.optimizer.name == "Prodigy" and cfg.optimizer.learning_rate == 1.0
    assert cfg.optimizer.extra_args == ["decouple=True", "weight_decay=0.01", "d_coef=2",
                                        "use_bias_correction=True", "safeguard_warmup=True"]
    assert (cfg.training.epochs, cfg.training.save_every_n_epochs, cfg.training.seed) == (10, 2, None)
    assert cfg.sampling.prompts == [{"prompt": "a lighthouse, watercolor", "negative": "photo", "width": 768, "height": 768}]
    assert cfg.sampling.every_n_steps == 200
    assert result.notes == []


def test_sdxl_config_picks_sdxl_base_and_validates_cleanly():
    result = import_kohya_config(DATA / "sdxl_lora.json")
    cfg = result.config
    assert cfg.model.quick_pick == "sdxl-base" and cfg.model.family == "sdxl" and cfg.model.path == "stabilityai/stable-diffusion-xl-base-1.0"
    assert cfg.training.max_resolution == [1024, 1024] and cfg.buckets.min_resolution == 512
    assert (cfg.optimizer.name, cfg.optimizer.scheduler) == ("Adafactor", "constant_with_warmup")
    assert cfg.optimizer.text_encoder_lr == 0.0 and cfg.optimizer.unet_lr == 3e-4
    assert cfg.training.save_every_n_epochs is None
    assert result.notes == []


def test_preset_without_folders_still_imports_with_only_the_folder_warning(tmp_path):
    result = import_kohya_config(DATA / "preset_loha_sdxl.json")
    cfg = result.config
    assert cfg.folders.images is None
    assert (cfg.network.type, cfg.network.rank, cfg.network.conv_rank, cfg.network.conv_alpha) == ("loha", 16, 8, 4.0)
    assert cfg.model.quick_pick == "sdxl-base"
    assert validation_fields(result) == {"folders.images"}
    (folder_note,) = [n for n in result.notes if n.field == "folders.images"]
    assert folder_note.severity == "warning" and "fix this before training" in folder_note.hint
    text = write_imported(result, tmp_path / "preset.yaml").read_text()
    assert yaml.safe_load(text)["network"]["type"] == "loha"


def test_old_gui_config_with_renamed_keys_and_text_numbers():
    result = import_kohya_config(DATA / "old_gui_lora.json")
    cfg = result.config
    assert cfg.network.weights == "/datasets/chibi/out/chibi_v1.safetensors"  # lora_network_weights
    assert cfg.training.stop_text_encoder_percent == 40.0  # stop_text_encoder_training_pct
    assert cfg.optimizer.name == "AdamW8bit"  # use_8bit_adam, from before the optimizer menu
    assert cfg.training.attention == "xformers"  # xformers: true
    assert (cfg.network.rank, cfg.network.alpha) == (64, 64.0)  # "64", alpha 0 = rank
    assert (cfg.training.epochs, cfg.training.seed, cfg.training.clip_skip, cfg.captions.keep_tokens) == (6, 31337, 2, 1)
    assert cfg.training.max_resolution == [512, 512]  # "512"
    assert (cfg.model.quick_pick, cfg.model.path) == ("custom", "/models/anything-v4.safetensors")
    assert set(notes_by_key(result)) >= {"network_alpha", "text_encoder_lr", "caption_extension", "lr_warmup"}
    assert cfg.training.max_data_loader_n_workers == 1  # "1"
    # Its text encoder is not trained (empty rate beside a UNet rate), so the stop percentage does nothing.
    assert "stop_text_encoder_training" not in notes_by_key(result)
    assert "training.stop_text_encoder_percent" in validation_fields(result)


# --- conversion rules --------------------------------------------------------------------------

@pytest.mark.parametrize("kohya, ours", [
    ("Standard", "lora"), ("Kohya LoCon", "locon"), ("LyCORIS/LoCon", "locon"), ("LoCon", "locon"),
    ("LyCORIS/LoHa", "loha"), ("LyCORIS/LoKr", "lokr"), ("Kohya DyLoRA", "dylora"),
])
def test_lora_type_names_map_to_network_types(kohya, ours):
    result = convert(LoRA_type=kohya, network_dim=8, conv_dim=4, conv_alpha=2)
    assert result.config.network.type == ours
    assert "LoRA_type" not in notes_by_key(result)


@pytest.mark.parametrize("kohya, ours", [("LoRA-FA", "lora"), ("LyCORIS/GLoRA", "locon")])
def test_close_relative_network_types_fall_back_with_a_warning(kohya, ours):
    result = convert(LoRA_type=kohya, network_dim=8, conv_dim=4, conv_alpha=2)
    assert result.config.network.type == ours
    assert "not supported" in notes_by_key(result)["LoRA_type"]


@pytest.mark.parametrize("kohya", ["LyCORIS/iA3", "LyCORIS/Diag-OFT", "LyCORIS/BOFT", "LyCORIS/Native Fine-Tuning",
                                   "Mystery Net", 7])
def test_network_types_without_counterpart_are_refused(kohya):
    with pytest.raises(ProblemError) as info:
        convert(LoRA_type=kohya)
    (problem,) = info.value.errors
    assert problem.field == "LoRA_type" and "Standard" in problem.hint


def test_a_config_with_two_model_family_switches_is_refused():
    with pytest.raises(ProblemError) as info:
        convert(flux1_checkbox=True, sd3_checkbox=True)
    assert {p.field for p in info.value.errors} == {"sd3_checkbox"}
    assert "both on" in info.value.errors[0].message


def test_numbers_stored_as_text_are_parsed():
    cfg = convert(network_dim="16", network_alpha="8", learning_rate="1e-4", unet_lr="0.0002",
                  text_encoder_lr="0.00005", train_batch_size="4", epoch="3", lr_warmup="7").config
    assert (cfg.network.rank, cfg.network.alpha, cfg.training.batch_size, cfg.training.epochs) == (16, 8.0, 4, 3)
    assert (cfg.optimizer.learning_rate, cfg.optimizer.unet_lr, cfg.optimizer.text_encoder_lr) == (1e-4, 2e-4, 5e-5)
    assert cfg.optimizer.warmup_percent == 7.0


def test_empty_text_means_empty_and_zero_means_off():
    cfg = convert(seed="", max_train_epochs="", save_every_n_epochs=0, min_snr_gamma=0, sample_every_n_steps=0,
                  reg_data_dir="", logging_dir="", network_weights="", clip_skip=0, gpu_ids="").config
    assert cfg.training.seed is None and cfg.training.max_train_epochs is None
    assert cfg.training.save_every_n_epochs is None and cfg.training.min_snr_gamma is None
    assert cfg.sampling.every_n_steps is None and cfg.training.clip_skip == 1
    assert cfg.folders.regularization is None and cfg.network.weights is None and cfg.hardware.gpu_ids == []


@pytest.mark.parametrize("text, pair", [("512,768", [512, 768]), ("1024", [1024, 1024]), (640, [640, 640]),
                                        ("768x512", [768, 512])])
def test_max_resolution_text_becomes_a_pair(text, pair):
    assert convert(max_resolution=text).config.training.max_resolution == pair


def test_unusable_value_keeps_the_default_and_names_the_key():
    result = convert(bucket_reso_steps=-4, network_dim=100000, LoRA_type="LyCORIS/LoKr")
    assert result.config.buckets.step == 64 and result.config.network.rank == 8
    notes = notes_by_key(result)
    assert "bucket_reso_steps" in notes and "default is kept" in notes["bucket_reso_steps"]
    assert any(n.field == "network_dim" and "LoKr" in n.message for n in result.notes)


def test_network_alpha_zero_means_alpha_equals_rank():
    result = convert(network_dim=24, network_alpha=0)
    assert result.config.network.alpha == 24.0
    assert "alpha = rank" in notes_by_key(result)["network_alpha"]


def test_conv_zero_follows_lycoris_and_kohya_locon_meanings():
    lycoris = convert(LoRA_type="LyCORIS/LoCon", network_dim=16, network_alpha=4, conv_dim=0, conv_alpha=0).config
    assert (lycoris.network.conv_rank, lycoris.network.conv_alpha) == (16, 4.0)
    kohya = convert(LoRA_type="Kohya LoCon", network_dim=16, conv_dim=8, conv_alpha=0).config
    assert (kohya.network.type, kohya.network.conv_rank, kohya.network.conv_alpha) == ("locon", 8, 8.0)
    no_conv = convert(LoRA_type="Kohya LoCon", network_dim=16, conv_dim=0)
    assert no_conv.config.network.type == "lora" and "conv_dim" in notes_by_key(no_conv)


def test_standard_lora_ignores_conv_settings_like_kohya_does():
    result = convert(LoRA_type="Standard", conv_dim=32, conv_alpha=64)
    assert result.config.network.conv_rank == 1
    assert not {"conv_dim", "conv_alpha"} & set(notes_by_key(result))


@pytest.mark.parametrize("kohya, ours, noted", [
    ("AdamW", "AdamW", False), ("adamw8bit", "AdamW8bit", False), ("PagedAdamW8bit", "PagedAdamW8bit", False),
    ("Lion8bit", "Lion8bit", False), ("DAdaptation", "DAdaptation", False), ("DAdaptAdamPreprint", "DAdaptAdamPreprint", False),
    ("Prodigy", "Prodigy", False), ("SGDNesterov", "SGDNesterov", False), ("PagedAdamW32bit", "AdamW", True),
    ("PagedLion8bit", "Lion8bit", True), ("SGDNesterov8bit", "SGDNesterov", True), ("DAdaptAdan", "DAdaptAdam", True),
])
def test_optimizer_names_map_onto_ours(kohya, ours, noted):
    result = convert(optimizer=kohya, learning_rate=1.0 if "Adapt" in kohya or kohya == "Prodigy" else 1e-4)
    assert result.config.optimizer.name == ours
    assert ("optimizer" in notes_by_key(result)) == noted


def test_unknown_optimizer_is_noted_and_a_high_rate_is_flagged():
    result = convert(optimizer="came_pytorch.CAME", learning_rate=1.0)
    assert result.config.optimizer.name == "AdamW8bit"
    notes = notes_by_key(result)
    assert "CAME" in notes["optimizer"] and "learning_rate" in notes


def test_config_without_optimizer_key_used_adamw_in_kohya():
    assert convert(learning_rate=1e-4).config.optimizer.name == "AdamW"
    assert convert(use_8bit_adam=True).config.optimizer.name == "AdamW8bit"


def test_optimizer_args_text_becomes_a_list_and_bad_items_are_named():
    result = convert(optimizer="AdamW", optimizer_args='"weight_decay=0.1" betas=0.9,0.999 nonsense')
    assert result.config.optimizer.extra_args == ["weight_decay=0.1", "betas=0.9,0.999"]
    assert "'nonsense'" in notes_by_key(result)["optimizer_args"]


def test_adafactor_without_relative_step_false_uses_its_own_schedule():
    result = convert(optimizer="Adafactor", lr_scheduler="cosine", optimizer_args="scale_parameter=False")
    assert result.config.optimizer.scheduler == "adafactor"
    assert "relative_step" in notes_by_key(result)["lr_scheduler"]


@pytest.mark.parametrize("kohya", ["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts",
                                   "polynomial", "adafactor"])
def test_scheduler_names_are_kept(kohya):
    result = convert(lr_scheduler=kohya, lr_warmup=0, optimizer="Adafactor" if kohya == "adafactor" else "AdamW",
                     optimizer_args="relative_step=False")
    assert result.config.optimizer.scheduler == kohya and "lr_scheduler" not in notes_by_key(result)


def test_unknown_scheduler_and_scheduler_args_are_noted_and_step_rules_kept():
    result = convert(lr_scheduler="warmup_stable_decay")
    assert result.config.optimizer.scheduler == "cosine" and "warmup_stable_decay" in notes_by_key(result)["lr_scheduler"]
    result = convert(lr_scheduler="piecewise_constant", lr_scheduler_args="step_rules=1:100,0.5:200,0.1 gamma=0.1")
    assert result.config.optimizer.step_rules == "1:100,0.5:200,0.1"
    assert "gamma=0.1" in notes_by_key(result)["lr_scheduler_args"]


def test_lr_warmup_is_a_percentage_and_empty_means_zero():
    assert convert(lr_warmup=15, lr_scheduler="cosine").config.optimizer.warmup_percent == 15.0
    assert convert(lr_warmup="", lr_scheduler="cosine").config.optimizer.warmup_percent == 0.0
    result = convert(lr_warmup=10, lr_scheduler="constant")
    assert result.config.optimizer.warmup_percent == 0.0 and "lr_warmup" in notes_by_key(result)


@pytest.mark.parametrize("unet, te, expect_unet, expect_te", [
    (1e-4, 5e-5, 1e-4, 5e-5),
    (1e-4, 0, 1e-4, 0.0),  # Kohya: UNet only
    (0, 0, None, None),  # Kohya: both at learning_rate
    ("", "", None, None),
    (1e-4, "", 1e-4, 0.0),
    (0, 5e-5, 0.0, 5e-5),  # Kohya: text encoder only
])
def test_learning_rates_follow_kohyas_zero_meanings(unet, te, expect_unet, expect_te):
    cfg = convert(learning_rate=2e-4, unet_lr=unet, text_encoder_lr=te).config
    assert (cfg.optimizer.unet_lr, cfg.optimizer.text_encoder_lr) == (expect_unet, expect_te)
    assert cfg.optimizer.learning_rate == 2e-4


def test_cache_latents_to_disk_implies_cache_latents():
    result = convert(cache_latents=False, cache_latents_to_disk=True)
    assert result.config.training.cache_latents and result.config.training.cache_latents_to_disk
    assert "cache_latents" in notes_by_key(result)


def test_max_train_epochs_replaces_epoch_and_max_train_steps_is_imported_unless_it_is_ignored():
    result = convert(epoch=4, max_train_epochs="12")
    assert result.config.training.epochs == 12 and result.config.training.max_train_epochs is None
    assert "replaces epoch" in notes_by_key(result)["max_train_epochs"]
    result = convert(epoch=4, max_train_steps=1600)
    assert result.config.training.epochs == 4 and result.config.training.max_train_steps == 1600
    assert "max_train_steps" not in notes_by_key(result)
    assert convert(epoch=4, max_train_steps=0).config.training.max_train_steps is None  # Kohya's 0 = off
    result = convert(epoch=4, max_train_epochs=3, max_train_steps=1600)  # sd-scripts: the epochs win
    assert result.config.training.max_train_steps is None and "ignores" in notes_by_key(result)["max_train_steps"]


def test_stop_text_encoder_training_warns_that_it_now_takes_effect():
    result = convert(stop_text_encoder_training=30, text_encoder_lr=5e-5, unet_lr=1e-4)
    assert result.config.training.stop_text_encoder_percent == 30.0
    assert "ignores this" in notes_by_key(result)["stop_text_encoder_training"]


@pytest.mark.parametrize("value, attention, noted", [
    ("xformers", "xformers", False), ("sdpa", "sdpa", False), ("none", "sdpa", True), (True, "xformers", False),
    (False, "sdpa", True), ("flash", "sdpa", True),
])
def test_xformers_values_become_an_attention_backend(value, attention, noted):
    result = convert(xformers=value)
    assert result.config.training.attention == attention
    assert ("xformers" in notes_by_key(result)) == noted


def test_sample_prompt_lines_with_kohya_options_become_prompt_entries():
    text = ("a cat --n dog, blurry --W 640 --h 512 --d 7 --s 20 --l 6\n#comment\n\n"
            "plain prompt\na fox --ss k_euler --d nope\n")
    result = convert(sample_prompts=text, sample_sampler="dpmsolver++")
    assert result.config.sampling.prompts == [
        {"prompt": "a cat", "negative": "dog, blurry", "width": 640, "height": 512, "seed": 7, "steps": 20, "cfg": 6.0},
        "plain prompt",
        "a fox",
    ]
    assert result.config.sampling.sampler == "dpmpp_2m"
    messages = [n.message for n in result.notes if n.field == "sample_prompts"]
    assert any("--ss" in m for m in messages) and any("--d" in m for m in messages)


def test_model_list_and_hub_ids_become_quick_picks():
    assert convert(model_list="stabilityai/stable-diffusion-2-1-base").config.model.quick_pick == "sd21-base"
    assert convert(model_list="sdxl-base").config.model.quick_pick == "sdxl-base"
    assert convert(pretrained_model_name_or_path="stabilityai/stable-diffusion-2-1", model_list="custom",
                   v2=True, v_parameterization=True).config.model.quick_pick == "sd21-768-v"
    result = convert(pretrained_model_name_or_path="stabilityai/stable-diffusion-xl-base-1.0", sdxl=False)
    assert result.config.model.family == "sdxl" and "SDXL" in notes_by_key(result)["sdxl"]


def test_custom_model_keeps_its_path_and_family_flags():
    cfg = convert(pretrained_model_name_or_path="/models/illustrious.safetensors", sdxl=True, model_list="custom").config
    assert (cfg.model.quick_pick, cfg.model.path, cfg.model.family) == (
        "custom", "/models/illustrious.safetensors", "sdxl")  # the old sdxl checkbox, read once as the family
    cfg = convert(pretrained_model_name_or_path="stabilityai/stable-diffusion-2").config
    assert cfg.model.family == "sd2-v"


def test_file_without_model_picks_one_matching_its_flags():
    result = convert(v2=True, v_parameterization=False)
    assert result.config.model.quick_pick == "sd21-base"
    assert "no base model" in notes_by_key(result)["pretrained_model_name_or_path"]


def test_precision_processes_gpus_and_metadata_are_copied():
    cfg = convert(mixed_precision="no", save_precision="float", num_processes="2", gpu_ids="0, 1",
                  metadata_title="T", metadata_author="A", metadata_description="D", metadata_license="L",
                  metadata_tags="x, y", save_model_as="diffusers").config
    assert (cfg.training.mixed_precision, cfg.training.save_precision) == ("no", "float")
    assert (cfg.hardware.num_processes, cfg.hardware.gpu_ids) == (2, [0, 1])
    assert (cfg.metadata.title, cfg.metadata.author, cfg.metadata.description, cfg.metadata.license,
            cfg.metadata.tags) == ("T", "A", "D", "L", "x, y")
    assert cfg.model.save_as == "safetensors"


def test_empty_caption_extension_means_dot_caption():
    result = convert(caption_extension="")
    assert result.config.training.caption_extension == ".caption" and "caption_extension" in notes_by_key(result)


def test_unknown_keys_are_each_listed():
    result = convert(fancy_new_option=3, another_one="", LoRA_type="Standard")
    notes = notes_by_key(result)
    assert "3" in notes["fancy_new_option"] and "another_one" in notes


def test_features_without_counterpart_are_named_only_when_set():
    at_default = convert(**{key: default for key, (default, _, _) in NO_COUNTERPART.items()})
    assert not set(notes_by_key(at_default)) & set(NO_COUNTERPART)
    result = convert(color_aug=True, huggingface_token="hf_secret", masked_loss=True, use_scalar=True)
    notes = notes_by_key(result)
    assert "colour augmentation" in notes["color_aug"] and "true was not imported" in notes["masked_loss"]
    assert "hf_secret" not in notes["huggingface_token"]
    assert "use_scalar" not in notes  # LyCORIS option on a Standard LoRA: Kohya ignores it too
    assert "use_scalar" in notes_by_key(convert(LoRA_type="LyCORIS/LoHa", use_scalar=True))


def test_windows_paths_are_pointed_out():
    result = convert(train_data_dir="D:\\lora\\img", output_dir="/ok")
    assert "Windows" in notes_by_key(result)["train_data_dir"] and "output_dir" not in notes_by_key(result)


def test_validation_errors_of_the_result_become_warnings():
    result = convert(train_data_dir="imgs", random_crop=True, cache_latents=True)
    note = next(n for n in result.notes if n.field == "augment.random_crop")
    assert note.severity == "warning" and "fix this before training" in note.hint


# --- unreadable input ---------------------------------------------------------------------------

@pytest.mark.parametrize("content, words", [
    (None, "not found"), (b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"),
    (b"\xff\xfe{\x00}\x00", "UTF-8"), ("folder", "folder"), (b"{\"a\": " + b" " * 5_000_001 + b"1}", "larger than"),
], ids=["missing", "not-json", "not-object", "not-utf8", "folder", "huge"])
def test_unreadable_input_names_the_file_and_writes_nothing(tmp_path, capsys, content, words):
    source = tmp_path / "config.json"
    if content == "folder":
        source.mkdir()
    elif content is not None:
        source.write_bytes(content)
    with pytest.raises(ProblemError) as info:
        import_kohya_config(source)
    assert str(source) in info.value.errors[0].field and words in info.value.errors[0].message
    out = tmp_path / "run.yaml"
    assert main_import_kohya([str(source), "-o", str(out)]) == 2
    assert not out.exists() and words in capsys.readouterr().err


def test_refused_config_exits_1_and_writes_nothing(tmp_path, capsys):
    source = tmp_path / "ia3.json"
    source.write_text(json.dumps({"LoRA_type": "LyCORIS/iA3"}))
    out = tmp_path / "run.yaml"
    assert main_import_kohya([str(source), "-o", str(out)]) == 1
    assert not out.exists() and "error: LoRA_type:" in capsys.readouterr().err


# --- the command ------------------------------------------------------------------------------

def test_cli_prints_warnings_and_the_written_path(tmp_path, capsys):
    out = tmp_path / "run.yaml"
    assert main_import_kohya([str(DATA / "preset_loha_sdxl.json"), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert str(out) in captured.out
    assert "warning: pretrained_model_name_or_path: " in captured.err and "warning: folders.images: " in captured.err
    assert yaml.safe_load(out.read_text())["network"]["type"] == "loha"


def test_existing_output_is_not_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "run.yaml"
    out.write_text("mine\n")
    assert main_import_kohya([str(DATA / "sdxl_lora.json"), "-o", str(out)]) == 1
    assert out.read_text() == "mine\n" and "--force" in capsys.readouterr().err
    assert main_import_kohya([str(DATA / "sdxl_lora.json"), "-o", str(out), "--force"]) == 0
    assert load_run_file(out)[0].model.quick_pick == "sdxl-base"


def test_cli_accepts_the_parsed_namespace_of_tui_lora(tmp_path):
    import argparse

    out = tmp_path / "run.yaml"
    args = argparse.Namespace(config=str(DATA / "sdxl_lora.json"), output=str(out), force=False)
    assert main_import_kohya(args) == 0 and out.exists()


# --- any JSON object: a result or a ProblemError ----------------------------------------------

_REAL_KEYS = sorted(set(SETTINGS.by_kohya_key()) | set(NO_COUNTERPART) | {
    "lora_network_weights", "stop_text_encoder_training_pct", "use_8bit_adam", "use_wandb", "max_train_steps",
    "flux1_checkbox", "sd3_checkbox", "optimizer_args", "lr_scheduler_args", "sample_prompts", "xformers"})
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**30, max_value=10**30) | st.floats() | st.text(max_size=30)
    | st.sampled_from(["", "0", "1e-4", "8", "512,512", "true", "Standard", "LyCORIS/LoKr", "a --n b --w 64", "k=v x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_REAL_KEYS) | st.text(max_size=12), _JSON, max_size=12))
def test_any_json_object_gives_a_result_or_a_problem_error(document):
    text = json.dumps(document)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "config.json"
        source.write_text(text, encoding="utf-8")
        try:
            result = import_kohya_config(source)
        except ProblemError as exc:
            assert exc.errors
            return
        assert all(note.severity == "warning" and note.field for note in result.notes)
        written = write_imported(result, Path(folder) / "run.yaml")
        reread = yaml.safe_load(written.read_text(encoding="utf-8"))
        values, problems = parse_nested(reread)  # every imported value has the schema's type
        assert [p for p in problems if p.field != "folders.images"] == []
        assert RunConfig(values) == result.config
