"""Real-size models on a real GPU: measured peak memory and step time against the estimate.

    python benchmarks/gpu_check.py [--steps-dir /tmp/gpu_check] [--only sd15,sdxl]

Each model is built from the configs each family ships (engine/families/<name>/vram_reference.json) with random weights (nothing
is downloaded), saved as a diffusers folder, and trained for one short epoch (25 steps on the
generated dataset) through the real engine (`engine.train.entry.run_config`) at its native
resolution in bf16 with the settings people typically use. The table shows the median s/step,
torch.cuda.max_memory_allocated / memory_reserved, the dashboard's figures (the `step` events'
peak and reserved), the estimate (allocated part and total with context and allocator slack), and
the estimate's error against the measured peak. Adding a family is one builder function and one
entry in MODELS. Exits with a message when no CUDA.

FLUX.1 [dev] (`flux1`, and `flux1-fp8` with `training.fp8_base`) is built on the meta device and
materialised straight on the GPU in bf16 (12B + 4.7B parameters: a CPU init would take minutes),
then trained at 512 px, LoRA rank 16, AdamW8bit, gradient checkpointing, text-encoder outputs
cached, as sd-scripts' Flux guides set it up. Both entries share one saved model folder.
`flux1-fp8-swap` adds `training.blocks_to_swap: 16` (sd-scripts' 12 GB setup at 1024 px). After the
table, one line per CUDA-only path the runs went through: the 8-bit optimizer's state, fp8 weights,
block swapping, NF4 and int8 bases (a short run of a small FLUX.1 on the GPU), SDPA, and the NVML
readings in the step events.

`--dry-run` runs the same code on the CPU with small models (the built-in tiny SD models, a small
FLUX.1 built by the same builder), bf16, a few steps: CI runs it (`bash benchmarks/gpu_check.sh
--dry-run`), so the script works the first time a GPU is there.
SD 3.5 Medium (`sd35-medium`) and Large with an fp8 base (`sd35-large-fp8`) are built the same way
from the SD 3.5 family's reference configs and trained at 1024 px with the same memory settings.
Z-Image-Turbo (`zimage`, and `zimage-fp8` with an fp8 base) likewise, from the Z-Image family's
reference configs (6.2B transformer, 4.0B Qwen3, FLUX.1's autoencoder) at 1024 px, as ai-toolkit's
Z-Image presets train it; neither is in the default set (`--only zimage,zimage-fp8`).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GIB = 1024 ** 3
DEVICE = "cuda"  # where the random weights are drawn (a dry run on the CPU sets "cpu")


def _clip_config(config: dict, pad_token: str):
    from transformers import CLIPTextConfig

    from engine.models.tokenizer import END_TOKEN, clip_vocab_and_merges

    vocab, _ = clip_vocab_and_merges()
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "max_position_embeddings", "projection_dim", "hidden_act")
    return CLIPTextConfig(**{k: config[k] for k in keys}, pad_token_id=vocab[pad_token],
                          bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab[END_TOKEN])


def _text_encoder(config: dict, pad_token: str):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if config["_class_name"] == "CLIPTextModelWithProjection" else CLIPTextModel
    return cls(_clip_config(config, pad_token))


def _components(family: str):
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    from engine.vram.parts import reference_parts

    parts = reference_parts(family)
    strip = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    with torch.device(DEVICE):  # random init on the GPU: seconds instead of minutes
        unet = UNet2DConditionModel(**strip(parts.denoiser))
        vae = AutoencoderKL(**strip(parts.vae))
        pads = ["<|endoftext|>"] if family == "sd1" else ["<|endoftext|>", "!"]
        encoders = [_text_encoder(config, pad) for config, pad in zip(parts.text_encoders, pads)]
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False, prediction_type="epsilon",
                              steps_offset=1, timestep_spacing="leading")
    return unet, vae, encoders, scheduler


def build_sd15(folder: Path) -> dict:
    from diffusers import StableDiffusionPipeline

    from engine.models.tokenizer import build_clip_tokenizer, write_clip_tokenizer

    unet, vae, (text_encoder,), scheduler = _components("sd1")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=build_clip_tokenizer(), unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.to(dtype=__import__("torch").float16).save_pretrained(str(folder), safe_serialization=True)
    write_clip_tokenizer(folder / "tokenizer")
    return {"training.max_resolution": [512, 512], "optimizer.name": "AdamW8bit", "network.rank": 32,
            "network.alpha": 16.0, "optimizer.text_encoder_lr": 5e-5, "training.gradient_checkpointing": False}


def build_sdxl(folder: Path) -> dict:
    from diffusers import StableDiffusionXLPipeline

    from engine.models.tokenizer import build_clip_tokenizer, write_clip_tokenizer

    unet, vae, (first, second), scheduler = _components("sdxl")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=first, text_encoder_2=second,
                                     tokenizer=build_clip_tokenizer(), tokenizer_2=build_clip_tokenizer("!"),
                                     unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True)
    pipe.to(dtype=__import__("torch").float16).save_pretrained(str(folder), safe_serialization=True)
    write_clip_tokenizer(folder / "tokenizer")
    write_clip_tokenizer(folder / "tokenizer_2", pad_token="!")
    return {"model.sdxl": True, "training.max_resolution": [1024, 1024], "buckets.max_resolution": 2048,
            "optimizer.name": "AdamW8bit", "network.rank": 32, "network.alpha": 16.0,
            "optimizer.text_encoder_lr": 0.0, "training.gradient_checkpointing": True}


def _materialise(cls, config, dtype, device: str):
    """`cls(config)` with its parameters made on the meta device, then given storage on `device` in
    `dtype` and random weights (normal 0.02, norms 1, biases 0): no full-precision copy is ever made.
    Buffers (position ids, rotary tables) are built for real, as the model computes them."""
    import torch
    from accelerate import init_empty_weights
    from accelerate.utils import set_module_tensor_to_device

    with init_empty_weights(include_buffers=False):
        module = cls(**config) if isinstance(config, dict) else cls(config)
    for name, param in list(module.named_parameters()):
        set_module_tensor_to_device(module, name, device, value=torch.empty(param.shape, dtype=dtype, device=device))
    module.to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, tensor in module.named_parameters():
            if name.endswith("bias"):
                tensor.zero_()
            elif "norm" in name or tensor.dim() == 1:
                tensor.fill_(1.0)
            else:
                tensor.normal_(0.0, 0.02, generator=generator)
    return module


def flux_pipeline(parts, device: str, dtype=None):
    """A FluxPipeline at the sizes of `parts` (engine.vram's reference configs or smaller ones)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    from engine.families.flux1.reference import REFERENCE_CONFIGS
    from engine.families.flux1.tiny import build_t5_tokenizer
    from engine.models.tokenizer import END_TOKEN, build_clip_tokenizer

    dtype = dtype or torch.bfloat16
    strip = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    clip_config, t5_config = parts.text_encoders
    transformer = _materialise(FluxTransformer2DModel, strip(parts.denoiser), dtype, device)
    vae_config = {**{k: REFERENCE_CONFIGS["vae"][k] for k in ("scaling_factor", "shift_factor")}, **strip(parts.vae)}
    vae = _materialise(AutoencoderKL, vae_config, dtype, device)
    clip = _materialise(CLIPTextModel, _clip_config(clip_config, END_TOKEN), dtype, device)
    t5 = _materialise(T5EncoderModel, T5Config(**strip(t5_config), is_encoder_decoder=False, use_cache=False,
                                               pad_token_id=0, eos_token_id=1), dtype, device)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=build_clip_tokenizer(END_TOKEN),
                        text_encoder_2=t5, tokenizer_2=build_t5_tokenizer(), transformer=transformer)


