"""Z-Image end to end on the built-in tiny model: a YAML run trains, learns, samples and writes a file
that diffusers loads and that continues a run; each `zimage:` option changes the objective.

One run is trained per module (20 steps at 64 px); the tests read its file.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from engine.config import load_run_file
from engine.families.zimage.objective import ZImageObjective, ZImageOptions, sample_sigmas, training_schedule
from engine.train.entry import run_config
from engine.train.setup import build_model
from tests.helpers import load_lora_noting_complaints, write_small_concepts

pytestmark = pytest.mark.slow

RUN_YAML = """\
version: 1
model:
  quick_pick: builtin-tiny-zimage
folders:
  images: {images}
  output: {output}
  output_name: zimage_lora
network:
  rank: 4
  alpha: 2.0
training:
  batch_size: 2
  epochs: 10
  seed: 11
  cpu_threads_per_core: 1
  max_resolution: [64, 64]
  save_precision: float
  gradient_checkpointing: true
optimizer:
  name: AdamW
  learning_rate: 0.01
  text_encoder_lr: 0
  scheduler: constant
  warmup_percent: 0
zimage:
  weighting_scheme: none
buckets:
  step: 32
sampling:
  prompts:
    - {{prompt: red thing, steps: 2, seed: 5, cfg: 0.0}}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, model_cache):
    root = tmp_path_factory.mktemp("zimage")
    with pytest.MonkeyPatch.context() as env:  # the autouse isolation is per test; this outlives one
        env.setenv("XDG_STATE_HOME", str(root / "state"))
        env.setenv("TUI_LORA_CACHE", str(model_cache))
        write_small_concepts(root / "images")
        run_file = root / "run.yaml"
        run_file.write_text(RUN_YAML.format(images=root / "images", output=root / "out"))
        cfg, problems = load_run_file(str(run_file))
        assert not [p for p in problems if p.is_error], problems
        events = []
        result = run_config(cfg, on_event=events.append)
    assert result.status == "completed", (result.message, result.hint)
    return cfg, root / "out" / "zimage_lora.safetensors", events, root


def _latents_and_conditioning(cfg, base, draws):
    image = Image.open(next(Path(cfg.folders.images).glob("2_red*/img.png")))
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        latent = base.vae.encode(pixels).latent_dist.mode()
        latent = (latent - base.vae.config.shift_factor) * base.vae.config.scaling_factor
        cond = base.spec.encode_text(base.tokenizers, base.text_encoders, ["red thing, simple"] * draws,
                                     device="cpu", **base.spec.text_options(cfg, base))
    return latent.repeat(draws, 1, 1, 1), cond


def _fixed_loss(cfg, weights=None, draws=32) -> float:
    """The flow-matching loss of the red training image over 32 seeded (noise, σ) draws."""
    model = build_model(cfg, torch.device("cpu"), torch.float32, weights)
    latents, cond = _latents_and_conditioning(cfg, model.base, draws)
    objective = ZImageObjective(cfg, model.base, generator=torch.Generator().manual_seed(0),
                                weight_dtype=torch.float32, device=torch.device("cpu"))
    with torch.no_grad():
        return objective.loss(model.base.unet, latents, cond, torch.ones(draws), None, contextlib.nullcontext).item()


# ----------------------------------------------------------------------------- the run and its file


def test_zimage_yaml_run_learns_its_images(run):
    cfg, path, events, _ = run
    losses = [e["loss"] for e in events if e["type"] == "step"]
    assert len(losses) == 20 and all(math.isfinite(x) for x in losses)
    # continuing from the written file (read back through lora_io) gives the trained model
    assert _fixed_loss(cfg, str(path)) < 0.9 * _fixed_loss(cfg)


