"""benchmarks/gpu_check.py's SD 3.5 entries, CPU side: a StableDiffusion3Pipeline folder built from configs alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from engine.families.sd35 import reference as ref  # noqa: E402


@pytest.fixture(scope="module")
def gpu_check():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check_sd35", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_sd35_configs() -> dict:
    """SD 3.5 Medium's reference configs with every width and depth cut down (same keys and structure)."""
    configs = ref.reference_config("5-medium")
    denoiser = dict(configs["denoiser"], num_layers=2, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=64,
                    caption_projection_dim=32, pooled_projection_dim=64, pos_embed_max_size=32, dual_attention_layers=[0])
    clip_l, clip_g, t5 = configs["text_encoders"]
    clips = [dict(c, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, projection_dim=32)
             for c in (clip_l, clip_g)]
    t5 = dict(t5, d_model=64, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    vae = dict(configs["vae"], block_out_channels=[32, 32], layers_per_block=1, norm_num_groups=16,
               down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    return {"denoiser": denoiser, "text_encoders": [*clips, t5], "vae": vae}


def test_sd35_entries_train_real_size_models_at_1024_px_with_the_usual_memory_settings(gpu_check):
    assert gpu_check.MODELS["sd35-medium"][1] == gpu_check.MODELS["sd35-large-fp8"][1] == 1024
    settings = gpu_check.SD35_SETTINGS
    assert settings["model.family"] == "sd35" and settings["training.gradient_checkpointing"]
    assert settings["training.cache_text_encoder_outputs"] and settings["optimizer.text_encoder_lr"] == 0.0


def test_sd35_pipeline_from_meta_configs_has_real_storage_and_the_configs_sizes(gpu_check, tmp_path):
    from diffusers import StableDiffusion3Pipeline

    pipe = gpu_check.sd35_pipeline(small_sd35_configs(), "cpu", torch.float32)
    weights = dict(pipe.transformer.named_parameters())
    assert all(not w.is_meta and torch.isfinite(w).all() for w in weights.values())
    assert float(weights["transformer_blocks.0.attn.to_q.weight"].std()) == pytest.approx(0.02, rel=0.2)
    assert pipe.transformer.config.num_layers == 2 and pipe.transformer.transformer_blocks[0].attn2 is not None
    assert pipe.vae.config.scaling_factor == pytest.approx(1.5305) and pipe.vae.config.shift_factor == pytest.approx(0.0609)
    gpu_check.save_sd35_folder(pipe, tmp_path / "sd35")
    again = StableDiffusion3Pipeline.from_pretrained(str(tmp_path / "sd35"))
    image = again("a dog", num_inference_steps=1, height=32, width=32, output_type="np",
                  generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 32, 32, 3)


def test_saved_sd35_folder_trains_through_the_engine(gpu_check, tmp_path, small_data):
    from engine.config import RunConfig
    from engine.train.entry import run_config

    folder = tmp_path / "sd35"
    gpu_check.save_sd35_folder(gpu_check.sd35_pipeline(small_sd35_configs(), "cpu", torch.float32), folder)
    settings = {**gpu_check.SD35_SETTINGS, "training.max_resolution": [64, 64], "optimizer.name": "AdamW",
                "network.rank": 2, "network.alpha": 1.0, "buckets.min_resolution": 32}
    cfg = RunConfig.from_values({**settings, "model.quick_pick": "custom", "model.path": str(folder),
                                 "folders.images": str(small_data), "folders.output": str(tmp_path / "out"),
                                 "training.epochs": 1, "training.mixed_precision": "no", "buckets.step": 32})
    result = run_config(cfg)
    assert result.trainer.model.base.family == "sd35"
    assert result.trainer.progress.step == result.trainer.plan.total_steps > 0
    assert (tmp_path / "out" / f"{cfg.folders.output_name}.safetensors").exists()
