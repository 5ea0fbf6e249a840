"""SD 3.5 end to end on the built-in tiny model: a YAML run trains, learns, samples and writes an
sd-scripts-form file that continues a run (and a diffusers-form one that diffusers loads whole); the
`sd35:` options change the objective as sd-scripts' do.

One run is trained per module (20 steps at 64 px, CLIP-L and CLIP-G trained too); the tests read its file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from engine.config import load_run_file
from engine.families.sd35.objective import SD3Objective
from engine.train.entry import run_config
from engine.train.setup import build_model
from tests.helpers import load_lora_noting_complaints, small_run, write_small_concepts

pytestmark = pytest.mark.slow

RUN_YAML = """\
version: 1
model:
  quick_pick: builtin-tiny-sd35
folders:
  images: {images}
  output: {output}
  output_name: sd35_lora
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
optimizer:
  name: AdamW
  learning_rate: 0.01
  text_encoder_lr: 0.001
  scheduler: constant
  warmup_percent: 0
sd35:
  weighting_scheme: logit_normal
  t5xxl_max_token_length: 32
buckets:
  step: 32
sampling:
  prompts:
    - {{prompt: red thing, steps: 2, seed: 5, cfg: 1.0}}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, model_cache):
    root = tmp_path_factory.mktemp("sd35")
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
    return cfg, root / "out" / "sd35_lora.safetensors", events, root


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
    """The SD3 loss of the red training image over `draws` seeded (noise, σ) draws."""
    model = build_model(cfg.replace(optimizer__text_encoder_lr=0.0), torch.device("cpu"), torch.float32, weights)
    latents, cond = _latents_and_conditioning(cfg, model.base, draws)
    objective = SD3Objective(cfg, model.base, generator=torch.Generator().manual_seed(0), weight_dtype=torch.float32,
                             device=torch.device("cpu"))
    with torch.no_grad():
        return objective.loss(model.base.unet, latents, cond, torch.ones(draws), None, None).item()


def test_sd35_yaml_run_learns_its_images(run):
    cfg, path, events, _ = run
    losses = [e["loss"] for e in events if e["type"] == "step"]
    assert len(losses) == 20 and all(math.isfinite(x) for x in losses)
    # continuing from the written file (read back through from_kohya) gives the trained model
    assert _fixed_loss(cfg, str(path)) < 0.85 * _fixed_loss(cfg)


def test_sd35_file_has_sd_scripts_names_and_metadata(run):
    _, path, _, _ = run
    with safe_open(str(path), "pt") as handle:
        keys, metadata = set(handle.keys()), handle.metadata()
    modules = {key.split(".")[0] for key in keys}
    for i in (0, 1):
        assert f"lora_unet_joint_blocks_{i}_x_block_attn_qkv" in modules
        assert f"lora_unet_joint_blocks_{i}_x_block_attn2_qkv" in modules  # MMDiT-X's second attention
        assert f"lora_unet_joint_blocks_{i}_context_block_mlp_fc2" in modules
    assert "lora_unet_joint_blocks_2_context_block_adaLN_modulation_1" in modules  # the pre-only text half
    assert "lora_unet_joint_blocks_2_context_block_mlp_fc1" not in modules
    assert any(m.startswith("lora_te1_text_model_encoder_layers_0_self_attn") for m in modules)
    assert any(m.startswith("lora_te2_text_model_encoder_layers_1_mlp_fc2") for m in modules)
    assert not any(m.startswith("lora_te3_") for m in modules)  # T5 is never trained
    assert all({f"{m}.alpha", f"{m}.lora_down.weight", f"{m}.lora_up.weight"} <= keys for m in modules)
    assert metadata["ss_base_model_version"] == "5-medium"
    assert metadata["modelspec.architecture"] == "stable-diffusion-3-5-medium/lora"
    assert metadata["ss_network_module"] == "networks.lora_sd3"
    assert metadata["ss_weighting_scheme"] == "logit_normal" and metadata["ss_t5xxl_max_token_length"] == "32"
    assert "ss_clip_skip" not in metadata and not any("key_format" in k for k in metadata)


def test_sd35_samples_are_drawn_with_the_sd3_pipeline(run):
    _, _, events, root = run
    paths = [Path(p) for e in events if e["type"] == "sample" for p in e["paths"]]
    assert paths and all(p.exists() for p in paths)
    image = np.asarray(Image.open(paths[-1]))
    assert image.shape == (64, 64, 3) and image.std() > 0  # a real picture from StableDiffusion3Pipeline


