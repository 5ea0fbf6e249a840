"""benchmarks/gpu_check.py's CPU side: the FLUX.1 entries build a FluxPipeline folder from configs alone
(meta device, then real storage) that the engine loads and trains; without CUDA it measures nothing."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from engine.config import RunConfig  # noqa: E402
from engine.vram.parts import reference_parts  # noqa: E402


@pytest.fixture(scope="module")
def gpu_check():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _small_flux_parts():
    """FLUX.1's reference configs with every width and depth cut down (same keys, same structure)."""
    parts = reference_parts("flux1")
    denoiser = dict(parts.denoiser, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                    joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 6, 6])
    clip = dict(parts.text_encoders[0], hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, projection_dim=32)
    t5 = dict(parts.text_encoders[1], d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    vae = dict(parts.vae, block_out_channels=[32, 32], layers_per_block=1, norm_num_groups=16,
               down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    return replace(parts, denoiser=denoiser, text_encoders=[clip, t5], vae=vae)


def test_flux_entries_train_real_size_flux1_at_512_px_with_the_usual_memory_settings(gpu_check):
    assert gpu_check.MODELS["flux1"][1] == gpu_check.MODELS["flux1-fp8"][1] == 512
    settings = gpu_check.FLUX_SETTINGS
    cfg = RunConfig.from_values({**settings, "model.quick_pick": "custom", "model.path": "/models/flux1",
                                 "training.mixed_precision": "bf16", "training.fp8_base": True})
    assert (cfg.model.family, cfg.network.rank, cfg.optimizer.name) == ("flux1", 16, "AdamW8bit")
    assert cfg.training.gradient_checkpointing and cfg.training.cache_text_encoder_outputs


def test_flux_pipeline_from_meta_configs_has_real_storage_and_the_configs_sizes(gpu_check):
    parts = _small_flux_parts()
    pipe = gpu_check.flux_pipeline(parts, "cpu", torch.float32)
    weights = dict(pipe.transformer.named_parameters())
    assert all(not w.is_meta and torch.isfinite(w).all() for w in weights.values())
    assert float(weights["transformer_blocks.0.attn.to_q.weight"].std()) == pytest.approx(0.02, rel=0.2)
    assert pipe.transformer.config.num_layers == 1 and pipe.text_encoder_2.config.d_model == 32
    assert pipe.transformer.config.guidance_embeds  # [dev]'s layout, like the reference
    assert pipe.vae.config.scaling_factor == pytest.approx(0.3611)
    assert all(p.dtype == torch.float32 for p in pipe.text_encoder_2.parameters())
    buffers = dict(pipe.text_encoder.named_buffers())  # built as the model builds them, not left empty
    ids = next(b for name, b in buffers.items() if name.endswith("position_ids"))
    assert torch.equal(ids.flatten(), torch.arange(ids.numel()))


def test_saved_flux_folder_trains_through_the_engine(gpu_check, tmp_path, small_data):
    from engine.train.entry import run_config

    folder = tmp_path / "flux"
    gpu_check.save_flux_folder(gpu_check.flux_pipeline(_small_flux_parts(), "cpu", torch.float32), folder)
    settings = {**gpu_check.FLUX_SETTINGS, "training.max_resolution": [64, 64], "optimizer.name": "AdamW",
                "training.gradient_checkpointing": True, "network.rank": 2, "network.alpha": 1.0,
                "buckets.min_resolution": 32}
    cfg = RunConfig.from_values({**settings, "model.quick_pick": "custom", "model.path": str(folder),
                                 "folders.images": str(small_data), "folders.output": str(tmp_path / "out"),
                                 "training.epochs": 1, "training.mixed_precision": "no", "buckets.step": 32})
    result = run_config(cfg)
    assert result.trainer.progress.step == result.trainer.plan.total_steps > 0
    assert (tmp_path / "out" / f"{cfg.folders.output_name}.safetensors").exists()


def test_without_cuda_it_says_so_and_measures_nothing(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("sys.argv", ["gpu_check.py", "--only", "flux1"])
    assert gpu_check.main() == 0
    assert "no CUDA GPU here" in capsys.readouterr().out


@pytest.mark.slow
def test_gpu_check_sh_dry_run_goes_through_every_entry_and_path_on_the_cpu():
    import subprocess

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=root, capture_output=True, text=True,
                          timeout=1500)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    table = out.split("paths exercised (dry run on the CPU):")[0].rsplit("\n\n", 1)[-1]
    assert [line.split()[0] for line in table.strip().splitlines()[1:]] == gpu_check_default_entries()
    assert "4 entries measured, 0 failed" in out
    paths = out.split("paths exercised (dry run on the CPU):")[1]
    assert "8-bit optimizer: sd15: AdamW8bit" in paths and "fp8: flux1-fp8:" in paths
    assert "block swap: flux1-fp8-swap:" in paths and " 0 late" in paths
    assert "nf4: completed, " in paths and "int8: completed, " in paths


def gpu_check_default_entries() -> list[str]:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check_entries", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DEFAULT_ONLY.split(",")
