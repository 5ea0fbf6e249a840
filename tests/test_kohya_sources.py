"""Importing what sd-scripts users have: a --config_file TOML, a --dataset_config TOML, a saved
command line, sd-scripts options in a .json, and refusing what is not a LoRA config.

The fixtures in tests/data/kohya/ are written from sd-scripts' documented option names the way
people write them (grouped TOML tables, `accelerate launch … \\` lines, quoted optimizer args).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_run_file
from engine.kohya import dataset_config
from engine.kohya.sources import COMMAND, CONFIG_TOML, DATASET_TOML, GUI_JSON, SCRIPT_JSON, import_kohya_file, read_source
from engine.problems import ProblemError
from tui_lora.cli import main

DATA = Path(__file__).parent / "data" / "kohya"


def notes(result) -> dict[str, str]:
    return {note.field: note.message for note in result.notes}


def dropped(result) -> list[str]:
    """Notes saying a value from the file was not imported."""
    return [str(note) for note in result.notes if "not imported" in note.message]


@pytest.mark.parametrize("name, kind", [
    ("sdscripts_config.toml", CONFIG_TOML), ("dataset_two_subsets.toml", DATASET_TOML), ("flux_train.sh", COMMAND),
    ("sdxl_train.txt", COMMAND), ("sdscripts_options.json", SCRIPT_JSON), ("lora_sd15_full.json", GUI_JSON),
])
def test_each_kind_of_file_is_recognised(name, kind):
    assert read_source(DATA / name).kind == kind


def test_sd_scripts_config_toml_imports_every_option():
    result = import_kohya_file(DATA / "sdscripts_config.toml")
    cfg = result.config
    assert result.kind == "sd-scripts --config_file TOML"
    # the file does not say which script runs it: the model file names its family when training starts
    assert (cfg.model.quick_pick, cfg.model.path, cfg.model.family) == (
        "custom", "/models/sd15/v1-5-pruned-emaonly.safetensors", "auto")
    assert "does not name its sd-scripts script" in notes(result)["model.family"]
    # networks.lora with conv_dim in network_args is Kohya's LoCon
    assert (cfg.network.type, cfg.network.rank, cfg.network.alpha, cfg.network.conv_rank, cfg.network.conv_alpha) == (
        "locon", 32, 16.0, 8, 4.0)
    assert (cfg.optimizer.name, cfg.optimizer.learning_rate, cfg.optimizer.unet_lr, cfg.optimizer.text_encoder_lr) == (
        "AdamW8bit", 1e-4, 1e-4, 5e-5)
    assert cfg.optimizer.extra_args == ["weight_decay=0.01", "betas=0.9,0.99"]
    # lr_warmup_steps 0.05 is a share of the steps in sd-scripts
    assert (cfg.optimizer.scheduler, cfg.optimizer.num_cycles, cfg.optimizer.warmup_percent) == ("cosine_with_restarts", 3, 5.0)
    assert (cfg.training.max_resolution, cfg.training.epochs, cfg.training.batch_size) == ([768, 768], 10, 2)
    assert (cfg.buckets.enabled, cfg.buckets.min_resolution, cfg.buckets.max_resolution) == (True, 320, 1280)
    assert (cfg.training.caption_extension, cfg.captions.shuffle, cfg.captions.keep_tokens) == (".txt", True, 1)
    assert (cfg.training.clip_skip, cfg.training.max_token_length, cfg.training.attention) == (2, 225, "xformers")
    assert (cfg.training.noise_offset, cfg.training.min_snr_gamma, cfg.training.seed) == (0.05, 5.0, 42)
    assert (cfg.folders.output, cfg.folders.output_name, cfg.folders.logging, cfg.logging.log_prefix) == (
        "/out/ayaka", "ayaka_v2", "/out/ayaka/logs", "ayaka")
    assert (cfg.sampling.every_n_epochs, cfg.sampling.sampler) == (2, "euler_a")
    assert dropped(result) == []


def test_options_left_out_take_sd_scripts_defaults_not_the_guis():
    """A config that leaves options out trains as sd-scripts would: constant schedule, no buckets,
    .caption files, AdamW, 1600 steps."""
    result = import_kohya_file(DATA / "sdxl_train.txt")
    cfg = result.config
    assert cfg.training.max_train_steps == 2000 and cfg.optimizer.scheduler == "constant_with_warmup"
    minimal = DATA.parent / "kohya_minimal.toml"
    try:
        minimal.write_text('pretrained_model_name_or_path = "/m/sd15.safetensors"\ntrain_data_dir = "/d"\n'
                           'network_module = "networks.lora"\n')
        cfg = import_kohya_file(minimal).config
    finally:
        minimal.unlink()
    assert (cfg.optimizer.name, cfg.optimizer.scheduler, cfg.optimizer.warmup_percent) == ("AdamW", "constant", 0.0)
    assert (cfg.optimizer.learning_rate, cfg.network.rank, cfg.network.alpha) == (2e-6, 4, 1.0)
    assert (cfg.buckets.enabled, cfg.training.caption_extension, cfg.training.max_train_steps) == (False, ".caption", 1600)
    assert cfg.training.cache_latents is False and cfg.training.mixed_precision == "no"


def test_command_line_flags_override_its_config_file_read_beside_the_command():
    result = import_kohya_file(DATA / "sd15_with_config.sh")
    cfg = result.config
    assert result.kind == "sd-scripts command line"
    assert (cfg.optimizer.learning_rate, cfg.optimizer.unet_lr, cfg.network.rank) == (2e-4, 2e-4, 64)
    assert (cfg.network.alpha, cfg.training.epochs, cfg.folders.output_name) == (16.0, 10, "ayaka_v2")  # from the TOML
    assert (cfg.hardware.num_processes, cfg.hardware.gpu_ids) == (2, [0, 1])  # accelerate launch's options


def test_flux_command_line_imports_as_flux1_with_its_companions_and_flux_options():
    result = import_kohya_file(DATA / "flux_train.sh")
    cfg = result.config
    assert (cfg.model.family, cfg.model.path) == ("flux1", "/models/flux/flux1-dev.safetensors")
    assert (cfg.model.clip_l, cfg.model.t5xxl, cfg.model.ae) == (
        "/models/clip/clip_l.safetensors", "/models/clip/t5xxl_fp16.safetensors", "/models/vae/ae.safetensors")
    assert cfg.training.fp8_base and cfg.training.cache_text_encoder_outputs_to_disk
    assert (cfg.flux.guidance_scale, cfg.flux.timestep_sampling, cfg.flux.discrete_flow_shift) == (1.0, "shift", 3.1582)
    assert (cfg.flux.model_prediction_type, cfg.flux.apply_t5_attn_mask, cfg.flux.t5xxl_max_token_length) == ("raw", True, 512)
    assert (cfg.network.type, cfg.network.rank, cfg.optimizer.text_encoder_lr) == ("lora", 16, 0.0)  # unet only
    assert (cfg.training.epochs, cfg.training.cpu_threads_per_process) == (16, 1)
    # --dataset_config is read beside the command file: its two subsets are the two folders
    assert (cfg.folders.images, cfg.folders.regularization, cfg.training.batch_size) == (
        "/data/ayaka/img", "/data/ayaka/reg", 4)
    said = notes(result)
    for key in ("noise_offset", "min_snr_gamma"):  # sd-scripts' Flux trainer ignores them: said, not silent
        assert "ignored by sd-scripts' FLUX.1 trainer too" in said[key]


def test_flux_sd_scripts_json_is_flux1_not_sd1():
    result = import_kohya_file(DATA / "flux_sdscripts.json")
    cfg = result.config
    assert result.kind == "sd-scripts options (JSON)"
    assert (cfg.model.family, cfg.model.clip_l, cfg.model.ae) == (
        "flux1", "/models/clip/clip_l.safetensors", "/models/vae/ae.safetensors")
    assert (cfg.flux.guidance_scale, cfg.flux.apply_t5_attn_mask, cfg.flux.timestep_sampling) == (1.0, True, "sigmoid")
    assert cfg.training.epochs == 12 and cfg.training.max_resolution == [1024, 1024]
    said = notes(result)
    assert all("FLUX.1 trainer too" in said[key] for key in ("noise_offset", "min_snr_gamma", "max_token_length"))


def test_sd_scripts_json_is_read_with_sd_scripts_names():
    result = import_kohya_file(DATA / "sdscripts_options.json")
    cfg = result.config
    assert (cfg.training.max_resolution, cfg.training.epochs) == ([768, 768], 10)
    assert (cfg.optimizer.name, cfg.optimizer.warmup_percent, cfg.optimizer.scheduler) == ("Prodigy", 10.0, "cosine")
    assert (cfg.network.type, cfg.network.rank, cfg.network.conv_rank, cfg.network.conv_alpha) == ("loha", 16, 4, 2.0)
    assert "d_coef=2" in cfg.optimizer.extra_args and cfg.training.save_every_n_epochs == 5
    assert dropped(result) == [] and not any("is not a Kohya LoRA setting" in str(n) for n in result.notes)


def test_sdxl_command_line_selects_sdxl_and_unquotes_the_optimizer_argument():
    cfg = import_kohya_file(DATA / "sdxl_train.txt").config
    assert (cfg.model.family, cfg.model.quick_pick) == ("sdxl", "sdxl-base")
    assert cfg.optimizer.name == "Lion8bit"
    assert cfg.optimizer.extra_args == ["betas=0.95,0.98", "weight_decay=0.015"]  # the shell's quotes are gone
    assert (cfg.optimizer.warmup_percent, cfg.optimizer.text_encoder_lr) == (5.0, 0.0)  # 100 of 2000 steps
    assert (cfg.training.attention, cfg.buckets.enabled) == ("xformers", True)


def test_gui_json_quoted_optimizer_argument_is_unquoted(tmp_path):
    source = tmp_path / "lion.json"
    source.write_text(json.dumps({"LoRA_type": "Standard", "optimizer": "Lion8bit",
                                  "optimizer_args": "betas='0.95,0.98' weight_decay=0.01"}))
    assert import_kohya_file(source).config.optimizer.extra_args == ["betas=0.95,0.98", "weight_decay=0.01"]


def test_dataset_toml_subsets_become_concept_folders_and_differences_are_named():
    result = import_kohya_file(DATA / "dataset_two_subsets.toml")
    cfg = result.config
    assert result.kind == "sd-scripts --dataset_config TOML"
    assert (cfg.folders.images, cfg.folders.regularization) == ("/data/ayaka/img", "/data/ayaka/reg")
    assert (cfg.training.max_resolution, cfg.training.batch_size, cfg.buckets.max_resolution) == ([1024, 1024], 4, 2048)
    assert (cfg.buckets.enabled, cfg.buckets.no_upscale, cfg.training.caption_extension) == (True, True, ".txt")
    # values every subset shares are the run's; the training subset's keep_tokens is the run's too
    assert (cfg.augment.flip, cfg.captions.keep_tokens) == (True, 1)
    # each subset's own values (the regularisation subset's keep_tokens 0) land in the per-folder setting
    subsets = cfg.values["dataset.subsets"]
    assert [(s["image_dir"], s["num_repeats"], s["is_reg"], s["keep_tokens"]) for s in subsets] == [
        ("/data/ayaka/img/10_ayaka woman", 10, False, 1), ("/data/ayaka/reg/1_woman", 1, True, 0)]
    assert not [field for field in notes(result) if field.startswith("subset ")]  # kept, so not warned about


def test_subsets_land_in_the_per_folder_setting_once_it_exists(monkeypatch):
    from engine.kohya.toml_config import read_toml

    monkeypatch.setattr(dataset_config, "SETTINGS", {dataset_config.SUBSETS_SETTING})
    read = dataset_config.read_dataset_config(read_toml(DATA / "dataset_two_subsets.toml"), "d.toml")
    subsets = read.values["dataset.subsets"]
    assert [(s["image_dir"], s["num_repeats"], s["is_reg"], s["keep_tokens"]) for s in subsets] == [
        ("/data/ayaka/img/10_ayaka woman", 10, False, 1), ("/data/ayaka/reg/1_woman", 1, True, 0)]
    assert not [n for n in read.notes if n.field.startswith("subset ")]  # kept, so not warned about


def test_a_subset_whose_folder_name_does_not_carry_its_repeats_keeps_them_per_folder(tmp_path):
    source = tmp_path / "ds.toml"
    source.write_text('[[datasets]]\n[[datasets.subsets]]\nimage_dir = "/data/cat/images"\nnum_repeats = 12\n')
    result = import_kohya_file(source)
    assert [(s["image_dir"], s["num_repeats"]) for s in result.config.values["dataset.subsets"]] == [("/data/cat/images", 12)]
    assert "subset 'images' num_repeats" not in notes(result)


@pytest.mark.parametrize("text, words", [
    ("accelerate launch lumina_train_network.py --pretrained_model_name_or_path l.safetensors", "Lumina Image 2.0 LoRAs"),
    ("accelerate launch train_db.py --pretrained_model_name_or_path x", "DreamBooth"),
    ("python sdxl_train_textual_inversion.py --token_string tok", "textual inversion"),
    ("accelerate launch train_network.py --network_module networks.oft", "networks.oft"),
    ("accelerate launch train_network.py --network_module lycoris.kohya --network_args algo=ia3", "iA3"),
    ("accelerate launch my_trainer.py --lr 1", "not an sd-scripts LoRA script"),
])
def test_commands_that_do_not_train_a_lora_tui_lora_can_train_are_refused(tmp_path, text, words):
    source = tmp_path / "cmd.sh"
    source.write_text(text + "\n")
    with pytest.raises(ProblemError) as info:
        import_kohya_file(source)
    assert words in str(info.value)
    assert "LoRA_type" not in str(info.value)  # a GUI key would mean nothing to an sd-scripts user


def test_dreambooth_tab_config_is_refused_with_what_to_do(tmp_path, capsys):
    out = tmp_path / "run.yaml"
    assert main(["import-kohya", str(DATA / "dreambooth_gui.json"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "DreamBooth" in err and "not a LoRA" in err and "LoRA tab" in err and not out.exists()


def test_textual_inversion_sd_scripts_options_are_refused(tmp_path):
    source = tmp_path / "ti.toml"
    source.write_text('pretrained_model_name_or_path = "x"\ntoken_string = "mychar"\ninit_word = "girl"\n')
    with pytest.raises(ProblemError, match="textual inversion"):
        import_kohya_file(source)


def test_cli_says_what_it_read_and_writes_a_run_file_that_loads(tmp_path, capsys):
    out = tmp_path / "run.yaml"
    assert main(["import-kohya", str(DATA / "sdxl_train.txt"), "-o", str(out)]) == 0
    assert "as sd-scripts command line" in capsys.readouterr().out
    assert out.read_text().startswith("# Imported from the sd-scripts command line")
    cfg, _ = load_run_file(out)
    assert cfg.model.family == "sdxl" and cfg.optimizer.extra_args == ["betas=0.95,0.98", "weight_decay=0.015"]


def test_a_file_that_is_no_kohya_kind_exits_2(tmp_path, capsys):
    source = tmp_path / "notes.txt"
    source.write_text("remember to buy = milk = eggs\n")
    assert main(["import-kohya", str(source), "-o", str(tmp_path / "r.yaml")]) == 2
    assert "is not a Kohya GUI .json, an sd-scripts .toml, or a command line" in capsys.readouterr().err


def test_a_missing_dataset_config_named_by_a_command_is_named(tmp_path):
    source = tmp_path / "cmd.sh"
    source.write_text("accelerate launch train_network.py --dataset_config nowhere.toml\n")
    with pytest.raises(ProblemError) as info:
        import_kohya_file(source)
    assert "nowhere.toml" in info.value.errors[0].field and "not found" in info.value.errors[0].message


def test_offset_and_multires_noise_both_reach_the_run_as_sd_scripts_adds_both(tmp_path):
    source = tmp_path / "noise.toml"
    source.write_text('network_module = "networks.lora"\nnoise_offset = 0.05\nmultires_noise_iterations = 6\n'
                      'multires_noise_discount = 0.4\n')
    result = import_kohya_file(source)
    cfg = result.config
    assert (cfg.training.noise_offset, cfg.training.multires_noise_iterations, cfg.training.multires_noise_discount) == (
        0.05, 6, 0.4)
    assert "noise_offset" not in notes(result)


@pytest.mark.parametrize("name, content, words", [
    ("ft.toml", '[[datasets]]\n[[datasets.subsets]]\nimage_dir = "/d"\nmetadata_file = "/d/meta.json"\n',
     "fine-tuning dataset"),
    ("ft.json", json.dumps({"train_dir": "/x", "image_folder": "/x/img", "caption_metadata_filename": "meta_cap.json",
                            "dataset_repeats": "40", "learning_rate": 1e-5}), "Finetune tab"),
    ("ti.json", json.dumps({"token_string": "mychar", "init_word": "*", "num_vectors_per_token": 8,
                            "learning_rate": 1e-4}), "Textual Inversion tab"),
])
def test_other_trainers_files_are_refused_with_their_kind(tmp_path, name, content, words):
    source = tmp_path / name
    source.write_text(content)
    with pytest.raises(ProblemError, match=words):
        import_kohya_file(source)


@pytest.mark.parametrize("flags, family", [
    ("train_network.py", "sd1"), ("train_network.py --v2", "sd2"), ("train_network.py --v2 --v_parameterization", "sd2-v"),
    ("sdxl_train_network.py", "sdxl"), ("flux_train_network.py --ae /m/ae.safetensors", "flux1"),
])
def test_the_script_and_its_model_flags_decide_the_family(tmp_path, flags, family):
    source = tmp_path / "cmd.sh"
    source.write_text(f"accelerate launch {flags} --pretrained_model_name_or_path /m/model.safetensors\n")
    assert import_kohya_file(source).config.model.family == family


def test_sd_scripts_options_without_counterpart_are_named_by_what_they_do(tmp_path):
    source = tmp_path / "cfg.toml"
    source.write_text('network_module = "networks.lora"\nzero_terminal_snr = true\ncaption_prefix = "photo of "\n'
                      'lowram = false\nuse_8bit_adam = true\nmystery_option = 3\n')
    result = import_kohya_file(source)
    said = notes(result)
    assert "zero terminal SNR" in said["zero_terminal_snr"] and "caption prefix" in said["caption_prefix"]
    assert "lowram" not in said  # off: nothing lost
    assert "is not an sd-scripts LoRA option tui-lora knows" in said["mystery_option"]
    assert result.config.optimizer.name == "AdamW8bit"  # the old switch, as sd-scripts reads it


def test_a_windows_batch_command_keeps_its_backslash_paths(tmp_path):
    source = tmp_path / "train.bat"
    source.write_text('@echo off\r\nREM my LoRA\r\ncall venv\\Scripts\\activate\r\n'
                      'accelerate launch "sd-scripts\\sdxl_train_network.py" ^\r\n'
                      '  --pretrained_model_name_or_path C:\\models\\sdxl\\base.safetensors ^\r\n'
                      '  --train_data_dir "D:\\lora data\\img" --network_module networks.lora --network_dim 24\r\n')
    cfg = import_kohya_file(source).config
    assert (cfg.model.path, cfg.folders.images) == ("C:\\models\\sdxl\\base.safetensors", "D:\\lora data\\img")
    assert (cfg.model.family, cfg.network.rank) == ("sdxl", 24)


def test_a_gui_flux_config_names_the_sd_options_sd_scripts_flux_trainer_ignores(tmp_path):
    preset = json.loads((DATA / "flux1D - adamw8bit fp8.json").read_text())
    said = notes(import_kohya_file(DATA / "flux1D - adamw8bit fp8.json"))
    assert "ignored by sd-scripts' FLUX.1 trainer too" in said["min_snr_gamma"]  # the preset's 10
    assert "multires_noise_iterations" not in said  # noise_offset_type Original: the GUI does not pass it
    source = tmp_path / "flux.json"
    source.write_text(json.dumps(preset | {"noise_offset": 0.1, "max_token_length": 225}))
    said = notes(import_kohya_file(source))
    assert all("FLUX.1 trainer too" in said[key] for key in ("noise_offset", "max_token_length", "min_snr_gamma"))
    sd = notes(import_kohya_file(DATA / "lora_sd15_full.json"))
    assert not any("trainer too" in message for message in sd.values())


def test_warmup_in_steps_of_an_epoch_run_is_its_share_of_the_steps_counted_from_the_images(tmp_path):
    from PIL import Image

    from engine.optim.numbers import warmup_steps
    from engine.plan import plan_run

    concept = tmp_path / "img" / "5_cat"
    concept.mkdir(parents=True)
    for number in range(4):
        Image.new("RGB", (64, 64), (number * 40, 0, 0)).save(concept / f"{number}.png")
    source = tmp_path / "cmd.sh"
    source.write_text(f"accelerate launch train_network.py --train_data_dir {tmp_path / 'img'} --max_train_epochs 2 "
                      "--lr_scheduler cosine --lr_warmup_steps 4 --resolution 64 --network_module networks.lora\n")
    result = import_kohya_file(source)
    cfg = result.config
    assert cfg.optimizer.warmup_percent == 10.0  # 4 of 4 images × 5 repeats × 2 epochs
    assert "40 steps" in notes(result)["lr_warmup_steps"]
    assert warmup_steps(cfg.optimizer.scheduler, cfg.optimizer.warmup_percent, plan_run(cfg).total_steps) == 4
    source.write_text(source.read_text().replace(str(tmp_path / "img"), "/nowhere/img"))
    result = import_kohya_file(source)
    assert result.config.optimizer.warmup_percent == 0.0 and "imported as 0" in notes(result)["lr_warmup_steps"]


def test_concept_folders_the_dataset_config_leaves_out_are_named(tmp_path):
    for name in ("10_cat", "3_dog", "notes"):
        (tmp_path / "img" / name).mkdir(parents=True)
    source = tmp_path / "ds.toml"
    source.write_text(f'[[datasets]]\n[[datasets.subsets]]\nimage_dir = "{tmp_path / "img" / "10_cat"}"\nnum_repeats = 10\n')
    said = notes(import_kohya_file(source))
    assert "also holds 3_dog" in said["image_dir"] and "notes" not in said["image_dir"]


def test_seed_0_is_the_seed_0_in_sd_scripts_not_random_as_in_the_gui(tmp_path):
    source = tmp_path / "cmd.sh"
    source.write_text("accelerate launch train_network.py --network_module networks.lora --seed 0\n")
    assert import_kohya_file(source).config.training.seed == 0
    gui = tmp_path / "gui.json"
    gui.write_text(json.dumps({"LoRA_type": "Standard", "seed": 0}))
    assert import_kohya_file(gui).config.training.seed is None


def test_a_prompt_file_beside_the_config_is_read_with_its_options(tmp_path):
    (tmp_path / "prompts.txt").write_text("# my prompts\nphoto of sks cat --n blurry --w 512 --h 640 --d 7\n\na cat\n")
    source = tmp_path / "cfg.toml"
    source.write_text('network_module = "networks.lora"\nsample_prompts = "prompts.txt"\nsample_every_n_epochs = 1\n')
    cfg = import_kohya_file(source).config
    assert cfg.sampling.prompts == [{"prompt": "photo of sks cat", "negative": "blurry", "width": 512, "height": 640,
                                     "seed": 7}, "a cat"]
