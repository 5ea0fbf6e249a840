"""Saving during and at the end of a run: which file, which facts, never a broken one.

A mixin of the Trainer; file naming, metadata and writing live in `saving.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .failure import TrainingFailure
from .saving import output_file, prune_epoch_saves, save_lora, step_file, steps_to_remove


class Checkpointing:
    def facts(self, epoch: int) -> dict[str, Any]:
        data = self.plan.dataset
        return {
            "num_epochs": self.plan.epochs, "epoch": epoch, "steps": self.progress.step,
            "max_train_steps": self.plan.total_steps, "optimizer": self.optimizer_description(),
            "lr_warmup_steps": self.plan.warmup_steps, "seed": self.seed, "mixed_precision": self.mixed_precision,
            "tag_frequency": data.tag_frequency, "num_train_images": data.num_train_images,
            "num_reg_images": data.num_reg_images, "training_started_at": self.started_at,
        }

    def optimizer_description(self) -> str:
        optimizer = getattr(self.optimizer, "optimizer", self.optimizer)
        cls = type(optimizer)
        args = ",".join(self.cfg.optimizer.extra_args)
        return f"{cls.__module__}.{cls.__name__}({args})"

    def save(self, *, kind: str, epoch: int) -> Path | None:
        self._check_finite_weights()
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return None
        path = output_file(self.cfg, epoch if kind == "epoch" else None)
        if kind == "step":
            path = step_file(self.cfg, self.progress.step)
        if kind == "manual":
            path = path.with_name(f"{self.cfg.folders.output_name}-step{self.progress.step:06d}{path.suffix}")
        self.phase("saving", f"saving {path.name}")
        size = save_lora(path, self.cfg, self.model, self.facts(epoch))
        self.outputs.append(path)
        self.emit("checkpoint", path=str(path), bytes=size, step=self.progress.step, epoch=epoch, kind=kind)
        if kind == "epoch":
            self.epoch_saves.append(path)
            for removed in prune_epoch_saves(self.cfg, self.epoch_saves):
                self.outputs.remove(removed)
                self.emit("log", message=f"removed older save {removed.name} (keep last {self.cfg.training.save_last_n_epochs})")
        if kind == "step":
            self._prune_step_saves(path)
        self.save_state_if_enabled(kind, path)
        return path

    def _prune_step_saves(self, path: Path) -> None:
        self.step_saves[self.progress.step] = path
        for step in steps_to_remove(list(self.step_saves), self.progress.step, self.cfg.training.save_last_n_steps):
            removed = self.step_saves.pop(step)
            removed.unlink(missing_ok=True)
            self.outputs.remove(removed)
            self.emit("log", message=f"removed older save {removed.name} (keep the last {self.cfg.training.save_last_n_steps} steps)")

    def _check_finite_weights(self) -> None:
        """Never write a file of NaN or infinite weights: the last good save stays the newest."""
        for param in self.model.unet_parameters() + self.model.text_parameters():
            if not bool(torch.isfinite(param.detach()).all()):
                raise TrainingFailure(
                    f"the LoRA weights became infinite or NaN by step {self.progress.step}: training diverged; "
                    "nothing was saved from it",
                    "lower the learning rate; with fp16 try bf16 or mixed_precision: no; the last saved LoRA is intact")

    def save_state_if_enabled(self, kind: str, lora_path: Path) -> None:
        """Hook: resumable state (see state.py)."""
