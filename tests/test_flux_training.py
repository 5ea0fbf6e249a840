"""FLUX.1 end to end on the built-in tiny model: a YAML run trains, learns, samples and writes a
Kohya/ComfyUI file that diffusers loads and that continues a run; the flow-matching objective
follows sd-scripts' formulas.

One run is trained per module (20 steps at 64 px, CLIP-L trained too); the tests read its file.
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
from safetensors.torch import load_file, save_file

from engine.config import RunConfig, load_run_file
from engine.families.flux1 import lora_names as flux_names
from engine.problems import ProblemError
from engine.train.entry import run_config
from engine.families.flux1.objective import FlowMatchingObjective, FlowOptions, apply_prediction_type, sample_sigmas, shifted
from engine.train.setup import build_model
from tests.helpers import load_lora_noting_complaints, small_run, write_small_concepts

pytestmark = pytest.mark.slow

RUN_YAML = """\
version: 1
model:
  quick_pick: builtin-tiny-flux1
folders:
  images: {images}
  output: {output}
  output_name: flux_lora
network:
  rank: 4
  alpha: 2.0
training:
  batch_size: 2
  epochs: 10
  seed: 11
  cpu_threads_per_process: 1
  max_resolution: [64, 64]
  save_precision: float
optimizer:
  name: AdamW
  learning_rate: 0.01
  text_encoder_lr: 0.001
  scheduler: constant
  warmup_percent: 0
flux:
  timestep_sampling: sigma
  guidance_scale: 1.0
buckets:
  step: 32
sampling:
  prompts:
    - {{prompt: red thing, steps: 2, seed: 5, cfg: 1.0}}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, model_cache):
    root = tmp_path_factory.mktemp("flux")
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
    return cfg, root / "out" / "flux_lora.safetensors", events, root


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
    model = build_model(cfg.replace(optimizer__text_encoder_lr=0.0), torch.device("cpu"), torch.float32, weights)
    latents, cond = _latents_and_conditioning(cfg, model.base, draws)
    objective = FlowMatchingObjective(cfg, model.base, generator=torch.Generator().manual_seed(0),
                                      weight_dtype=torch.float32, device=torch.device("cpu"))
    with torch.no_grad():
        return objective.loss(model.base.unet, latents, cond, torch.ones(draws), None, contextlib.nullcontext).item()


# ----------------------------------------------------------------------------- the run and its file


def test_flux_yaml_run_learns_its_images(run):
    cfg, path, events, _ = run
    losses = [e["loss"] for e in events if e["type"] == "step"]
    assert len(losses) == 20 and all(math.isfinite(x) for x in losses)
    # continuing from the written file (read back through from_kohya) gives the trained model
    assert _fixed_loss(cfg, str(path)) < 0.85 * _fixed_loss(cfg)


def test_flux_file_has_sd_scripts_names_and_metadata(run):
    _, path, _, _ = run
    with safe_open(str(path), "pt") as handle:
        keys, metadata = set(handle.keys()), handle.metadata()
    modules = {key.split(".")[0] for key in keys}
    for i in (0, 1):
        assert f"lora_unet_double_blocks_{i}_img_attn_qkv" in modules
        assert f"lora_unet_double_blocks_{i}_txt_mlp_2" in modules
        assert f"lora_unet_single_blocks_{i}_linear1" in modules
    assert any(m.startswith("lora_te1_text_model_encoder_layers_0_self_attn_out_proj") for m in modules)
    assert not any(m.startswith(("lora_te2_", "lora_te3_")) for m in modules)  # T5 is never trained
    assert all({f"{m}.alpha", f"{m}.lora_down.weight", f"{m}.lora_up.weight"} <= keys for m in modules)
    assert metadata["ss_base_model_version"] == "flux1"
    assert metadata["modelspec.architecture"] == "flux-1-dev/lora"
    assert metadata["ss_network_module"] == "networks.lora_flux"
    assert metadata["ss_guidance_scale"] == "1.0" and metadata["ss_timestep_sampling"] == "sigma"
    assert metadata["ss_model_prediction_type"] == "sigma_scaled"
    assert "modelspec.prediction_type" not in metadata and "ss_clip_skip" not in metadata