def save_flux_folder(pipe, folder: Path) -> None:
    from engine.families.flux1.tiny import _finish_t5_tokenizer
    from engine.models.tokenizer import END_TOKEN, write_clip_tokenizer

    pipe.save_pretrained(str(folder), safe_serialization=True)
    write_clip_tokenizer(folder / "tokenizer", pad_token=END_TOKEN)
    _finish_t5_tokenizer(folder / "tokenizer_2")


FLUX_SETTINGS = {"model.family": "flux1", "training.max_resolution": [512, 512], "optimizer.name": "AdamW8bit",
                 "network.rank": 16, "network.alpha": 16.0, "optimizer.text_encoder_lr": 0.0,
                 "training.gradient_checkpointing": True, "training.cache_text_encoder_outputs": True}


def _flux_folder(folder: Path) -> Path:
    """One saved FLUX.1 folder for both Flux entries (saving 33 GB twice would eat the time budget)."""
    import torch

    from engine.vram.parts import reference_parts

    shared = folder.parent.parent / "flux1-shared" / "model"
    if not (shared / "model_index.json").exists():
        pipe = flux_pipeline(SMALL_FLUX() if DRY_RUN else reference_parts("flux1"), DEVICE)
        save_flux_folder(pipe, shared)
        del pipe
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return shared


