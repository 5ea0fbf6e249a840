"""The VRAM estimate against what training really creates on the tiny models, and where it shows."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from engine import families
from engine.families.builtin import builtin_family
from engine.vram import GIB, estimate_vram, ways_to_fit
from engine.vram.counts import (clip_parameters, denoiser_parameters, t5_encoder_parameters,
                                text_encoder_parameters, vae_parameters)
from engine.vram.parts import model_parts, reference_parts


def test_reference_configs_give_the_published_parameter_counts():
    # totals of the released checkpoints' diffusers/transformers components
    assert denoiser_parameters(reference_parts("sd1").denoiser) == 859_520_964
    assert denoiser_parameters(reference_parts("sdxl").denoiser) == 2_567_463_684
    assert denoiser_parameters(reference_parts("flux1").denoiser) == 11_901_408_320
    assert clip_parameters(reference_parts("sd1").text_encoders[0]) == 123_060_480
    assert clip_parameters(reference_parts("sdxl").text_encoders[1]) == 694_659_840
    assert t5_encoder_parameters(reference_parts("flux1").text_encoders[1]) == 4_762_310_656
    assert vae_parameters(reference_parts("sd1").vae) == 83_653_863


@pytest.mark.parametrize("name", ["builtin-tiny-sd1", "builtin-tiny-sd2-v", "builtin-tiny-sdxl"])
def test_parameter_counts_match_the_built_tiny_models(name):
    from engine.families.load import load_base_model

    base = load_base_model(name, family=families.get(builtin_family(name)))
    parts = _tiny_parts(name)
    assert denoiser_parameters(parts.denoiser) == sum(p.numel() for p in base.unet.parameters())
    assert vae_parameters(parts.vae) == sum(p.numel() for p in base.vae.parameters())
    for config, encoder in zip(parts.text_encoders, base.text_encoders, strict=True):
        assert text_encoder_parameters(config) == sum(p.numel() for p in encoder.parameters())


def _tiny_parts(name: str):
    from engine.families.builtin import ensure_builtin_model

    ensure_builtin_model(name)
    return model_parts({"model.path": name})


def _trained_state(tiny_config, **overrides):
    """Build the run the engine would train (model, networks, optimizer) and take one step."""
    import torch

    from engine.train.loop import Trainer

    from engine.plan import plan_run

    cfg = tiny_config(**overrides)
    trainer = Trainer(cfg, plan_run(cfg), seed=7)
    trainer.setup()
    params = trainer.model.unet_parameters() + trainer.model.text_parameters()
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    trainer.optimizer.step()
    return trainer, params


def _unique_bytes(tensors) -> int:
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


@pytest.mark.parametrize("overrides", [
    dict(network__type="lora", optimizer__name="AdamW"),
    dict(network__type="locon", network__conv_rank=2, optimizer__name="AdamW8bit"),
    dict(network__type="loha", network__conv_rank=2, optimizer__name="Adafactor", optimizer__text_encoder_lr=0),
    dict(network__type="lokr", network__conv_rank=2, optimizer__name="Prodigy", optimizer__learning_rate=1.0,
         optimizer__text_encoder_lr=1.0),
    dict(network__type="lokr", network__conv_rank=2, network__lokr_factor=4, network__lokr_decompose_both=True,
         network__rank=2, optimizer__name="AdamW"),
    dict(network__type="lokr", network__conv_rank=2, network__lokr_full_matrix=True, optimizer__name="AdamW"),
    dict(network__type="dylora", network__dylora_unit=2, optimizer__name="AdamW"),
    dict(network__type="lora", optimizer__name="Lion"),
    dict(network__type="lora", optimizer__name="DAdaptAdam", optimizer__learning_rate=1.0, optimizer__text_encoder_lr=1.0),
    dict(network__type="lora", optimizer__name="SGDNesterov"),
    dict(model__quick_pick="builtin-tiny-sdxl", network__type="lora", optimizer__name="Lion8bit"),
])
def test_lora_gradient_and_optimizer_terms_equal_the_tensors_training_creates(tiny_config, overrides):
    from engine.optim.optimizers import unwrap_optimizer

    trainer, params = _trained_state(tiny_config, **overrides)
    estimate = estimate_vram(trainer.cfg.values)
    lines = {line.name: line.bytes for line in estimate.lines}
    assert lines["LoRA parameters"] == sum(p.numel() * p.element_size() for p in params)
    assert lines["LoRA gradients"] == sum(p.grad.numel() * p.grad.element_size() for p in params)
    state = unwrap_optimizer(trainer.optimizer).state
    tensors = [v for p in params for v in state[p].values() if hasattr(v, "untyped_storage")]
    assert lines["optimizer state"] == _unique_bytes(tensors)


def _measure_unet(name: str, resolution: int, batch: int, checkpointing: bool, network_type: str = "lora"):
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    from engine.families.load import load_base_model
    from engine.networks.inject import apply_network
    from tests.vram_support import saved_activation_bytes

    base = load_base_model(name, family=families.get(builtin_family(name)))
    unet = base.unet
    apply_network(unet, component="unet", network_type=network_type, rank=4, alpha=1,
                  conv_rank=4 if network_type != "lora" else 0, conv_alpha=1)
    unet.set_attn_processor(AttnProcessor2_0())
    unet.train()
    side = resolution // 4  # the tiny VAE halves twice
    torch.manual_seed(0)
    latents = torch.randn(batch, 4, side, side)
    text = torch.randn(batch, 77, unet.config.cross_attention_dim)
    added = None
    if unet.config.addition_embed_type == "text_time":
        added = {"text_embeds": torch.randn(batch, 64), "time_ids": torch.randn(batch, 6)}
    timesteps = torch.full((batch,), 500)
    return saved_activation_bytes(unet, lambda: unet(latents, timesteps, text, added_cond_kwargs=added).sample,
                                  checkpointing=checkpointing)


GRID = [(64, 1, False), (128, 1, False), (64, 2, False), (64, 1, True), (128, 2, True)]


@pytest.mark.parametrize("name", ["builtin-tiny-sd1", "builtin-tiny-sd2-v", "builtin-tiny-sdxl"])
def test_activation_term_is_within_five_percent_of_what_autograd_saves(name):
    from engine.vram.activations import unet_activations

    config = _tiny_parts(name).denoiser
    for resolution, batch, checkpointing in GRID:
        measured = _measure_unet(name, resolution, batch, checkpointing)
        model = unet_activations(config, latent_tokens=(resolution // 4) ** 2, batch=batch, text_tokens=77,
                                 checkpointing=checkpointing, lora_rank=4, lora_on_resnets=False)
        predicted = model.kept.bytes(4, autocast=False)
        assert abs(predicted / measured - 1) < 0.05, (resolution, batch, checkpointing, predicted, measured)


def test_activation_term_covers_locon_resnet_adapters():
    from engine.vram.activations import unet_activations

    config = _tiny_parts("builtin-tiny-sd1").denoiser
    measured = _measure_unet("builtin-tiny-sd1", 128, 1, False, network_type="locon")
    model = unet_activations(config, latent_tokens=32 * 32, batch=1, text_tokens=77, checkpointing=False,
                             lora_rank=4, lora_on_resnets=True)
    assert abs(model.kept.bytes(4, autocast=False) / measured - 1) < 0.10


def _values(**changes):
    values = {"model.quick_pick": "sd15", "training.max_resolution": [512, 512], "training.batch_size": 1,
              "optimizer.name": "AdamW8bit", "optimizer.learning_rate": 1e-4, "optimizer.text_encoder_lr": 5e-5,
              "training.mixed_precision": "bf16", "network.rank": 8}
    values.update(changes)
    return values


def test_activations_grow_with_resolution_and_batch_and_shrink_with_checkpointing():
    def activations(**changes):
        return next(line.bytes for line in estimate_vram(_values(**changes)).lines if line.name == "activations")

    base = activations()
    assert activations(**{"training.max_resolution": [1024, 1024]}) > 3.5 * base
    assert activations(**{"training.batch_size": 2}) > 1.9 * base
    assert activations(**{"training.gradient_checkpointing": True}) < base / 3


COMMUNITY_CASES = [
    # (what the communities report, values, GPU GiB it must fit)
    ("SD 1.5 LoRA, 512 px, batch 1", _values(), 8),
    ("SDXL LoRA, 1024 px, checkpointing, 8-bit optimizer",
     _values(**{"model.family": "sdxl", "training.max_resolution": [1024, 1024],
                "training.gradient_checkpointing": True, "optimizer.text_encoder_lr": 0}), 12),
    ("FLUX.1-dev LoRA, fp8 base, 512 px",
     _values(**{"model.family": "flux1", "training.fp8_base": True, "training.gradient_checkpointing": True,
                "training.cache_text_encoder_outputs": True, "optimizer.text_encoder_lr": 0, "network.rank": 16}), 24),
]


@pytest.mark.parametrize("label,values,gpu_gib", COMMUNITY_CASES, ids=[c[0] for c in COMMUNITY_CASES])
def test_well_known_setups_fit_where_their_communities_say(label, values, gpu_gib):
    estimate = estimate_vram(values)
    assert estimate.fits(gpu_gib * GIB), f"{label}: {estimate.total_gib:.1f} GiB"
    assert estimate.total_gib > gpu_gib / 4  # and not absurdly low


def test_sdxl_without_checkpointing_on_an_8_gib_gpu_gets_ranked_fixes():
    values = _values(**{"model.family": "sdxl", "training.max_resolution": [1024, 1024], "training.batch_size": 2,
                        "optimizer.name": "AdamW"})
    fixes = ways_to_fit(values)
    savings = [fix.saving_bytes for fix in fixes]
    assert savings == sorted(savings, reverse=True) and all(s > 0 for s in savings)
    assert fixes[0].changes == {"training.gradient_checkpointing": True}
    batch_fix = next(fix for fix in fixes if "training.batch_size" in fix.changes)
    assert batch_fix.changes == {"training.batch_size": 1, "training.gradient_accumulation_steps": 2}
    for fix in fixes:  # each saving is what the estimate says after the change
        after = estimate_vram({**values, **fix.changes})
        assert estimate_vram(values).total_bytes - after.total_bytes == fix.saving_bytes


def test_fixes_never_offer_a_setting_the_schema_lacks():
    from engine.config import SETTINGS

    keys = set(SETTINGS.keys())
    for fix in ways_to_fit(_values(**{"model.family": "sdxl", "optimizer.name": "AdamW"}), keys):
        assert set(fix.changes) <= keys, fix


def test_validate_prints_the_estimate_and_breakdown_without_importing_torch(tiny_config, tmp_path):
    from engine.config import save_run_file

    cfg = tiny_config(model__quick_pick="sd15", training__max_resolution=[512, 512], hardware__vram_gb=8.0)
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    code = ("import sys, time; t = time.time(); from tui_lora.cli import main; rc = main(['validate', sys.argv[1]]); "
            "print('torch loaded:', 'torch' in sys.modules); print('seconds:', time.time() - t); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(run_file)], capture_output=True, text=True)
    # Offline (as in CI) the sd15 weights are not in the cache: validate says so, and must still
    # print the estimate, which needs only the shipped configs.
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 0 or (len(errors) == 1 and "not in the local Hugging Face cache" in errors[0]), done.stderr
    lines = done.stdout.splitlines()
    assert "torch loaded: False" in lines
    peak = next(line for line in lines if line.startswith("estimated peak VRAM: "))
    gib = float(peak.split()[3])
    assert math.isclose(gib, estimate_vram(cfg.values, buckets=[(512, 512)]).total_gib, abs_tol=0.1)
    assert "fits this 8 GiB GPU" in peak
    for name in ("UNet weights", "LoRA gradients", "optimizer state", "activations", "CUDA context"):
        assert any(line.strip().startswith(name) for line in lines), name


def test_validate_lists_ways_to_fit_when_the_gpu_is_too_small(tiny_config, tmp_path):
    from engine.config import save_run_file

    cfg = tiny_config(model__quick_pick="sdxl-base", training__max_resolution=[1024, 1024], hardware__vram_gb=6.0,
                      buckets__max_resolution=2048)
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    done = subprocess.run([sys.executable, "-m", "tui_lora.cli", "validate", str(run_file)],
                          capture_output=True, text=True)
    assert "does not fit this 6 GiB GPU" in done.stdout, done.stdout + done.stderr
    assert "1. turn on gradient checkpointing" in done.stdout


def test_estimate_event_payload_is_json():
    estimate = estimate_vram(_values())
    payload = json.loads(json.dumps(estimate.to_event()))
    assert payload["total_bytes"] == estimate.total_bytes
    assert [name for name, _ in payload["lines"]][0] == "UNet weights"


def test_run_started_carries_the_estimate_and_the_dashboard_keeps_it(tiny_config):
    from pathlib import Path

    from engine.train.entry import run_config
    from tui_lora.dashboard.reducer import build_state

    cfg = tiny_config(training__epochs=1)
    result = run_config(cfg)
    events_file = Path(cfg.folders.output) / ".runs" / result.run.run_id / "events.jsonl"
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    started = next(event for event in events if event["type"] == "run_started")
    expected = estimate_vram(cfg.values, buckets=list(result.trainer.plan.dataset.buckets))
    assert started["vram_estimate"]["total_bytes"] == expected.total_bytes
    assert build_state(events).vram_estimate == expected.allocated_bytes


def test_each_lora_layer_keeps_its_own_copy_of_a_half_precision_input():
    """peft casts a bf16 input to the fp32 adapter; the copy lives until backward (the `cast` slot)."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    from engine.families.load import load_base_model
    from engine.networks.inject import apply_network
    from engine.vram.activations import unet_activations
    from tests.vram_support import saved_activation_bytes

    def measure(with_lora: bool) -> int:
        unet = load_base_model("builtin-tiny-sd1").unet.to(torch.bfloat16)
        if with_lora:
            apply_network(unet, component="unet", network_type="lora", rank=4, alpha=1)
        else:  # something must need a gradient for autograd to save anything
            unet.requires_grad_(False)
            unet.conv_in.weight.requires_grad_(True)
        unet.set_attn_processor(AttnProcessor2_0())
        latents = torch.randn(1, 4, 32, 32, dtype=torch.bfloat16)
        text = torch.randn(1, 77, unet.config.cross_attention_dim, dtype=torch.bfloat16)
        return saved_activation_bytes(unet, lambda: unet(latents, torch.tensor([500]), text).sample,
                                      checkpointing=False)

    config = _tiny_parts("builtin-tiny-sd1").denoiser
    common = dict(latent_tokens=32 * 32, batch=1, text_tokens=77, checkpointing=False, lora_on_resnets=False)
    with_lora, without = unet_activations(config, lora_rank=4, **common), unet_activations(config, lora_rank=0, **common)
    # no autocast here: the copies stay fp32 (4 bytes), and so do the LoRA down outputs
    predicted = 4 * (with_lora.kept.cast - without.kept.cast) + 4 * (with_lora.kept.compute - without.kept.compute)
    measured = measure(True) - measure(False)
    assert abs(predicted / measured - 1) < 0.10, (predicted, measured)


def test_gpu_size_comes_from_nvml_else_the_setting(monkeypatch):
    from engine.vram import gpu

    monkeypatch.setattr(gpu, "gpu_memory_bytes", lambda index=0: None)
    assert gpu.planned_gpu_bytes({"hardware.vram_gb": 12.0}) == (12 * GIB, "hardware.vram_gb")
    assert gpu.planned_gpu_bytes({}) == (None, "")
    monkeypatch.setattr(gpu, "gpu_memory_bytes", lambda index=0: 80 * GIB if index == 1 else None)
    assert gpu.planned_gpu_bytes({"hardware.vram_gb": 12.0, "hardware.gpu_ids": [1]}) == (80 * GIB, "this GPU")