def test_zimage_file_has_comfyui_keys_and_zimage_metadata(run):
    _, path, _, _ = run
    with safe_open(str(path), "pt") as handle:
        keys, metadata = list(handle.keys()), handle.metadata()
    modules = {key.rsplit(".", 2)[0] if key.endswith(".weight") else key.rsplit(".", 1)[0] for key in keys}
    assert all(key.startswith("diffusion_model.") for key in keys)
    assert len(keys) == 3 * len(modules) == 3 * (2 + 2 + 2) * 7  # A, B and alpha of 7 linears in 6 blocks
    assert "diffusion_model.context_refiner.1.feed_forward.w3.alpha" in keys
    assert metadata["ss_base_model_version"] == "zimage"
    assert metadata["modelspec.architecture"] == "Z-Image/lora"
    assert metadata["modelspec.implementation"] == "https://github.com/Tongyi-MAI/Z-Image"
    assert metadata["ss_weighting_scheme"] == "none" and metadata["ss_discrete_flow_shift"] == "3.0"
    assert "modelspec.prediction_type" not in metadata and "ss_clip_skip" not in metadata


def test_zimage_file_loads_in_diffusers_with_no_key_left_and_changes_the_image(run):
    from diffusers import ZImagePipeline

    from engine.families.zimage.tiny import ensure_tiny_zimage_model

    _, path, _, _ = run
    pipe = ZImagePipeline.from_pretrained(str(ensure_tiny_zimage_model()))

    def image():
        return pipe("red thing", height=64, width=64, num_inference_steps=2, guidance_scale=0.0,
                    generator=torch.Generator().manual_seed(0), output_type="pt").images[0]

    before = image()
    assert load_lora_noting_complaints(pipe, path) == []
    assert (image() - before).abs().max() > 1e-3


def test_zimage_samples_are_drawn_with_the_zimage_pipeline(run):
    _, _, events, root = run
    samples = sorted((root / "out" / "sample").glob("*.png"))
    assert samples and Image.open(samples[0]).size == (64, 64)


# ----------------------------------------------------------------------------- the objective


@pytest.mark.parametrize("scheme,check", [
    ("none", lambda s: abs(float(s.mean()) - 0.67) < 0.03),  # even picks over the shift-3 schedule lean noisy
    ("logit_normal", lambda s: abs(float(s.median()) - 0.75) < 0.03),  # sigmoid(0) = 0.5, shifted by 3 → 0.75
    ("mode", lambda s: float(((s > 0.4) & (s < 0.9)).float().mean()) > 0.55),
])
def test_timestep_draws_follow_the_diffusers_example_densities(scheme, check):
    options = ZImageOptions(weighting_scheme=scheme)
    sigmas = sample_sigmas(options, 20000, training_schedule(3.0).sigmas.float(), torch.Generator().manual_seed(0))
    assert 0 < float(sigmas.min()) and float(sigmas.max()) <= 1
    assert check(sigmas), (scheme, float(sigmas.mean()))


@pytest.mark.parametrize("change", [{"zimage__weighting_scheme": "logit_normal"}, {"zimage__weighting_scheme": "sigma_sqrt"},
                                    {"zimage__timestep_shift": 1.0}, {"zimage__max_sequence_length": 16},  # the framed caption is 27 tokens
                                    {"zimage__weighting_scheme": "logit_normal", "zimage__logit_mean": 1.0},
                                    {"zimage__weighting_scheme": "logit_normal", "zimage__logit_std": 0.3},
                                    {"zimage__weighting_scheme": "mode", "zimage__mode_scale": 0.5}])
def test_each_zimage_option_changes_the_loss_on_the_same_draws(run, change):
    cfg, path, _, _ = run
    base_cfg = cfg
    if "zimage__logit_mean" in change or "zimage__logit_std" in change:
        base_cfg = cfg.replace(zimage__weighting_scheme="logit_normal")
    elif "zimage__mode_scale" in change:
        base_cfg = cfg.replace(zimage__weighting_scheme="mode")
    assert _fixed_loss(cfg.replace(**change), str(path), draws=8) != pytest.approx(_fixed_loss(base_cfg, str(path), draws=8),
                                                                                 rel=1e-4)
