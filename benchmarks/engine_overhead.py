"""What the engine costs over a bare training loop, per step, on the same model and data.

"Ours" is a real run through `run_config` (events, accelerate, schedules, the memory probe...);
the step time is the gap between consecutive `step` events. "Bare" builds the identical
peft-adapted model with `engine.train.setup.build_model`, precomputes latents and text embeddings
once, and runs forward / loss / backward / clip / optimizer step / zero_grad over batches of the
same shapes. Both train the UNet LoRA only (the text encoder's learning rate is 0), with AdamW.

Rounds alternate ours and bare so a busy machine slows both alike; the figure printed is
median(bare) / median(ours) over the steady-state steps of every round (1.0 = no overhead;
the target is ≥ 0.95). A second line compares our run with the latent cache on and off.

    python benchmarks/engine_overhead.py [--steps 40] [--rounds 3] [--batch-size 2] [--no-cache-line]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

WARMUP_STEPS = 5  # first steps pay for allocator growth and lazy initialisation


def make_config(root: Path, images: Path, *, batch_size: int, epochs: int, cache_latents: bool, name: str):
    from engine.config import RunConfig

    return RunConfig.from_values({
        "model.quick_pick": "builtin-tiny-sd1",
        "folders.images": str(images),
        "folders.output": str(root / "out"),
        "folders.output_name": name,
        "network.rank": 8,
        "network.alpha": 4.0,
        "training.batch_size": batch_size,
        "training.epochs": epochs,
        "training.seed": 1,
        "training.cpu_threads_per_process": 1,
        "training.cache_latents": cache_latents,
        "training.save_precision": "float",
        "buckets.step": 32,
        "optimizer.name": "AdamW",
        "optimizer.learning_rate": 1e-4,
        "optimizer.text_encoder_lr": 0.0,
        "optimizer.scheduler": "constant",
        "optimizer.warmup_percent": 0.0,
        "overwrite": True,
    })


def epochs_for(cfg_factory, steps: int) -> int:
    from engine.plan import plan_run

    per_epoch = plan_run(cfg_factory(1)).steps_per_epoch
    return max(1, -(-steps // per_epoch))


def our_step_times(cfg) -> list[float]:
    """Seconds between consecutive step events of a real run, warm-up steps dropped."""
    from engine.train.entry import run_config

    stamps: list[float] = []

    def on_event(event: dict) -> None:
        if event["type"] == "step":
            stamps.append(time.perf_counter())

    result = run_config(cfg, on_event=on_event)
    if result.status != "completed":
        raise SystemExit(f"our run failed: {result.message}")
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return gaps[WARMUP_STEPS:]


class BareLoop:
    """The least a training step can do on the same modules, shapes and optimizer."""

    def __init__(self, cfg):
        import torch

        from engine.plan import plan_run
        from engine.train.batches import epoch_batches
        from engine.train.latents import LatentEncoder
        from engine.train.setup import build_model
        from engine.diffusion.text import encode_captions

        from engine.train.loop import _quiet_libraries

        _quiet_libraries()
        torch.manual_seed(0)
        self.cfg = cfg
        self.model = build_model(cfg, torch.device("cpu"), torch.float32)
        base = self.model.base
        plan = plan_run(cfg)
        items = plan.dataset.items
        encoder = LatentEncoder(base.vae, scaling_factor=base.scaling_factor, shift_factor=None,
                                device=torch.device("cpu"), dtype=torch.float32, disk=False, seed=1)
        encoder.fill(items, [False])
        with torch.no_grad():
            cond = encode_captions(base.tokenizers, base.text_encoders, [item.caption for item in items],
                                   sdxl=False, clip_skip=1, max_token_length=75, device="cpu").hidden
        self.batches = []
        for epoch in range(plan.epochs):
            for batch in epoch_batches(items, batch_size=cfg.training.batch_size, seed=1, epoch=epoch, flip=False):
                indices = [draw.item_index for draw in batch]
                self.batches.append((torch.stack([encoder.memory[(i, False)] for i in indices]), cond[indices]))
        self.unet = base.unet
        self.unet.train()
        self.scheduler = base.noise_scheduler
        self.params = self.model.unet_parameters()
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.unet_lr)
        self.generator = torch.Generator().manual_seed(1)

    def step_times(self, steps: int) -> list[float]:
        import torch
        import torch.nn.functional as F

        times = []
        clip = self.cfg.training.max_grad_norm
        for index in range(steps):
            latents, hidden = self.batches[index % len(self.batches)]
            began = time.perf_counter()
            noise = torch.randn(latents.shape, generator=self.generator)
            timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (latents.shape[0],),
                                      generator=self.generator)
            noisy = self.scheduler.add_noise(latents, noise, timesteps)
            prediction = self.unet(noisy, timesteps, hidden).sample
            loss = F.mse_loss(prediction.float(), noise.float())
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(self.params, clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            loss.item()
            times.append(time.perf_counter() - began)
        return times[WARMUP_STEPS:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="steps per measured run (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of ours and bare (default 3)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-cache-line", action="store_true", help="skip the cache on/off comparison")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from engine.dataset.synthetic import make_synthetic_dataset

    root = Path(tempfile.mkdtemp(prefix="tui-lora-bench-"))
    os.environ.setdefault("TUI_LORA_CACHE", str(root / "cache"))
    images, _ = make_synthetic_dataset(root / "data", seed=0, size=64)

    def config(epochs: int, *, cache: bool = True, name: str = "bench"):
        return make_config(root, images, batch_size=args.batch_size, epochs=epochs, cache_latents=cache, name=name)

    epochs = epochs_for(lambda e: config(e), args.steps + WARMUP_STEPS + 1)
    cfg = config(epochs)
    bare = BareLoop(cfg)
    ours_times: list[float] = []
    bare_times: list[float] = []
    for round_number in range(1, args.rounds + 1):
        ours_round = our_step_times(cfg)
        bare_round = bare.step_times(args.steps + WARMUP_STEPS)
        ours_times += ours_round
        bare_times += bare_round
        print(f"round {round_number}: ours {statistics.median(ours_round) * 1000:.1f} ms, "
              f"bare {statistics.median(bare_round) * 1000:.1f} ms", flush=True)
    ours_ms = statistics.median(ours_times) * 1000
    bare_ms = statistics.median(bare_times) * 1000
    ratio = bare_ms / ours_ms
    print(f"steady-state median step: ours {ours_ms:.1f} ms, bare {bare_ms:.1f} ms "
          f"({len(ours_times)} / {len(bare_times)} steps, batch {args.batch_size}, tiny SD1, CPU, "
          f"{args.threads} thread(s))")
    print(f"bare / ours = {ratio:.3f}  (target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'})")
    if not args.no_cache_line:
        uncached: list[float] = []
        cached: list[float] = []
        for _ in range(max(1, args.rounds - 1)):
            cached += our_step_times(cfg)
            uncached += our_step_times(config(epochs, cache=False, name="bench_nocache"))
        on_ms, off_ms = statistics.median(cached) * 1000, statistics.median(uncached) * 1000
        print(f"latent cache: on {on_ms:.1f} ms/step, off {off_ms:.1f} ms/step (off costs {off_ms / on_ms:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
