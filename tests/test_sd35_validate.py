"""`tui-lora validate` and the Kohya import on SD 3.5 run files: the plan with its real-size VRAM and
file-size lines (torch-free), the clear errors of a single-file model, and GUI / sd-scripts configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from engine.config import RunConfig
from engine.config.kohya_import import convert_kohya_settings
from engine.lora_size import estimate_file_size
from engine.vram import estimate_vram
from tui_lora.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _run_file(tmp_path, body: str, images) -> str:
    path = tmp_path / "sd35.yaml"
    path.write_text(f"folders:\n  images: {images}\n  output: {tmp_path / 'out'}\n" + textwrap.dedent(body))
    return str(path)


def test_validate_prints_the_sd35_large_estimate_with_its_breakdown_without_torch(tmp_path, small_data):
    run_file = _run_file(tmp_path, """\
        model: {quick_pick: sd35-large}
        training: {mixed_precision: bf16, gradient_checkpointing: true, fp8_base: true}
        """, small_data)
    code = ("import json, sys; from tui_lora.cli import main; code = main(['validate', sys.argv[1]]); "
            "print(json.dumps([m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]))")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", code, run_file], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=300)
    out, err = result.stdout, result.stderr
    assert json.loads(out.strip().splitlines()[-1]) == []  # the estimate needs no training library
    # the hub model is not cached here (offline): only that may be an error
    assert [line.split(":")[1].strip() for line in err.splitlines() if line.startswith("error:")] == ["model.path"]
    assert "model.family: sd35" in out and "estimated file size:" in out and "estimated peak VRAM:" in out
    lines = {line.strip().split("  ")[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "8,146M parameters in fp8" in lines["transformer weights"]  # SD 3.5 Large's MMDiT, 38 blocks
    assert "text encoder 3 weights (T5)" in lines and "4,762M parameters" in lines["text encoder 3 weights (T5)"]
    assert "text encoder 2 weights" in lines and "activations" in lines and "allocator overhead" in lines
    assert "stabilityai/stable-diffusion-3.5-large configs" in out


def test_the_estimate_follows_the_sd35_settings_that_change_memory(small_data):
    base = {"model.quick_pick": "sd35-large", "folders.images": str(small_data), "training.mixed_precision": "bf16",
            "training.gradient_checkpointing": True}
    plain = estimate_vram(RunConfig.from_values(base).values)
    fp8 = estimate_vram(RunConfig.from_values({**base, "training.fp8_base": True}).values)
    cached = estimate_vram(RunConfig.from_values({**base, "training.cache_text_encoder_outputs": True,
                                                  "optimizer.text_encoder_lr": 0.0}).values)
    longer = estimate_vram(RunConfig.from_values({**base, "sd35.t5xxl_max_token_length": 512,
                                                  "training.gradient_checkpointing": False}).values)
    shorter = estimate_vram(RunConfig.from_values({**base, "sd35.t5xxl_max_token_length": 77,
                                                   "training.gradient_checkpointing": False}).values)
    medium = estimate_vram(RunConfig.from_values({**base, "model.quick_pick": "sd35-medium"}).values)
    byte = {line.name: line.bytes for line in plain.lines}
    assert {line.name: line.bytes for line in fp8.lines}["transformer weights"] * 2 == byte["transformer weights"]
    assert {line.name: line.bytes for line in cached.lines}["text encoder 3 weights (T5)"] == 0
    assert longer.total_bytes > shorter.total_bytes  # T5's tokens ride through every joint block
    assert medium.total_bytes < plain.total_bytes


def test_file_size_of_the_kohya_form_counts_the_fused_qkv_as_written(small_data):
    values = {"model.quick_pick": "sd35-large", "folders.images": str(small_data), "network.rank": 16,
              "optimizer.text_encoder_lr": 0.0}
    kohya, how = estimate_file_size(RunConfig.from_values(values).values)
    diffusers, _ = estimate_file_size(RunConfig.from_values({**values, "sd35.lora_format": "diffusers"}).values)
    assert "377 layers" in how and 150e6 < kohya < 250e6  # 38 blocks × 10 modules − 3, rank 16, fp16
    assert diffusers < kohya


def test_validate_names_the_missing_files_of_a_single_sd35_file(tmp_path, small_data, capsys):
    run_file = _run_file(tmp_path, """\
        model: {quick_pick: custom, family: sd35, path: /models/sd3.5_large.safetensors}
        """, small_data)
    assert main(["validate", run_file]) == 2
    err = capsys.readouterr().err
    for key in ("model.clip_l", "model.clip_g", "model.t5xxl"):
        assert f"error: {key}:" in err and f"set {key} to the matching .safetensors file" in err
    assert "error: model.config_dir:" in err


def test_validate_refuses_sd_objective_settings_in_an_sd35_run(tmp_path, small_data, capsys):
    run_file = _run_file(tmp_path, """\
        model: {quick_pick: sd35-medium}
        training: {min_snr_gamma: 5, noise_offset: 0.05}
        """, small_data)
    assert main(["validate", run_file]) == 2
    err = capsys.readouterr().err
    assert "error: training.min_snr_gamma: does not apply to SD 3.5" in err
    assert "error: training.noise_offset: does not apply to SD 3.5" in err


def _gui_config(**changes) -> dict:
    """A Kohya GUI LoRA-tab config with its SD3 checkbox on, as lora_gui.py saves one (SD3 fields filled)."""
    config = {"LoRA_type": "Standard", "pretrained_model_name_or_path": "stabilityai/stable-diffusion-3.5-large",
              "train_data_dir": "/data", "output_dir": "/out", "output_name": "sd35", "network_dim": 16,
              "network_alpha": 16, "learning_rate": 1e-4, "unet_lr": 1e-4, "text_encoder_lr": 0, "optimizer": "AdamW8bit",
              "max_resolution": "1024,1024", "mixed_precision": "bf16", "gradient_checkpointing": True,
              "sd3_checkbox": True, "flux1_checkbox": False, "sdxl": False, "v2": False, "v_parameterization": False,
              "sd3_cache_text_encoder_outputs": True, "sd3_cache_text_encoder_outputs_to_disk": False,
              "sd3_clip_l": "", "clip_g": "", "sd3_t5xxl": "", "clip_l": "", "t5xxl": "", "ae": "",
              "weighting_scheme": "logit_normal", "logit_mean": 0.0, "logit_std": 1.0, "mode_scale": 1.29,
              "sd3_clip_l_dropout_rate": 0.0, "clip_g_dropout_rate": 0.0, "sd3_t5_dropout_rate": 0.0,
              "sd3_fused_backward_pass": False, "sd3_disable_mmap_load_safetensors": False,
              "sd3_enable_scaled_pos_embed": False, "pos_emb_random_crop_rate": 0.0, "save_clip": False,
              "save_t5xxl": False, "t5xxl_device": "", "t5xxl_dtype": "bf16", "sd3_text_encoder_batch_size": 1,
              "noise_offset": 0.05, "noise_offset_type": "Original", "t5xxl_max_token_length": 512,
              "guidance_scale": 3.5, "timestep_sampling": "sigma"}
    return {**config, **changes}


def test_a_kohya_gui_sd3_config_imports_as_sd35_with_its_options_and_files():
    result = convert_kohya_settings(_gui_config(pretrained_model_name_or_path="/models/sd3.5_large.safetensors",
                                                sd3_clip_l="/models/clip_l.safetensors", clip_g="/models/clip_g.safetensors",
                                                sd3_t5xxl="/models/t5xxl_fp16.safetensors", sd3_t5_dropout_rate=0.1,
                                                sd3_fused_backward_pass=True))
    cfg = result.config
    assert (cfg.model.family, cfg.model.quick_pick, cfg.model.path) == ("sd35", "custom", "/models/sd3.5_large.safetensors")
    assert (cfg.model.clip_l, cfg.model.clip_g, cfg.model.t5xxl) == (
        "/models/clip_l.safetensors", "/models/clip_g.safetensors", "/models/t5xxl_fp16.safetensors")
    assert (cfg.sd35.weighting_scheme, cfg.sd35.t5_dropout_rate) == ("logit_normal", 0.1)
    assert cfg.training.cache_text_encoder_outputs
    assert cfg.training.noise_offset == 0.0  # sd-scripts' SD3 trainer does not use it: not imported
    notes = {n.field: n.message for n in result.notes}
    assert "no counterpart" in notes["sd3_fused_backward_pass"]
    assert cfg.flux.t5xxl_max_token_length is None and cfg.flux.guidance_scale == 3.5  # the Flux fields stay unread


def test_a_hub_sd3_config_becomes_the_quick_pick_and_an_sd_config_keeps_the_sd3_fields_out():
    assert convert_kohya_settings(_gui_config()).config.model.quick_pick == "sd35-large"
    medium = _gui_config(pretrained_model_name_or_path="stabilityai/stable-diffusion-3.5-medium")
    assert convert_kohya_settings(medium).config.model.quick_pick == "sd35-medium"
    sd = convert_kohya_settings(_gui_config(sd3_checkbox=False, pretrained_model_name_or_path="runwayml/stable-diffusion-v1-5"))
    assert sd.config.model.family == "sd1" and sd.config.sd35.weighting_scheme == "uniform"
    assert not [n for n in sd.notes if n.field.startswith(("sd3_", "weighting", "logit", "clip_g"))]


def test_an_sd_scripts_sd3_command_line_imports_as_sd35(tmp_path):
    from engine.kohya.sources import import_kohya_file

    command = tmp_path / "train.sh"
    command.write_text("accelerate launch sd3_train_network.py --pretrained_model_name_or_path /m/sd3.5_medium.safetensors "
                       "--clip_l /m/clip_l.safetensors --clip_g /m/clip_g.safetensors --t5xxl /m/t5xxl.safetensors "
                       "--network_module networks.lora_sd3 --network_dim 8 --weighting_scheme mode --mode_scale 1.0 "
                       "--training_shift 3.0 --train_data_dir /data --output_dir /out --noise_offset 0.1\n")
    result = import_kohya_file(command)
    cfg = result.config
    assert (cfg.model.family, cfg.model.path, cfg.model.clip_g) == ("sd35", "/m/sd3.5_medium.safetensors", "/m/clip_g.safetensors")
    assert (cfg.sd35.weighting_scheme, cfg.sd35.mode_scale, cfg.sd35.training_shift) == ("mode", 1.0, 3.0)
    assert cfg.training.noise_offset == 0.0
    assert any(n.field == "noise_offset" for n in result.notes)  # named as ignored by sd-scripts' SD3 trainer