def build_flux1(folder: Path) -> dict:
    return {**FLUX_SETTINGS, "model.path": str(_flux_folder(folder))}


def build_flux1_fp8(folder: Path) -> dict:
    return {**build_flux1(folder), "training.fp8_base": True}


def sd35_pipeline(configs: dict, device: str, dtype=None):
    """A StableDiffusion3Pipeline at the sizes of `configs` (the SD 3.5 family's reference configs:
    {"denoiser", "text_encoders" [CLIP-L, CLIP-G, T5-XXL], "vae"}, or smaller ones)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from engine.families.sd35.tiny import build_t5_tokenizer
    from engine.models.tokenizer import END_TOKEN, build_clip_tokenizer

    dtype = dtype or torch.bfloat16
    strip = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    clip_l, clip_g, t5_config = configs["text_encoders"]
    transformer = _materialise(SD3Transformer2DModel, strip(configs["denoiser"]), dtype, device)
    vae = _materialise(AutoencoderKL, strip(configs["vae"]), dtype, device)
    encoders = [_materialise(CLIPTextModelWithProjection, _clip_config(config, pad), dtype, device)
                for config, pad in ((clip_l, END_TOKEN), (clip_g, "!"))]
    t5 = _materialise(T5EncoderModel, T5Config(**strip(t5_config), is_encoder_decoder=False, use_cache=False,
                                               pad_token_id=0, eos_token_id=1), dtype, device)
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0), vae=vae,
        text_encoder=encoders[0], tokenizer=build_clip_tokenizer(END_TOKEN), text_encoder_2=encoders[1],
        tokenizer_2=build_clip_tokenizer("!"), text_encoder_3=t5, tokenizer_3=build_t5_tokenizer())


def save_sd35_folder(pipe, folder: Path) -> None:
    from engine.families.sd35.tiny import _finish_t5_tokenizer
    from engine.models.tokenizer import END_TOKEN, write_clip_tokenizer

    pipe.save_pretrained(str(folder), safe_serialization=True)
    write_clip_tokenizer(folder / "tokenizer", pad_token=END_TOKEN)
    write_clip_tokenizer(folder / "tokenizer_2", pad_token="!")
    _finish_t5_tokenizer(folder / "tokenizer_3")


# SD 3.5 as sd-scripts' SD3 guides set it up: 1024 px, rank 16, AdamW8bit, checkpointing, cached text encoders.
SD35_SETTINGS = {"model.family": "sd35", "training.max_resolution": [1024, 1024], "optimizer.name": "AdamW8bit",
                 "network.rank": 16, "network.alpha": 16.0, "optimizer.text_encoder_lr": 0.0,
                 "training.gradient_checkpointing": True, "training.cache_text_encoder_outputs": True,
                 "sd35.weighting_scheme": "logit_normal"}


def _sd35_builder(variant: str, **extra):
    def build(folder: Path) -> dict:
        import torch

        from engine.families.sd35.reference import reference_config

        shared = folder.parent.parent / f"sd35-{variant}-shared" / "model"  # one saved folder per variant
        if not (shared / "model_index.json").exists():
            pipe = sd35_pipeline(small_sd35_configs(variant) if DRY_RUN else reference_config(variant), DEVICE)
            save_sd35_folder(pipe, shared)
            del pipe
            gc.collect()
            torch.cuda.empty_cache()
        small = {"training.max_resolution": [64, 64], "buckets.min_resolution": 32} if DRY_RUN else {}
        return {**SD35_SETTINGS, "model.path": str(shared), **extra, **small}
    return build


def small_sd35_configs(variant: str) -> dict:
    """An SD 3.5 reference config cut down (same keys and structure), for the dry run."""
    from engine.families.sd35.reference import reference_config

    configs = reference_config(variant)
    dual = [0] if configs["denoiser"].get("dual_attention_layers") else []
    denoiser = dict(configs["denoiser"], num_layers=2, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=64,
                    caption_projection_dim=32, pooled_projection_dim=64, pos_embed_max_size=32, dual_attention_layers=dual)
    clips = [dict(c, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, projection_dim=32)
             for c in configs["text_encoders"][:2]]
    t5 = dict(configs["text_encoders"][2], d_model=64, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    vae = dict(configs["vae"], block_out_channels=[32, 32], layers_per_block=1, norm_num_groups=16,
               down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    return {"denoiser": denoiser, "text_encoders": [*clips, t5], "vae": vae}


def zimage_pipeline(transformer_config: dict, qwen_config: dict, vae_config: dict, device: str, dtype=None):
    """A ZImagePipeline at the given sizes (Z-Image's reference configs or smaller ones), weights made on
    `device`; the tokenizer is the tiny model's local one (its ids fit any Qwen3 vocabulary)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    from engine.families.zimage import reference as zref
    from engine.families.zimage.tokenizer import PAD_TOKEN, build_qwen_tokenizer

    dtype = dtype or torch.bfloat16
    strip = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    tokenizer = build_qwen_tokenizer()
    transformer = _materialise(ZImageTransformer2DModel, strip(transformer_config), dtype, device)
    qwen_settings = Qwen3Config(**strip(qwen_config), pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN))
    qwen = _materialise(Qwen3Model, qwen_settings, dtype, device)
    vae = _materialise(AutoencoderKL, strip(vae_config), dtype, device)
    return ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(**zref.SCHEDULER_CONFIG), vae=vae,
                          text_encoder=qwen, tokenizer=tokenizer, transformer=transformer)


