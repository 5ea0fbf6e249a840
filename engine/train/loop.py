"""The training loop: one readable pass from prepared parts to a saved LoRA.

Setup lives in `setup.py`, batching in `batches.py`, latents in `latents.py`, the objective in
`loss.py`, file writing in `saving.py`; this module wires them together with accelerate and
reports every step as an event.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import RunConfig
from ..dataset.subsets import caption_for
from ..events import EventWriter
from ..plan import RunPlan
from .batches import Draw, epoch_batches
from .image_loader import ImageLoader
from .checkpoints import Checkpointing
from .control import RunControl
from .failure import TrainingFailure
from .latents import LatentEncoder, centre_crop_conditioning
from .memory import MemoryProbe
from .reporting import RunReporting
from .setup import TrainedModel, build_model, resolve_mixed_precision, weight_dtype_for
from ..diffusion.text import ConditioningCache
from .threads import choose_threads


# bitsandbytes warns at import about optional CPU kernels it can do without; keep the console clean.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)



@dataclass
class Progress:
    """Where the run is; saved with resumable state."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch already consumed
    loss_history: list[float] = field(default_factory=list)


class Trainer(RunReporting, Checkpointing):
    def __init__(self, cfg: RunConfig, plan: RunPlan, *, seed: int, events: EventWriter | None = None,
                 control: RunControl | None = None, run_id: str = "", on_event: Callable[[dict], None] | None = None,
                 resume_state: Path | None = None):
        self.cfg = cfg
        self.plan = plan
        self.seed = seed
        self.events = events
        self.control = control or RunControl()
        self.run_id = run_id
        self.on_event = on_event
        self.resume_state = resume_state
        self.progress = Progress()
        self.outputs: list[Path] = []
        self.epoch_saves: list[Path] = []
        self.step_saves: dict[int, Path] = {}  # this run's step saves by step, pruned by save_last_n_steps
        self.started_at = time.time()
        self.max_norm_stats: dict[str, float] | None = None
        from .extensions import extensions_for

        self.extensions: list[object] = extensions_for(cfg)

    # -- setup ----------------------------------------------------------------------------------
    def setup(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        cfg = self.cfg
        self.phase("loading_model", "loading the model")
        _quiet_libraries()
        use_cuda = torch.cuda.is_available()
        threads = choose_threads(cfg.training.cpu_threads_per_process, on_gpu=use_cuda)
        torch.set_num_threads(threads.threads)
        self.cpu_threads = threads.threads
        self.cpu_threads_reason = threads.reason  # logged once the run has started (only phases come before)
        device = torch.device("cuda" if use_cuda else "cpu")
        self.mixed_precision = resolve_mixed_precision(cfg.training.mixed_precision, device)
        trackers = self._trackers()
        self.accelerator = Accelerator(
            mixed_precision=self.mixed_precision,
            gradient_accumulation_steps=cfg.training.gradient_accumulation_steps,
            cpu=not use_cuda,
            log_with=trackers or None,
            project_dir=cfg.folders.logging or None,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        self.device = self.accelerator.device
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            # every process must draw the same batches: use the main process's (possibly random) seed
            self.seed = int(broadcast_object_list([self.seed])[0])
        if trackers:
            self._init_trackers()
        set_seed((self.seed + self.accelerator.process_index) % 2**32)  # numpy takes seeds below 2^32 only
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed + 7919 * self.accelerator.process_index)
        self.caption_rng = random.Random(self.seed + 104729 * self.accelerator.process_index)
        self.images = ImageLoader(cfg.training.max_data_loader_n_workers,
                                  persistent=cfg.training.persistent_data_loader_workers)

        self.weight_dtype = weight_dtype_for(self.mixed_precision)
        # the file is read once the base model is known: SDXL names and the family check need it
        self.model: TrainedModel = build_model(cfg, self.device, self.weight_dtype, cfg.network.weights or None)
        base = self.model.base
        # the family's objective (ε/v diffusion or flow matching), built once: the step only calls it
        self.objective = base.spec.objective(cfg, base, generator=self.generator, weight_dtype=self.weight_dtype,
                                             device=self.device)
        self.text_options = base.spec.text_options(cfg, base)
        continue_from = self.model.continued_from
        for problem in self.model.base.warnings:
            self.warn(problem)
        if continue_from is not None and not self.model.train_text_encoder and any(
                k.startswith("text_encoder") for k in continue_from.weights):
            self.emit("warning", message="the continued file's text-encoder layers are not used: "
                      "optimizer.text_encoder_lr is 0", field="network.weights")
        self._build_optimizer()
        self.memory = MemoryProbe(self.device)

    def _build_optimizer(self) -> None:
        from ..optim.extra_args import parse_extra_args
        from ..optim.optimizers import build_optimizer
        from ..optim.schedules import build_scheduler

        cfg = self.cfg
        groups = [{"params": self.model.unet_parameters(), "lr": cfg.unet_lr, "name": "unet"}]
        text_params = self.model.text_parameters()
        if text_params:
            groups.append({"params": text_params, "lr": cfg.text_encoder_lr, "name": "text_encoder"})
        self.group_names = [g["name"] for g in groups]
        self.optimizer, notes = build_optimizer(cfg.optimizer.name, groups, parse_extra_args(cfg.optimizer.extra_args),
                                                scheduler=cfg.optimizer.scheduler)
        for note in notes:
            self.warn(note)
        self.lr_scheduler = build_scheduler(
            self.optimizer, name=cfg.optimizer.scheduler, total_steps=self.plan.total_steps,
            warmup_percent=cfg.optimizer.warmup_percent, num_cycles=cfg.optimizer.num_cycles,
            power=cfg.optimizer.power, step_rules=cfg.optimizer.step_rules,
            scheduler_type=cfg.optimizer.scheduler_type, scheduler_args=cfg.optimizer.scheduler_args)

    # -- caching --------------------------------------------------------------------------------
    def cache_latents(self) -> None:
        cfg = self.cfg
        base = self.model.base
        self.encoder = LatentEncoder(base.vae, scaling_factor=base.scaling_factor,
                                     shift_factor=getattr(base.vae.config, "shift_factor", None), device=self.device,
                                     dtype=torch.float32, disk=cfg.training.cache_latents_to_disk, seed=self.seed)
        if not cfg.training.cache_latents:
            return
        flips = [False, True] if any(item.options.flip for item in self.plan.dataset.items) else [False]
        last = [0.0]
        self.phase("caching", "caching latents")

        def progress(done: int, total: int) -> None:
            self.control.check_stop()  # caching a big dataset takes minutes: a stop must not wait for it
            now = time.monotonic()
            if done == total or now - last[0] > 0.25:
                last[0] = now
                # reused: read from the disk cache; encoded: run through the VAE
                self.emit("caching", stage="latents", done=done, total=total, reused=self.encoder.hits,
                          encoded=self.encoder.misses)

        self.encoder.fill(self.plan.dataset.items, flips, progress, loader=self.images)
        self.images.end_epoch()  # the caching pass counts as one round of the workers
        if self.encoder.disk:
            self.emit("log", message=f"latent cache: reused {self.encoder.hits} cached latents, "
                      f"encoded {self.encoder.misses}", reused=self.encoder.hits, encoded=self.encoder.misses)
        if self.device.type == "cuda" and not self.cfg.sampling.prompts:
            base.vae.to("cpu")  # no more encoding: give its memory to training
            torch.cuda.empty_cache()

    # -- one step -------------------------------------------------------------------------------
    def _batch_inputs(self, batch: list[Draw]) -> tuple[torch.Tensor, list[str], torch.Tensor, torch.Tensor]:
        items = self.plan.dataset.items
        cfg = self.cfg
        latents, size_conds = [], []
        decoded = [] if cfg.training.cache_latents else self.images.images_for(batch)
        for draw in batch:
            item = items[draw.item_index]
            if cfg.training.cache_latents:
                latents.append(self.encoder.memory[(draw.item_index, draw.flip)])
                size_conds.append(self.encoder.conditioning[(draw.item_index, draw.flip)])
            else:
                # each image varies as its folder says (the run-wide values, or its dataset.subsets entry)
                random_crop = item.options.random_crop
                pixels, cond = self.encoder.pixels(item, draw.flip, random_crop=random_crop, rng=self.caption_rng,
                                                   decoded=decoded.pop(0), color_aug=item.options.color_aug)
                latents.append(self.encoder.encode(pixels[None])[0])
                size_conds.append(cond if random_crop else centre_crop_conditioning(item, draw.flip))
        captions = [caption_for(items[d.item_index], self.caption_rng) for d in batch]
        weights = torch.tensor([cfg.training.prior_loss_weight if items[d.item_index].is_reg else 1.0 for d in batch])
        return torch.stack(latents).to(self.device), captions, weights.to(self.device), torch.tensor(size_conds)

    def _conditioning(self, captions: list[str], train_text: bool):
        if not train_text and not any(encoder.training for encoder in self.text_encoders):
            # A frozen encoder in eval mode maps a caption to the same states every time: encode each once.
            return self.caption_cache.lookup(captions, self._encode_captions)
        with torch.set_grad_enabled(train_text):
            return self._encode_captions(captions)

    def _encode_captions(self, captions: list[str]):
        base = self.model.base
        return base.spec.encode_text(base.tokenizers, self.text_encoders, captions, device=self.device,
                                     **self.text_options)

    def train_step(self, batch: list[Draw]) -> float:
        cfg = self.cfg
        latents, captions, weights, size_conds = self._batch_inputs(batch)
        latents = latents.to(self.weight_dtype)
        train_text = self.model.train_text_encoder and not self.text_frozen
        with self.accelerator.accumulate(*self.trained_modules):
            cond = self._conditioning(captions, train_text)
            loss = self.objective.loss(self.unet, latents, cond, weights, size_conds, self.accelerator.autocast)
            loss_value = loss.detach().item()  # the step's one device sync: the check and the event share it
            if not math.isfinite(loss_value):
                raise TrainingFailure(
                    f"the loss became {loss_value} at step {self.progress.step + 1}: training diverged",
                    "lower the learning rate; with fp16 try bf16 or mixed_precision: no; check the images")
            self.accelerator.backward(loss)
            if self.accelerator.sync_gradients and cfg.training.max_grad_norm > 0:
                self.accelerator.clip_grad_norm_(self.trainable_params, cfg.training.max_grad_norm)
            self.optimizer.step()
            if self.accelerator.sync_gradients:
                # the rates this update used, read before the schedule moves on (matches lr_curve)
                self.step_lrs = {name: self._group_lr(i) for i, name in enumerate(self.group_names)}
                self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        return loss_value

    # -- the run --------------------------------------------------------------------------------
    def prepare(self) -> None:
        modules = self.model.components
        swapping = self.model.savers.swap is not None  # the swap placed the denoiser: accelerate must not move it
        placement = [not (swapping and name == "unet") for name in modules] + [True]
        prepared = self.accelerator.prepare(*modules.values(), self.optimizer, device_placement=placement)
        *prepared_modules, self.optimizer = prepared
        named = dict(zip(modules.keys(), prepared_modules))
        self.unet = named["unet"]
        self.trained_modules = list(named.values())
        base = self.model.base
        self.text_encoders = [named.get(n, enc) for n, enc in zip(base.spec.text_encoder_components, base.text_encoders)]
        self.trainable_params = self.model.unet_parameters() + self.model.text_parameters()
        self.text_frozen = False
        self.caption_cache = ConditioningCache()
        for module in self.trained_modules:
            module.train()
        for name, encoder in zip(base.spec.text_encoder_components, self.text_encoders):
            if name not in named:
                encoder.eval()
        from .memory_savers import after_prepare

        after_prepare(self, self.model.savers)
        if self.cfg.training.cache_text_encoder_outputs:
            from .text_cache import cache_text_outputs

            cache_text_outputs(self)

    def freeze_text_encoder(self) -> None:
        """Stop training the text encoder: its LoRA weights keep their values from here on."""
        for param in self.model.text_parameters():
            param.requires_grad_(False)
            param.grad = None
        for encoder in self.text_encoders:
            encoder.eval()
        self.text_frozen = True
        self.emit("log", message=f"text encoder frozen at step {self.progress.step}")

    def run(self) -> str:
        """Train to the end or until stopped; returns the final status."""
        cfg, plan = self.cfg, self.plan
        total = plan.total_steps
        stop_te_at = plan.text_encoder_stop_step
        step_times: list[float] = []
        losses_epoch: list[float] = []
        loss_sum_window: list[float] = []
        if self.progress.step and stop_te_at is not None and self.progress.step >= stop_te_at:
            self.freeze_text_encoder()
        status = "completed"
        self.phase("first_step", f"step {self.progress.step + 1} (first: warm-up)")
        for epoch in range(self.progress.epoch, plan.epochs):
            batches = epoch_batches(plan.dataset.items, batch_size=cfg.training.batch_size, seed=self.seed, epoch=epoch,
                                    flip=None, num_processes=self.accelerator.num_processes,
                                    process_index=self.accelerator.process_index)
            start_batch = self.progress.batch_in_epoch
            self.images.start_epoch(plan.dataset.items, batches)
            group_began = None
            for batch_index in range(start_batch, len(batches)):
                if self.progress.step >= total:
                    break
                began = time.perf_counter()
                group_began = group_began or began  # a step spans its accumulated batches
                self._align_accumulation(batch_index, len(batches))
                loss = self.train_step(batches[batch_index])
                self.batches_trained += 1
                self.progress.batch_in_epoch = batch_index + 1
                if not self.accelerator.sync_gradients:
                    continue
                began, group_began = group_began, None
                self.progress.step += 1
                step = self.progress.step
                losses_epoch.append(loss)
                loss_sum_window.append(loss)
                if len(loss_sum_window) > 100:
                    loss_sum_window.pop(0)
                if cfg.network.scale_weight_norms > 0:
                    self._apply_max_norm()
                step_times.append(time.perf_counter() - began)
                self._emit_step(step, total, epoch, loss, sum(loss_sum_window) / len(loss_sum_window), step_times)
                if stop_te_at is not None and step >= stop_te_at and not self.text_frozen and self.model.train_text_encoder:
                    self.freeze_text_encoder()
                self.after_step(step, epoch)
                every_steps = cfg.training.save_every_n_steps
                if every_steps and step % every_steps == 0 and step < total:
                    self.save(kind="step", epoch=epoch)
                if self.control.save_requested.is_set():
                    self.control.save_requested.clear()
                    self.save(kind="manual", epoch=epoch)
                if self.control.stop_requested.is_set():
                    status = "stopped"
                    break
            self.images.end_epoch()
            if status == "stopped":
                break
            self.progress.epoch = epoch + 1
            self.progress.batch_in_epoch = 0
            average = sum(losses_epoch) / max(1, len(losses_epoch))
            losses_epoch = []
            self.emit("epoch_end", epoch=epoch + 1, total_epochs=plan.epochs, step=self.progress.step, avg_loss=average)
            self.after_epoch(epoch + 1)
            every = cfg.training.save_every_n_epochs
            if every and (epoch + 1) % every == 0 and epoch + 1 < plan.epochs:
                self.save(kind="epoch", epoch=epoch + 1)
        if self.accelerator.num_processes > 1:
            self._report_batches_per_process()
        self.save(kind="final" if status == "completed" else "stopped", epoch=self.progress.epoch)
        return status

    batches_trained = 0  # batches this process has trained on (its share when there are several)

    def _align_accumulation(self, batch_index: int, batches: int) -> None:
        """Accumulate over batches [kN, kN+N) of each epoch, and step at its last batch too, so the
        steps match the plan's ceil(batches / N); accelerate's counter alone would carry a partial
        group over into the next epoch."""
        n = self.accelerator.gradient_accumulation_steps
        if n > 1:
            # accelerate adds one, then steps when its counter is a multiple of N
            self.accelerator.step = n - 1 if batch_index == batches - 1 else batch_index % n

    def finish(self, status: str = "completed") -> None:
        self.images.close()
        self.call_extensions("on_finish", status)
        if self.accelerator is not None and self.accelerator.trackers:
            self.accelerator.end_training()

    def call_extensions(self, method: str, *args: Any) -> None:
        if self.accelerator is not None and not self.accelerator.is_main_process:
            return
        for extension in self.extensions:
            hook = getattr(extension, method, None)
            if hook is not None:
                hook(self, *args)

    def after_step(self, step: int, epoch: int) -> None:
        self.call_extensions("on_step", step, epoch)

    def after_epoch(self, epoch: int) -> None:
        self.call_extensions("on_epoch_end", epoch)

    def _apply_max_norm(self) -> None:
        from ..networks.regularizers import apply_max_norm

        keys_scaled, mean_norm, max_norm = apply_max_norm(
            list(self.model.components.values()), self.cfg.network.scale_weight_norms)
        self.max_norm_stats = {"keys_scaled": keys_scaled, "mean": mean_norm, "max": max_norm}

def _quiet_libraries() -> None:
    """Library progress bars and notices would tear the console's live line; events say it all."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