def test_a_diffusers_form_run_writes_a_file_diffusers_loads_whole_and_that_changes_the_image(tmp_path):
    from diffusers import StableDiffusion3Pipeline

    from engine.families.sd35.tiny import ensure_tiny_sd35_model

    write_small_concepts(tmp_path / "images")
    result, _ = small_run(tmp_path, "builtin-tiny-sd35", sd35__lora_format="diffusers", optimizer__learning_rate=0.01,
                          optimizer__text_encoder_lr=0.001, training__epochs=2)
    path = tmp_path / "out" / "lora.safetensors"
    with safe_open(str(path), "pt") as handle:
        keys = set(handle.keys())
    assert keys and all(k.startswith(("transformer.", "text_encoder.", "text_encoder_2.")) for k in keys)
    pipe = StableDiffusion3Pipeline.from_pretrained(str(ensure_tiny_sd35_model()))
    pipe.set_progress_bar_config(disable=True)

    def image():
        return pipe("red thing", num_inference_steps=2, height=64, width=64, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images

    before = image()
    assert load_lora_noting_complaints(pipe, path) == []
    assert set(pipe.get_list_adapters()) == {"transformer", "text_encoder", "text_encoder_2"}
    assert abs(image() - before).max() > 1e-4


@pytest.mark.parametrize("change", [
    {"sd35__weighting_scheme": "sigma_sqrt"}, {"sd35__weighting_scheme": "cosmap"},
    {"sd35__weighting_scheme": "mode", "sd35__mode_scale": 0.5},
    {"sd35__logit_mean": 1.0}, {"sd35__logit_std": 0.5},
    {"sd35__training_shift": 3.0},
    {"sd35__t5xxl_max_token_length": 8},
    {"sd35__apply_lg_attn_mask": True}, {"sd35__apply_t5_attn_mask": True},
    {"sd35__clip_l_dropout_rate": 1.0}, {"sd35__clip_g_dropout_rate": 1.0}, {"sd35__t5_dropout_rate": 1.0},
    {"training__min_timestep": 500},
])
def test_each_sd35_option_changes_the_loss_on_the_same_draws(run, change):
    cfg = run[0]
    assert _fixed_loss(cfg.replace(**change), draws=4) != pytest.approx(_fixed_loss(cfg, draws=4), abs=1e-7)


def _run(root, **changes):
    write_small_concepts(root / "images")
    result, events = small_run(root, "builtin-tiny-sd35", **changes)
    assert result.trainer.model.base.unet.is_gradient_checkpointing == bool(changes.get("training__gradient_checkpointing"))
    return [e["loss"] for e in events if e["type"] == "step"]


def test_gradient_checkpointing_gives_the_same_steps(tmp_path):
    plain = _run(tmp_path / "plain", training__gradient_checkpointing=False)
    checkpointed = _run(tmp_path / "checkpointed", training__gradient_checkpointing=True)
    assert len(plain) == len(checkpointed) > 0
    assert checkpointed == pytest.approx(plain, rel=1e-4)  # recomputed in the backward pass, same numbers


def test_text_encoder_outputs_are_cached_once_reused_from_disk_and_change_nothing(tmp_path):
    plain = _run(tmp_path)
    cached = {"training__cache_text_encoder_outputs": True, "training__cache_text_encoder_outputs_to_disk": True}
    first_result, first = small_run(tmp_path, "builtin-tiny-sd35", **cached)
    assert first_result.trainer.model.base.text_encoders == []  # no samples, no text training: all three freed
    _, second = small_run(tmp_path, "builtin-tiny-sd35", **cached)
    logs = [e for e in first + second if e["type"] == "log" and "text encoder cache" in e["message"]]
    assert [(e["reused"], e["encoded"]) for e in logs] == [(0, 2), (2, 0)]
    steps = [[e["loss"] for e in events if e["type"] == "step"] for events in (first, second)]
    assert steps[0] == steps[1] == plain
    _, shorter = small_run(tmp_path, "builtin-tiny-sd35", sd35__t5xxl_max_token_length=16, **cached)
    assert [e["encoded"] for e in shorter if e["type"] == "log" and "text encoder cache" in e["message"]] == [2]


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one mixed-precision choice per process; a bf16 run needs its own."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_fp8_base_holds_the_frozen_transformer_in_float8_and_trains(tmp_path, fresh_accelerate_state):
    write_small_concepts(tmp_path / "images")
    result, events = small_run(tmp_path, "builtin-tiny-sd35", training__fp8_base=True, training__mixed_precision="bf16")
    linears = [m for m in result.trainer.model.base.unet.modules() if type(m) is torch.nn.Linear]
    frozen = [m for m in linears if not m.weight.requires_grad]
    assert frozen and all(m.weight.dtype == torch.float8_e4m3fn for m in frozen)
    assert all(m.weight.dtype == torch.float32 for m in linears if m.weight.requires_grad)  # the LoRA itself
    assert all(math.isfinite(e["loss"]) for e in events if e["type"] == "step")