def save_zimage_folder(pipe, folder: Path) -> None:
    from engine.families.zimage.tokenizer import write_qwen_tokenizer

    pipe.save_pretrained(str(folder), safe_serialization=True)
    write_qwen_tokenizer(folder / "tokenizer")


def small_zimage_configs() -> tuple[dict, dict, dict]:
    """Z-Image's reference configs with every width and depth cut down (same keys and structure)."""
    from engine.families.zimage import reference as zref

    transformer = dict(zref.TRANSFORMER_CONFIG, dim=64, n_heads=2, n_kv_heads=2, n_layers=2, n_refiner_layers=2,
                       cap_feat_dim=32, axes_dims=[8, 12, 12], axes_lens=[1024, 64, 64])
    qwen = dict(zref.QWEN3_CONFIG, vocab_size=1024, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    vae = dict(zref.VAE_CONFIG, block_out_channels=[32, 32], layers_per_block=1, norm_num_groups=16,
               down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    return transformer, qwen, vae


# Z-Image-Turbo as ai-toolkit's presets train it: 1024 px, rank 16, AdamW8bit, checkpointing, cached Qwen3.
ZIMAGE_SETTINGS = {"model.family": "zimage", "training.max_resolution": [1024, 1024], "buckets.max_resolution": 2048,
                   "optimizer.name": "AdamW8bit", "network.rank": 16, "network.alpha": 16.0,
                   "optimizer.text_encoder_lr": 0.0, "training.gradient_checkpointing": True,
                   "training.cache_text_encoder_outputs": True}


def _zimage_builder(**extra):
    def build(folder: Path) -> dict:
        import torch

        from engine.families.zimage import reference as zref

        shared = folder.parent.parent / "zimage-shared" / "model"  # one saved folder for both entries
        if not (shared / "model_index.json").exists():
            configs = small_zimage_configs() if DRY_RUN else (zref.TRANSFORMER_CONFIG, zref.QWEN3_CONFIG, zref.VAE_CONFIG)
            pipe = zimage_pipeline(*configs, DEVICE)
            save_zimage_folder(pipe, shared)
            del pipe
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return {**ZIMAGE_SETTINGS, "model.path": str(shared), **extra}
    return build


def build_flux1_fp8_swap(folder: Path) -> dict:
    # sd-scripts' documented 12 GB setup: fp8 base, 16 blocks swapped, AdamW8bit, cached text, 1024 px
    return {**build_flux1_fp8(folder), "training.blocks_to_swap": 16 if not DRY_RUN else 3,
            "training.max_resolution": [1024, 1024] if not DRY_RUN else [64, 64]}


# name -> (builder writing a diffusers folder and returning the run's settings, trained side)
MODELS = {"sd15": (build_sd15, 512), "sdxl": (build_sdxl, 1024), "flux1": (build_flux1, 512),
          "flux1-fp8": (build_flux1_fp8, 512), "flux1-fp8-swap": (build_flux1_fp8_swap, 1024),
          "sd35-medium": (_sd35_builder("5-medium"), 1024),
          "sd35-large-fp8": (_sd35_builder("5-large", **{"training.fp8_base": True}), 1024),
          "zimage": (_zimage_builder(), 1024), "zimage-fp8": (_zimage_builder(**{"training.fp8_base": True}), 1024)}
DEFAULT_ONLY = "sd15,sdxl,flux1-fp8,flux1-fp8-swap"  # fits the 8 minutes a lent GPU gives (flux1: --only)
DRY_RUN = False
# the built-in tiny models stand in for the SD builders in a dry run (a real-size build takes minutes on a CPU)
_DRY_SD = {"sd15": "builtin-tiny-sd1", "sdxl": "builtin-tiny-sdxl"}


def SMALL_FLUX():
    """FLUX.1's reference configs cut down (same keys and structure; 4 double and 8 single blocks, so
    block swapping has blocks to swap)."""
    from dataclasses import replace

    from engine.vram.parts import reference_parts

    parts = reference_parts("flux1")
    denoiser = dict(parts.denoiser, num_layers=4, num_single_layers=8, attention_head_dim=16, num_attention_heads=2,
                    joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 6, 6])
    clip = dict(parts.text_encoders[0], hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, projection_dim=32)
    t5 = dict(parts.text_encoders[1], d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    vae = dict(parts.vae, block_out_channels=[32, 32], layers_per_block=1, norm_num_groups=16,
               down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    return replace(parts, denoiser=denoiser, text_encoders=[clip, t5], vae=vae)


def run_one(name: str, work: Path) -> dict:
    import torch

    from engine.config import RunConfig
    from engine.dataset.synthetic import make_synthetic_dataset
    from engine.train.entry import run_config
    from engine.vram import estimate_vram

    builder, side = MODELS[name]
    folder = work / name / "model"
    started = time.monotonic()
    settings = builder(folder)
    if DRY_RUN:
        side = 64
        settings = {**settings, "training.max_resolution": [64, 64], "buckets.min_resolution": 32,
                    "buckets.step": 32, "buckets.max_resolution": 128, "training.max_train_steps": 2}
        if name in _DRY_SD:
            settings.update({"model.path": _DRY_SD[name], "model.quick_pick": _DRY_SD[name], "model.sdxl": name == "sdxl"})
    cuda = torch.cuda.is_available()
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    build_seconds = time.monotonic() - started
    images, _ = make_synthetic_dataset(work / name / "data", seed=0, size=side)
    values = {"model.quick_pick": "custom", "model.path": str(folder), "folders.images": str(images),
              "folders.output": str(work / name / "out"), "folders.output_name": name,
              "training.batch_size": 1, "training.epochs": 1, "training.mixed_precision": "bf16",
              "training.cache_latents": True, "optimizer.scheduler": "constant", "optimizer.warmup_percent": 0.0,
              "optimizer.learning_rate": 1e-4, "training.max_train_steps": MAX_STEPS, **settings}
    cfg = RunConfig.from_values(values)
    steps: list[dict] = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = run_config(cfg, on_event=lambda event: steps.append(event) if event["type"] == "step" else None)
    if result.status != "completed":
        raise RuntimeError(f"{name}: the run {result.status}: {result.message}")
    peak = torch.cuda.max_memory_allocated() if cuda else 0
    reserved = torch.cuda.max_memory_reserved() if cuda else 0
    estimate = estimate_vram(cfg.values, buckets=list(result.trainer.plan.dataset.buckets))
    times = [b["time"] - a["time"] for a, b in zip(steps, steps[1:])][3 if len(steps) > 6 else 0:]
    events_peak = max((s.get("memory", {}).get("peak") or 0 for s in steps), default=0)
    events_reserved = max((s.get("memory", {}).get("reserved") or 0 for s in steps), default=0)
    paths = cuda_paths(result.trainer, steps)
    del result
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return {"model": name, "resolution": side, "build_s": round(build_seconds, 1), "paths": paths,
            "s_per_step": round(statistics.median(times), 3) if times else None,
            "max_allocated": peak, "max_reserved": reserved, "events_peak": events_peak,
            "events_reserved": events_reserved, "estimate_allocated": estimate.allocated_bytes,
            "estimate_total": estimate.total_bytes, "lines": estimate.to_event()["lines"]}


MAX_STEPS = 15  # per entry: enough for a steady s/step after the first steps, inside the time budget


def cuda_paths(trainer, steps: list[dict]) -> dict[str, str]:
    """What each CUDA-only path did in this run, in words (empty entries: the path was not used)."""
    import torch

    found: dict[str, str] = {}
    states = [state for state in trainer.optimizer.state.values() for value in state.values()
              if torch.is_tensor(value) and value.dtype == torch.uint8]
    if states:
        found["8-bit optimizer"] = f"{type(trainer.optimizer.optimizer).__name__}: {len(states)} tensors of 8-bit state"
    unet = trainer.model.base.unet
    fp8 = [m for m in unet.modules() if getattr(getattr(m, "weight", None), "dtype", None) == torch.float8_e4m3fn]
    if fp8:
        found["fp8"] = f"{len(fp8)} frozen linears stored in float8_e4m3fn"
    swap = trainer.model.savers.swap
    if swap is not None:
        moves = sum(len(group.log) for group in swap.swaps.values())
        late = sum(kind == "late" for group in swap.swaps.values() for kind, _ in group.log)
        found["block swap"] = (f"{trainer.model.savers.swapped_bytes / GIB:.2f} GiB kept off the GPU, {moves} moves, "
                               f"{late} late (a block waited for its copy)")
    processors = {type(p).__name__ for p in getattr(unet, "attn_processors", {}).values()}
    if torch.cuda.is_available():
        backends = [name for name, on in (("flash", torch.backends.cuda.flash_sdp_enabled()),
                                          ("mem-efficient", torch.backends.cuda.mem_efficient_sdp_enabled())) if on]
        found["SDPA"] = f"{', '.join(sorted(processors))}; backends on: {', '.join(backends) or 'math only'}"
    readings = [s for s in steps if "gpu_util" in (s.get("memory") or {})]
    found["NVML"] = f"gpu_util in {len(readings)} of {len(steps)} step events"
    return found


def quantized_runs(work: Path) -> list[str]:
    """NF4 and int8 bases (bitsandbytes' CUDA kernels on a GPU): a short run of a small FLUX.1 each."""
    import torch

    from engine.config import RunConfig
    from engine.dataset.synthetic import make_synthetic_dataset
    from engine.train.entry import run_config

    folder = work / "flux1-small" / "model"
    if not (folder / "model_index.json").exists():
        save_flux_folder(flux_pipeline(SMALL_FLUX(), DEVICE, torch.float32), folder)
    images, _ = make_synthetic_dataset(work / "flux1-small" / "data", seed=0, size=64)
    lines = []
    for kind in ("nf4", "int8"):
        values = {**FLUX_SETTINGS, "model.quick_pick": "custom", "model.path": str(folder),
                  "folders.images": str(images), "folders.output": str(work / "flux1-small" / kind),
                  "folders.output_name": kind, "training.mixed_precision": "bf16", "training.max_resolution": [64, 64],
                  "buckets.min_resolution": 32, "buckets.step": 32, "buckets.max_resolution": 128,
                  "training.max_train_steps": 2 if DRY_RUN else 5, "training.base_quantization": kind,
                  "optimizer.name": "AdamW"}
        losses: list[float] = []
        result = run_config(RunConfig.from_values(values),
                            on_event=lambda e: losses.append(e["loss"]) if e["type"] == "step" else None)
        layers = sum(type(m).__name__ in ("Linear4bit", "Linear8bitLt") for m in result.trainer.model.base.unet.modules())
        lines.append(f"{kind}: {result.status}, {layers} bitsandbytes layers, losses "
                     + ", ".join(f"{x:.4f}" for x in losses))
    return lines


def print_paths(rows: list[dict], extra: list[str]) -> None:
    print("CUDA-only paths exercised:" if not DRY_RUN else "paths exercised (dry run on the CPU):")
    for name in ("8-bit optimizer", "fp8", "block swap", "SDPA", "NVML"):
        used = [f"{r['model']}: {r['paths'][name]}" for r in rows if name in r.get("paths", {})]
        print(f"  {name}: " + ("; ".join(used) if used else "not used"))
    for line in extra:
        print(f"  {line}")


def print_table(rows: list[dict]) -> None:
    print(f"{'model':<15} {'px':>5} {'s/step':>7} {'max alloc':>10} {'reserved':>9} {'events peak':>12} "
          f"{'events res.':>12} {'est. alloc':>11} {'est. total':>11} {'error':>7}")
    for r in rows:
        error = f"{r['estimate_allocated'] / r['max_allocated'] - 1:+.1%}" if r["max_allocated"] else "n/a"
        print(f"{r['model']:<15} {r['resolution']:>5} {r['s_per_step'] or 0:>7.3f} {r['max_allocated'] / GIB:>9.2f}G "
              f"{r['max_reserved'] / GIB:>8.2f}G {r['events_peak'] / GIB:>11.2f}G {r['events_reserved'] / GIB:>11.2f}G "
              f"{r['estimate_allocated'] / GIB:>10.2f}G {r['estimate_total'] / GIB:>10.2f}G {error:>7}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default=None, help="where models, data and outputs go (default: a temp dir)")
    parser.add_argument("--only", default=DEFAULT_ONLY, help="comma-separated subset of: " + ", ".join(MODELS))
    parser.add_argument("--json", default=None, help="also write the rows (with each estimate line) here")
    parser.add_argument("--dry-run", action="store_true", help="the same code on the CPU with small models")
    parser.add_argument("--budget-s", type=float, default=480, help="start no entry after this many seconds")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("gpu_check: torch is not installed; nothing to measure")
        return 0
    global DEVICE, DRY_RUN
    if args.dry_run:
        DEVICE, DRY_RUN = "cpu", True
        args.budget_s = float("inf")  # a slow shared CPU must still go through every entry
        print(f"gpu_check --dry-run on the CPU, torch {torch.__version__}")
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; run it on a GPU machine (nothing was measured)")
        return 0
    else:
        print(f"gpu_check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    rows, failed = [], []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu_check-", dir=args.work_dir) as work:
        for name in [n.strip() for n in args.only.split(",") if n.strip()]:
            if time.monotonic() - began > args.budget_s:
                print(f"{name}: skipped, the time budget ({args.budget_s:.0f} s) is spent")
                continue
            try:
                rows.append(run_one(name, Path(work)))
            except Exception as exc:  # noqa: BLE001 - one failed entry must not hide the others' numbers
                failed.append(name)
                print(f"{name}: FAILED: {type(exc).__name__}: {exc}")
                continue
            print_table(rows[-1:])
            sys.stdout.flush()
        try:
            extra = quantized_runs(Path(work))
        except Exception as exc:  # noqa: BLE001
            failed.append("nf4/int8")
            extra = [f"nf4/int8: FAILED: {type(exc).__name__}: {exc}"]
    print()
    print_table(rows)
    print_paths(rows, extra)
    print(f"gpu_check: {len(rows)} entries measured, {len(failed)} failed, {time.monotonic() - began:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
