"""What a run tells the world: events, console-bound numbers, trackers (TensorBoard/W&B).

A mixin of the Trainer: it reads the Trainer's state and never changes training.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..event_types import MemoryFields, StepFields
from ..optim.optimizers import optimizer_lr_for_logging
from ..problems import Problem

MEMORY_READ_INTERVAL_S = 1.0  # the dashboard refreshes a few times a second; memory moves slower


class RunReporting:
    def emit(self, type: str, **fields: Any) -> None:
        if self.accelerator is not None and not self.accelerator.is_main_process:
            return
        event = self.events.emit(type, **fields) if self.events else {"type": type, **fields}
        if self.on_event:
            self.on_event(event)

    accelerator = None

    def phase(self, name: str, label: str) -> None:
        """Announce a long stretch with no other events (see engine/events.py), so a watcher can say
        what the engine is doing and for how long instead of looking hung."""
        self.emit("phase", name=name, label=label, elapsed_s=round(time.time() - self.started_at, 3))

    def warn(self, problem: Problem) -> None:
        self.emit("warning", message=problem.message, field=problem.field, hint=problem.hint)

    def _trackers(self) -> list[str]:
        if not self.cfg.folders.logging:
            return []
        choice = self.cfg.logging.log_with
        return ["tensorboard", "wandb"] if choice == "all" else [choice]

    def _init_trackers(self) -> None:
        """One TensorBoard folder (W&B run) per run under folders.logging, with the settings as hparams."""
        # sd-scripts puts --log_prefix in front of its log folder's name the same way
        name = f"{self.cfg.logging.log_prefix}{self.cfg.folders.output_name}-{self.run_id or time.strftime('%Y%m%d-%H%M%S')}"
        # trackers accept only scalars and text as hyperparameters
        settings = {key: value if isinstance(value, (bool, int, float, str)) else str(value)
                    for key, value in self.cfg.values.items() if value is not None}
        self.accelerator.init_trackers(name, config=settings)

    def _report_batches_per_process(self) -> None:
        """Every process's batch count, gathered to the main process (the only one writing events)."""
        counts = self.accelerator.gather(torch.tensor([self.batches_trained], device=self.device)).tolist()
        self.emit("log", message=f"batches trained per process: {', '.join(map(str, counts))}",
                  batches_per_process=counts)

    def _emit_step(self, step: int, total: int, epoch: int, loss: float, avg: float, step_times: list[float]) -> None:
        recent = step_times[-20:]
        seconds_per_step = sorted(recent)[len(recent) // 2]
        lrs = self.step_lrs
        memory, gpu_util = self._memory_reading()
        fields = StepFields(
            step=step, total_steps=total, epoch=epoch + 1, total_epochs=self.plan.epochs, loss=loss, avg_loss=avg,
            lr=lrs, it_per_s=1.0 / seconds_per_step if seconds_per_step > 0 else None,
            eta_s=seconds_per_step * (total - step), elapsed_s=time.time() - self.started_at, memory=memory,
            gpu_util=gpu_util, max_norm=self.max_norm_stats)
        self.emit("step", **fields.to_fields())
        if self.accelerator.trackers:
            scalars = {"loss/current": loss, "loss/average": avg}
            scalars.update({f"lr/{k}": v for k, v in lrs.items()})
            if self.max_norm_stats is not None:
                scalars.update({f"max_norm/{k}": v for k, v in self.max_norm_stats.items()})
            self.accelerator.log(scalars, step=step)

    def _memory_reading(self) -> tuple[MemoryFields, float | None]:
        """The memory figures and GPU load, read at most once a second: a read costs system calls."""
        now = time.monotonic()
        if self._memory_last is None or now - self._memory_at >= MEMORY_READ_INTERVAL_S:
            self._memory_last, self._memory_at = (self.memory.read(), self.memory.gpu_util()), now
        return self._memory_last

    _memory_last: tuple[MemoryFields, float | None] | None = None
    _memory_at = 0.0

    def _group_lr(self, index: int) -> float:
        return float(optimizer_lr_for_logging(self.optimizer, index))

    def lr_curve(self) -> dict[str, list[list[float]]]:
        try:
            from ..optim.schedules import lr_curve

            base = {name: self.optimizer.param_groups[i]["initial_lr"] if "initial_lr" in self.optimizer.param_groups[i]
                    else self.optimizer.param_groups[i]["lr"] for i, name in enumerate(self.group_names)}
            cfg = self.cfg
            curve = lr_curve(cfg.optimizer.scheduler, base, self.plan.total_steps, warmup_percent=cfg.optimizer.warmup_percent,
                             num_cycles=cfg.optimizer.num_cycles, power=cfg.optimizer.power, step_rules=cfg.optimizer.step_rules,
                             scheduler_type=cfg.optimizer.scheduler_type, scheduler_args=cfg.optimizer.scheduler_args)
            return {k: [list(p) for p in v] for k, v in curve.items()}
        except Exception:  # noqa: BLE001 - the curve is a display aid only
            return {}

    def started_event(self, config_digest: str) -> None:
        data = self.plan.dataset
        device_name = str(self.device)
        if self.device.type == "cuda":
            device_name += " " + torch.cuda.get_device_name(self.device)
        self.emit("run_started", elapsed_s=round(time.time() - self.started_at, 3), run_id=self.run_id, output_dir=str(Path(self.cfg.folders.output).resolve()),
                  output_name=self.cfg.folders.output_name, config_digest=config_digest, device=device_name,
                  mixed_precision=self.mixed_precision, num_processes=self.accelerator.num_processes,
                  batch_size=self.cfg.training.batch_size,
                  gradient_accumulation_steps=self.cfg.training.gradient_accumulation_steps, seed=self.seed,
                  steps_per_epoch=self.plan.steps_per_epoch, total_steps=self.plan.total_steps,
                  total_epochs=self.plan.epochs, dataset=data.to_event_dict(), lr_curve=self.lr_curve(),
                  resumed_from_step=self.progress.step or None, family=self.model.base.family,
                  vram_estimate=self._vram_estimate())
        self.emit("log", message=f"CPU threads: {self.cpu_threads} ({self.cpu_threads_reason})", cpu_threads=self.cpu_threads)

    def _vram_estimate(self) -> dict | None:
        """The torch-free estimate the dashboard shows beside the measured peak (None if unknown)."""
        from ..vram import estimate_vram

        try:
            estimate = estimate_vram(self.cfg.values, buckets=list(self.plan.dataset.buckets))
        except (KeyError, TypeError, ValueError):  # a display aid: a config it cannot read is no failure
            return None
        return estimate.to_event() if estimate is not None else None