def test_flux_file_loads_in_diffusers_and_changes_the_image(run, tmp_path):
    """Every key but the single blocks' linear1 goes through diffusers' own Kohya-Flux converter:
    diffusers 0.42 splits linear1 at FLUX.1's real widths (3072×3 + 12288), which a tiny model has
    not, so those keys are checked by the from_kohya round trip below instead."""
    from diffusers import FluxPipeline

    from engine.families.flux1.tiny import ensure_tiny_flux_model

    _, path, _, _ = run
    state = load_file(str(path))
    loadable = {k: v for k, v in state.items() if "_linear1." not in k}
    assert len(loadable) < len(state)
    filtered = tmp_path / "without_linear1.safetensors"
    save_file(loadable, str(filtered))
    pipe = FluxPipeline.from_pretrained(str(ensure_tiny_flux_model()))
    pipe.set_progress_bar_config(disable=True)

    def image():
        return pipe("red thing", num_inference_steps=2, height=64, width=64, guidance_scale=1.0,
                    generator=torch.Generator().manual_seed(3), output_type="np").images[0]

    before = image()
    assert load_lora_noting_complaints(pipe, filtered) == []
    assert np.abs(image() - before).max() > 1e-3


def test_flux_linear1_and_qkv_keys_split_back_into_the_trained_layers(run):
    _, path, _, _ = run
    state = load_file(str(path))
    transformer, clip = flux_names.from_kohya(state)
    assert clip and all(w.rank == 4 for w in transformer.values())
    for name in ("lora_unet_single_blocks_1_linear1", "lora_unet_double_blocks_0_img_attn_qkv"):
        fused = flux_names.LoraWeights(state[f"{name}.lora_down.weight"], state[f"{name}.lora_up.weight"],
                                       float(state[f"{name}.alpha"]))
        parts = flux_names.kohya_groups(list(transformer))[name]
        # the fused layer's weight change is exactly its parts' changes stacked
        assert torch.allclose(fused.delta(), torch.cat([transformer[p].delta() for p in parts]), atol=1e-6)


def test_flux_samples_are_drawn_with_the_flux_pipeline(run):
    _, _, events, root = run
    samples = [e for e in events if e["type"] == "sample"]
    assert samples and not [e for e in events if e["type"] == "warning" and e.get("field") == "sampling.prompts"]
    assert Image.open(samples[-1]["paths"][0]).size == (64, 64)


# ----------------------------------------------------------------------------- the objective


def _quantiles(values: torch.Tensor, qs=(0.1, 0.25, 0.5, 0.75, 0.9)) -> np.ndarray:
    return np.quantile(values.numpy(), qs)


@pytest.mark.parametrize("mode", ["uniform", "sigmoid", "shift", "flux_shift", "sigma"])
def test_timestep_sampling_draws_the_distribution_of_sd_scripts_formula(mode):
    """sd-scripts `get_noisy_model_input_and_timesteps`: uniform t; sigmoid(scale·N); shift of that by
    discrete_flow_shift; flux_shift by e^mu with mu linear in the packed token count (0.5 at 256, 1.15 at
    4096); sigma: a uniform index into the 1000-step schedule shifted by discrete_flow_shift."""
    options = FlowOptions(timestep_sampling=mode, sigmoid_scale=1.5, discrete_flow_shift=3.0)
    drawn = sample_sigmas(options, 40000, 64, 64, torch.Generator().manual_seed(1))
    qs = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    normal = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(qs))
    sigmoid = torch.sigmoid(1.5 * normal)
    mu = 0.5 + (32 * 32 - 256) * (1.15 - 0.5) / (4096 - 256)
    expected = {"uniform": torch.tensor(qs), "sigmoid": sigmoid, "shift": shifted(sigmoid, 3.0),
                "flux_shift": shifted(sigmoid, math.exp(mu)), "sigma": shifted(torch.tensor(qs), 3.0)}[mode]
    assert np.allclose(_quantiles(drawn), expected.numpy(), atol=0.012)
    assert drawn.min() > 0 and drawn.max() <= 1


