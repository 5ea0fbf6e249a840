"""Saving during and at the end of a run: which file, which facts, never a broken one.

A mixin of the Trainer; file naming, metadata and writing live in `saving.py`.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..dataset.subsets import datasets_metadata
from ..problems import ProblemError
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
            "datasets": datasets_metadata(data, self.cfg.values),  # per-folder values, when any folder has them
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
        if kind in ("step", "manual"):  # a save on request is named like sd-scripts' step saves
            path = step_file(self.cfg, self.progress.step)
        path = self._claim(path)
        self.phase("saving", f"saving {path.name}")
        try:
            size = save_lora(path, self.cfg, self.model, self.facts(epoch))
        except ProblemError as exc:
            if kind in ("final", "stopped") and _disk_full(exc):
                self._rescue(path, epoch, exc)  # raises: the run ends, its weights kept elsewhere
            raise
        self.note_written(path)
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

    # -- never replacing a file this run did not write ----------------------------------------------
    @property
    def replaceable(self) -> set[Path]:
        """Files that existed at the start and may be replaced (a resumed run's own earlier files)."""
        return self.__dict__.setdefault("_replaceable", set())

    def note_written(self, path: Path) -> None:
        try:
            st = path.stat()
        except OSError:
            return
        self.__dict__.setdefault("_written", {})[path] = (st.st_dev, st.st_ino)

    def may_replace(self, path: Path) -> bool:
        if self.cfg.overwrite or path in self.replaceable:
            return True
        try:
            st = path.stat()
        except OSError:
            return not os.path.lexists(path)
        return self.__dict__.get("_written", {}).get(path) == (st.st_dev, st.st_ino)

    def _claim(self, path: Path) -> Path:
        """The path itself, or the next free `_vN` name when someone else's file now sits there."""
        if not os.path.lexists(path) or self.may_replace(path):
            return path
        from ..output_names import next_free_name

        free = path.with_name(next_free_name(path.parent, path.stem, path.suffix) + path.suffix)
        self.emit("warning", message=f"{path} appeared during the run and is kept; this save goes to {free.name}",
                  field="folders.output_name")
        return free

    # -- a full disk at the last save --------------------------------------------------------------
    def _rescue(self, path: Path, epoch: int, exc: ProblemError) -> None:
        """Write the trained weights where there is room and end the run naming that file."""
        target = self.rescue_weights(path, epoch)
        if target is not None:
            raise TrainingFailure(
                f"the disk is full, so {path} could not be written; the trained LoRA was saved to {target} instead",
                f"free space in {path.parent}, then move it there: mv '{target}' '{path}'") from exc
        raise TrainingFailure(f"the disk is full, so {path} could not be written, and no other folder had room "
                              "(state, cache, temporary folders)", "free some space; earlier files are intact") from exc

    def rescue_weights(self, path: Path, epoch: int | None = None) -> Path | None:
        """Save the LoRA as `path` would be, but in the first of the user's state, cache or temporary
        folders with room; returns where, or None."""
        from ..runs import state_dir

        if getattr(self, "model", None) is None or not self.accelerator.is_main_process:
            return None
        epoch = self.progress.epoch if epoch is None else epoch
        folders = [state_dir() / "rescued", Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                   / "tui-lora" / "rescued", Path(tempfile.gettempdir()) / "tui-lora-rescued"]
        for folder in folders:
            target = folder / (self.run_id or "run") / path.name
            try:
                size = save_lora(target, self.cfg, self.model, self.facts(epoch))
            except (ProblemError, OSError):
                continue
            self.outputs.append(target)
            try:
                self.emit("checkpoint", path=str(target), bytes=size, step=self.progress.step, epoch=epoch,
                          kind="rescued")
            except OSError:  # the event file is on the full disk too; the run's message still names it
                pass
            return target
        return None

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
        """Hook: resumable state (see resume_state.py)."""


def _disk_full(exc: ProblemError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
