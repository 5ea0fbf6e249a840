"""Real-size models on a real GPU: measured peak memory and step time against the estimate.

    python benchmarks/gpu_check.py [--steps-dir /tmp/gpu_check] [--only sd15,sdxl]

Each model is built from the configs shipped in engine/vram/configs with random weights (nothing
is downloaded), saved as a diffusers folder, and trained for one short epoch (25 steps on the
generated dataset) through the real engine (`engine.train.entry.run_config`) at its native
resolution in bf16 with the settings people typically use. The table shows the median s/step,
torch.cuda.max_memory_allocated / memory_reserved, the dashboard's figures (the `step` events'
peak and reserved), the estimate (allocated part and total with context and allocator slack), and
the estimate's error against the measured peak. Adding a family (FLUX.1 once engine.models can
build it) is one builder function and one entry in MODELS. Exits with a message when no CUDA.
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


def _text_encoder(config: dict, pad_token: str):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from engine.models.tokenizer import END_TOKEN, clip_vocab_and_merges

    vocab, _ = clip_vocab_and_merges()
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "max_position_embeddings", "projection_dim", "hidden_act")
    text_config = CLIPTextConfig(**{k: config[k] for k in keys}, pad_token_id=vocab[pad_token],
                                 bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab[END_TOKEN])
    cls = CLIPTextModelWithProjection if config["_class_name"] == "CLIPTextModelWithProjection" else CLIPTextModel
    return cls(text_config)


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


# name -> (builder writing a diffusers folder and returning the run's settings, native side)
MODELS = {"sd15": (build_sd15, 512), "sdxl": (build_sdxl, 1024)}


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
    print(f"{'model':<6} {'px':>5} {'s/step':>7} {'max alloc':>10} {'reserved':>9} {'events peak':>12} "
          f"{'events res.':>12} {'est. alloc':>11} {'est. total':>11} {'error':>7}")
    for r in rows:
        error = r["estimate_allocated"] / r["max_allocated"] - 1 if r["max_allocated"] else float("nan")
        print(f"{r['model']:<6} {r['resolution']:>5} {r['s_per_step'] or 0:>7.3f} {r['max_allocated'] / GIB:>9.2f}G "
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