def test_model_prediction_types_follow_sd_scripts():
    prediction, noisy, sigma = torch.full((1, 2), 2.0), torch.full((1, 2), 5.0), torch.full((1, 1), 0.25)
    assert torch.equal(apply_prediction_type("raw", prediction, noisy, sigma), prediction)
    assert torch.equal(apply_prediction_type("additive", prediction, noisy, sigma), prediction + noisy)
    assert torch.equal(apply_prediction_type("sigma_scaled", prediction, noisy, sigma), noisy - 0.25 * prediction)


def test_each_prediction_type_gives_its_own_loss_on_the_same_draws(run):
    cfg = run[0]
    losses = {kind: _fixed_loss(cfg.replace(flux__model_prediction_type=kind), draws=4)
              for kind in ("raw", "additive", "sigma_scaled")}
    assert len({round(v, 6) for v in losses.values()}) == 3


@pytest.mark.parametrize("change", [
    {"flux__apply_t5_attn_mask": True},  # padding hidden from T5 and from the joint attention
    {"flux__guidance_scale": 5.0},  # [dev]'s guidance input
    {"flux__t5xxl_max_token_length": 16},  # fewer T5 tokens
    {"flux__discrete_flow_shift": 1.0},  # the sigma schedule's shift
    {"flux__timestep_sampling": "flux_shift", "flux__sigmoid_scale": 2.0},
    {"training__ip_noise_gamma": 0.5},  # input perturbation applies to Flux, as in sd-scripts
])
def test_each_flux_option_changes_the_loss_on_the_same_draws(run, change):
    cfg = run[0]
    assert _fixed_loss(cfg.replace(**change), draws=4) != pytest.approx(_fixed_loss(cfg, draws=4), abs=1e-7)


# ----------------------------------------------------------------------------- options that change the run


def _small_run(root, **changes):
    result, events = small_run(root, "builtin-tiny-flux1", **changes)
    return result, events


def _losses(events):
    return [e["loss"] for e in events if e["type"] == "step"]


def test_text_encoder_outputs_are_cached_once_reused_from_disk_and_change_nothing(tmp_path):
    write_small_concepts(tmp_path / "images")
    _, plain = _small_run(tmp_path)
    result, first = _small_run(tmp_path, training__cache_text_encoder_outputs=True,
                               training__cache_text_encoder_outputs_to_disk=True)
    assert result.trainer.model.base.text_encoders == []  # no samples, no text training: freed
    _, second = _small_run(tmp_path, training__cache_text_encoder_outputs=True,
                           training__cache_text_encoder_outputs_to_disk=True)
    logs = [e for e in first + second if e["type"] == "log" and "text encoder cache" in e["message"]]
    assert [(e["reused"], e["encoded"]) for e in logs] == [(0, 2), (2, 0)]
    assert _losses(first) == _losses(second) == _losses(plain)
    _, longer = _small_run(tmp_path, training__cache_text_encoder_outputs=True,
                           training__cache_text_encoder_outputs_to_disk=True, flux__t5xxl_max_token_length=64)
    assert [e["encoded"] for e in longer if e["type"] == "log" and "text encoder cache" in e["message"]] == [2]


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one mixed-precision choice per process; a bf16 run needs its own."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("pick", ["builtin-tiny-flux1", "builtin-tiny-sd1"])
def test_fp8_base_holds_the_frozen_denoiser_in_float8_and_trains(tmp_path, fresh_accelerate_state, pick):
    write_small_concepts(tmp_path / "images")
    result, events = _small_run(tmp_path, model__quick_pick=pick, training__fp8_base=True,
                                training__mixed_precision="bf16")
    linears = [m for m in result.trainer.model.base.unet.modules() if type(m) is torch.nn.Linear]
    frozen = [m for m in linears if not m.weight.requires_grad]
    assert frozen and all(m.weight.dtype == torch.float8_e4m3fn for m in frozen)
    assert all(m.weight.dtype == torch.float32 for m in linears if m.weight.requires_grad)  # the LoRA itself
    assert all(math.isfinite(x) for x in _losses(events))


