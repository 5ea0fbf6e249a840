"""Real-size models on a real GPU: measured peak memory and step time against the estimate.

    python benchmarks/gpu_check.py [--steps-dir /tmp/gpu_check] [--only sd15,sdxl]

Each model is built from the configs shipped in engine/vram/configs with random weights (nothing
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

Z-Image-Turbo (`zimage`, and `zimage-fp8`) is built the same way from its reference configs (6.2B
transformer, 4.0B Qwen3, FLUX.1's autoencoder) and trained at 1024 px, rank 16, AdamW8bit,
checkpointing and cached Qwen3 outputs, as ai-toolkit's Z-Image presets do.
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

    from engine.models.families.flux1_reference import REFERENCE_CONFIGS
    from engine.models.tiny_flux import build_t5_tokenizer
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
    from engine.models.tiny_flux import _finish_t5_tokenizer
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
        pipe = flux_pipeline(reference_parts("flux1"), DEVICE)
        save_flux_folder(pipe, shared)
        del pipe
        gc.collect()
        torch.cuda.empty_cache()
    return shared


def build_flux1(folder: Path) -> dict:
    return {**FLUX_SETTINGS, "model.path": str(_flux_folder(folder))}


def build_flux1_fp8(folder: Path) -> dict:
    return {**build_flux1(folder), "training.fp8_base": True}


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
    qwen = _materialise(Qwen3Model, Qwen3Config(**strip(qwen_config), pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN)),
                        dtype, device)
    vae = _materialise(AutoencoderKL, strip(vae_config), dtype, device)
    return ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(**zref.SCHEDULER_CONFIG), vae=vae,
                          text_encoder=qwen, tokenizer=tokenizer, transformer=transformer)


def save_zimage_folder(pipe, folder: Path) -> None:
    from engine.families.zimage.tokenizer import write_qwen_tokenizer

    pipe.save_pretrained(str(folder), safe_serialization=True)
    write_qwen_tokenizer(folder / "tokenizer")


ZIMAGE_SETTINGS = {"model.family": "zimage", "training.max_resolution": [1024, 1024], "buckets.max_resolution": 2048,
                   "optimizer.name": "AdamW8bit", "network.rank": 16, "network.alpha": 16.0,
                   "optimizer.text_encoder_lr": 0.0, "training.gradient_checkpointing": True,
                   "training.cache_text_encoder_outputs": True}


def _zimage_folder(folder: Path) -> Path:
    """One saved Z-Image-Turbo-sized folder for both Z-Image entries (6.2B + 4.0B parameters)."""
    import torch

    from engine.families.zimage import reference as zref

    shared = folder.parent.parent / "zimage-shared" / "model"
    if not (shared / "model_index.json").exists():
        pipe = zimage_pipeline(zref.TRANSFORMER_CONFIG, zref.QWEN3_CONFIG, zref.VAE_CONFIG, DEVICE)
        save_zimage_folder(pipe, shared)
        del pipe
        gc.collect()
        torch.cuda.empty_cache()
    return shared


def build_zimage(folder: Path) -> dict:
    return {**ZIMAGE_SETTINGS, "model.path": str(_zimage_folder(folder))}


def build_zimage_fp8(folder: Path) -> dict:
    return {**build_zimage(folder), "training.fp8_base": True}


# name -> (builder writing a diffusers folder and returning the run's settings, trained side)
MODELS = {"sd15": (build_sd15, 512), "sdxl": (build_sdxl, 1024), "flux1": (build_flux1, 512),
          "flux1-fp8": (build_flux1_fp8, 512), "zimage": (build_zimage, 1024), "zimage-fp8": (build_zimage_fp8, 1024)}


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
    gc.collect()
    torch.cuda.empty_cache()
    build_seconds = time.monotonic() - started
    images, _ = make_synthetic_dataset(work / name / "data", seed=0, size=side)
    values = {"model.quick_pick": "custom", "model.path": str(folder), "folders.images": str(images),
              "folders.output": str(work / name / "out"), "folders.output_name": name,
              "training.batch_size": 1, "training.epochs": 1, "training.mixed_precision": "bf16",
              "training.cache_latents": True, "optimizer.scheduler": "constant", "optimizer.warmup_percent": 0.0,
              "optimizer.learning_rate": 1e-4, **settings}
    cfg = RunConfig.from_values(values)
    steps: list[dict] = []
    torch.cuda.reset_peak_memory_stats()
    result = run_config(cfg, on_event=lambda event: steps.append(event) if event["type"] == "step" else None)
    peak, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
    estimate = estimate_vram(cfg.values, buckets=list(result.trainer.plan.dataset.buckets))
    times = [b["time"] - a["time"] for a, b in zip(steps, steps[1:])][3:]
    events_peak = max((s.get("memory", {}).get("peak") or 0 for s in steps), default=0)
    events_reserved = max((s.get("memory", {}).get("reserved") or 0 for s in steps), default=0)
    del result
    gc.collect()
    torch.cuda.empty_cache()
    return {"model": name, "resolution": side, "build_s": round(build_seconds, 1),
            "s_per_step": round(statistics.median(times), 3) if times else None,
            "max_allocated": peak, "max_reserved": reserved, "events_peak": events_peak,
            "events_reserved": events_reserved, "estimate_allocated": estimate.allocated_bytes,
            "estimate_total": estimate.total_bytes, "lines": estimate.to_event()["lines"]}


def print_table(rows: list[dict]) -> None:
    print(f"{'model':<9} {'px':>5} {'s/step':>7} {'max alloc':>10} {'reserved':>9} {'events peak':>12} "
          f"{'events res.':>12} {'est. alloc':>11} {'est. total':>11} {'error':>7}")
    for r in rows:
        error = r["estimate_allocated"] / r["max_allocated"] - 1 if r["max_allocated"] else float("nan")
        print(f"{r['model']:<9} {r['resolution']:>5} {r['s_per_step'] or 0:>7.3f} {r['max_allocated'] / GIB:>9.2f}G "
              f"{r['max_reserved'] / GIB:>8.2f}G {r['events_peak'] / GIB:>11.2f}G {r['events_reserved'] / GIB:>11.2f}G "
              f"{r['estimate_allocated'] / GIB:>10.2f}G {r['estimate_total'] / GIB:>10.2f}G {error:>+7.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default=None, help="where models, data and outputs go (default: a temp dir)")
    parser.add_argument("--only", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    parser.add_argument("--json", default=None, help="also write the rows (with each estimate line) here")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("gpu_check: torch is not installed; nothing to measure")
        return 0
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; run it on a GPU machine (nothing was measured)")
        return 0
    print(f"gpu_check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu_check-", dir=args.work_dir) as work:
        for name in [n.strip() for n in args.only.split(",") if n.strip()]:
            rows.append(run_one(name, Path(work)))
            print_table(rows[-1:])
            sys.stdout.flush()
    print()
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