def test_flux_options_change_the_drawn_noise_levels(tmp_path):
    write_small_concepts(tmp_path / "images")
    _, sigma = _small_run(tmp_path)
    _, shift = _small_run(tmp_path, flux__timestep_sampling="shift")
    assert _losses(sigma) != _losses(shift)



def test_gradient_checkpointing_trains_the_transformer_and_clip_l(tmp_path):
    write_small_concepts(tmp_path / "images")
    _, plain = _small_run(tmp_path, optimizer__text_encoder_lr=1e-3)
    result, checkpointed = _small_run(tmp_path, optimizer__text_encoder_lr=1e-3, training__gradient_checkpointing=True)
    assert result.trainer.model.base.unet.is_gradient_checkpointing
    assert np.allclose(_losses(checkpointed), _losses(plain), atol=1e-4)  # recomputed, not changed


def test_auto_family_refuses_sd_only_settings_once_the_model_shows_it_is_flux(tmp_path):
    from engine.families.flux1.tiny import ensure_tiny_flux_model

    write_small_concepts(tmp_path / "images")
    cfg = RunConfig.from_values({"model.quick_pick": "custom", "model.family": "auto",
                                 "model.path": str(ensure_tiny_flux_model()), "folders.images": str(tmp_path / "images"),
                                 "folders.output": str(tmp_path / "out"), "training.min_snr_gamma": 5.0,
                                 "optimizer.text_encoder_lr": 0.0})
    with pytest.raises(ProblemError) as info:
        build_model(cfg, torch.device("cpu"), torch.float32)
    assert [p.field for p in info.value.errors] == ["training.min_snr_gamma"]


def test_flux_run_stopped_and_resumed_gives_the_uninterrupted_lora(tmp_path):
    from engine.train.control import RunControl

    write_small_concepts(tmp_path / "images")
    whole, _ = _small_run(tmp_path, training__epochs=2, folders__output=str(tmp_path / "whole"))
    control = RunControl()
    stop_at_step_2 = lambda e: e["type"] == "step" and e["step"] == 2 and control.stop_requested.set()  # noqa: E731
    values = {"model.quick_pick": "builtin-tiny-flux1", "folders.images": str(tmp_path / "images"),
              "folders.output": str(tmp_path / "out"), "folders.output_name": "lora", "network.rank": 4,
              "training.batch_size": 2, "training.seed": 3, "training.cpu_threads_per_process": 1, "buckets.step": 32,
              "training.max_resolution": [64, 64], "optimizer.name": "AdamW", "optimizer.text_encoder_lr": 0.0,
              "optimizer.scheduler": "constant", "optimizer.warmup_percent": 0.0, "training.epochs": 2,
              "training.save_state": True}
    cfg = RunConfig.from_values(values)
    assert run_config(cfg, on_event=stop_at_step_2, control=control).status == "stopped"
    assert run_config(cfg, resume="latest").status == "completed"
    expected, resumed = load_file(str(whole.outputs[-1])), load_file(str(tmp_path / "out" / "lora.safetensors"))
    assert expected.keys() == resumed.keys()
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=1e-5, atol=1e-6)


def test_schnell_shaped_transformer_trains_without_a_guidance_input():
    from types import SimpleNamespace

    from diffusers import FluxTransformer2DModel

    from engine.families.flux1.objective import FluxConditioning

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, guidance_embeds=False, axes_dims_rope=(4, 6, 6))
    cfg = RunConfig.from_values({"model.quick_pick": "builtin-tiny-flux1", "folders.images": "/data"})
    objective = FlowMatchingObjective(cfg, SimpleNamespace(unet=transformer, vae_scale_factor=4),
                                      generator=torch.Generator().manual_seed(0), weight_dtype=torch.float32,
                                      device=torch.device("cpu"))
    assert objective.guidance is False
    cond = FluxConditioning(torch.randn(2, 8, 32), torch.randn(2, 32))
    loss = objective.loss(transformer, torch.randn(2, 16, 8, 8), cond, torch.ones(2), None, contextlib.nullcontext)
    assert math.isfinite(loss.item())
