"""Resumable state: everything needed to continue a run exactly where it was saved.

A state folder sits beside the LoRA it belongs to (`<name>-state/`, `<name>-000002-state/`) and
holds the trainable weights, optimizer and schedule state, random number generators and the
position in the data. Loading uses `torch.load(weights_only=True)`: no code is unpickled.

A folder is written whole under a hidden name and then renamed into place; a kill between the
two renames of a replacement leaves `<x>-state.old`, which the next run start puts back.
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ..config import RunConfig
from ..output_names import save_stem_pattern
from ..problems import ProblemError, error, warning
from .loop import Trainer
from .saving import steps_to_remove

STATE_VERSION = 1


def state_dir_for(lora_path: Path) -> Path:
    return lora_path.with_name(lora_path.stem + "-state")


def _state_name_pattern(output_name: str) -> str:
    return save_stem_pattern(output_name) + "-state"


def find_latest_state(output_dir: Path, output_name: str) -> Path | None:
    """The most recently written complete state folder of this output name."""
    pattern = re.compile(_state_name_pattern(output_name) + "$")
    try:
        candidates = [p for p in output_dir.iterdir() if pattern.match(p.name) and (p / "progress.json").is_file()]
    except OSError:
        return None
    return max(candidates, key=lambda p: (p / "progress.json").stat().st_mtime_ns) if candidates else None


def resolve_state(cfg: RunConfig, selector: str) -> Path:
    """The state folder `--resume [STATE]` names ("latest": the newest of this run's output)."""
    if selector == "latest":
        found = find_latest_state(Path(cfg.folders.output), cfg.folders.output_name)
        if found is None:
            raise ProblemError([error("--resume", f"no saved state for '{cfg.folders.output_name}' in {cfg.folders.output}",
                                      "turn on training.save_state so runs can be resumed, or name a state folder")])
        return found
    folder = Path(selector)
    if folder.suffix in (".safetensors", ".ckpt") and state_dir_for(folder).is_dir():
        folder = state_dir_for(folder)  # the LoRA file named instead of its state folder
    if not (folder / "progress.json").is_file():
        raise ProblemError([error("--resume", f"{folder} is not a state folder",
                                  "give a '<name>-state' folder written with training.save_state on")])
    return folder


def recover_state_folders(output_dir: Path, output_name: str) -> list[str]:
    """After a kill mid-save: restore `<x>-state.old` where `<x>-state` is missing, and remove
    half-written hidden staging folders. Returns what was removed or restored."""
    base = _state_name_pattern(output_name)
    old_pattern = re.compile(base + r"\.old$")
    staging_pattern = re.compile(r"\." + base + r"\.[^/]+$")
    changed = []
    try:
        entries = list(output_dir.iterdir())
    except OSError:
        return []
    for path in entries:
        if not path.is_dir():
            continue
        if old_pattern.match(path.name):
            current = path.with_name(path.name[: -len(".old")])
            if current.exists():
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.replace(path, current)
            changed.append(path.name)
        elif staging_pattern.match(path.name):
            shutil.rmtree(path, ignore_errors=True)
            changed.append(path.name)
    return changed


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _torch_bytes(value) -> bytes:
    # Serialised in memory so a full disk surfaces as a plain OSError from `_write`.
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _state_disk_problem(target: Path, exc: OSError) -> ProblemError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        message = "the disk is full, so the resumable state could not be saved"
    else:
        message = f"could not write the resumable state: {exc.strerror or exc}"
    return ProblemError([error(str(target), message + "; the LoRA file and earlier state are intact",
                               "free space in the output folder, or turn off training.save_state")])


class StatefulTrainer(Trainer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.state_folders: list[Path] = []  # epoch saves' state written by this run, pruned with them
        self.step_states: dict[int, Path] = {}  # step saves' state by step, pruned by their own window

    def _trainable(self) -> list[torch.nn.Parameter]:
        return self.model.unet_parameters() + self.model.text_parameters()

    def save(self, *, kind: str, epoch: int) -> Path | None:
        path = super().save(kind=kind, epoch=epoch)
        # Epoch LoRAs pruned by save_last_n_epochs take their state with them.
        for folder in list(self.state_folders if path is not None else []):
            if not folder.with_name(folder.name[: -len("-state")] + path.suffix).exists():
                shutil.rmtree(folder, ignore_errors=True)
                self.state_folders.remove(folder)
        return path

    def save_state_if_enabled(self, kind: str, lora_path: Path) -> None:
        at_end = kind in ("final", "stopped") and self.cfg.training.save_state_on_train_end
        if not (self.cfg.training.save_state or at_end):
            return
        target = state_dir_for(lora_path)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            params = {f"p{index:05d}": p.detach().float().cpu().contiguous() for index, p in enumerate(self._trainable())}
            rng = {"torch": torch.get_rng_state(), "generator": self.generator.get_state(),
                   "caption": _python_state(self.caption_rng)}
            if torch.cuda.is_available():
                rng["cuda"] = torch.cuda.get_rng_state_all()
            progress = {"version": STATE_VERSION, "step": self.progress.step, "epoch": self.progress.epoch,
                        "batch_in_epoch": self.progress.batch_in_epoch, "seed": self.seed,
                        "total_steps": self.plan.total_steps, "output_name": self.cfg.folders.output_name,
                        "network_type": self.model.shape.network_type, "rank": self.model.shape.rank}
            _write(staging / "network.safetensors", safetensors_bytes(params))
            _write(staging / "optimizer.pt", _torch_bytes(self.optimizer.state_dict()))
            _write(staging / "scheduler.pt", _torch_bytes(self.lr_scheduler.state_dict()))
            _write(staging / "rng.pt", _torch_bytes(rng))
            _write(staging / "progress.json", json.dumps(progress, indent=1).encode())  # last: marks it complete
            if target.exists():
                old = target.with_name(target.name + ".old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
                os.replace(staging, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, target)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise _state_disk_problem(target, exc) from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if kind == "epoch" and target not in self.state_folders:
            self.state_folders.append(target)
        if kind == "step":
            self._prune_step_states(target)
        self.emit("checkpoint", path=str(target), bytes=_folder_bytes(target), step=self.progress.step,
                  epoch=self.progress.epoch, kind="state")

    def _prune_step_states(self, target: Path) -> None:
        """sd-scripts save_and_remove_state_stepwise: the window is save_last_n_steps_state, else save_last_n_steps."""
        self.step_states[self.progress.step] = target
        window = self.cfg.training.save_last_n_steps_state or self.cfg.training.save_last_n_steps
        for step in steps_to_remove(list(self.step_states), self.progress.step, window):
            shutil.rmtree(self.step_states.pop(step), ignore_errors=True)

    def load_state(self, state: SavedState | str) -> None:
        saved = state if isinstance(state, SavedState) else read_state(resolve_state(self.cfg, state))
        folder, progress = saved.folder, saved.progress
        trainable = self._trainable()
        if len(saved.params) != len(trainable) or progress.get("rank") != self.model.shape.rank:
            raise ProblemError([error("--resume", f"{folder} was saved by a run with a different network",
                                      "resume with the run file that made it")])
        with torch.no_grad():
            for index, param in enumerate(trainable):
                stored = saved.params.get(f"p{index:05d}")
                if stored is None or stored.shape != param.shape:
                    found = tuple(stored.shape) if stored is not None else "nothing"
                    raise ProblemError([error("--resume", f"{folder}: parameter {index} has shape {found}, "
                                              f"the run has {tuple(param.shape)}", "resume with the same settings")])
                param.copy_(stored.to(param.dtype))
        try:
            self.optimizer.load_state_dict(saved.optimizer)
            self.lr_scheduler.load_state_dict(saved.scheduler)
        except (ValueError, KeyError, TypeError) as exc:
            raise ProblemError([error("--resume", f"{folder}: the optimizer or schedule state does not fit this run "
                                      f"({exc})", "resume with the same optimizer and schedule settings")]) from None
        rng = saved.rng
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["generator"])
        self.caption_rng.setstate(_python_state_back(rng["caption"]))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.seed = saved.seed
        step, epoch, batch = saved.step, saved.epoch, saved.batch_in_epoch
        self.progress.step, self.progress.epoch, self.progress.batch_in_epoch = step, epoch, batch
        if progress.get("total_steps") not in (None, self.plan.total_steps):
            self.warn(warning("--resume", f"the state was saved by a run of {progress['total_steps']} steps; "
                              f"this run has {self.plan.total_steps} (the dataset or settings changed)"))
        self.emit("log", message=f"resumed from {folder} at step {step} (epoch {epoch + 1}, batch {batch})")


@dataclass
class SavedState:
    """A state folder read into memory, checked for shape but not yet applied to a model."""

    folder: Path
    progress: dict
    params: dict[str, torch.Tensor]
    optimizer: dict
    scheduler: dict
    rng: dict

    @property
    def step(self) -> int:
        return int(self.progress["step"])

    @property
    def epoch(self) -> int:
        return int(self.progress["epoch"])

    @property
    def batch_in_epoch(self) -> int:
        return int(self.progress["batch_in_epoch"])

    @property
    def seed(self) -> int:
        return int(self.progress["seed"])


def read_state(folder: Path) -> SavedState:
    """Read every file of a state folder (before any model loads); ProblemError when one is torn,
    foreign or holds anything but tensors and plain data (nothing is unpickled)."""
    try:
        progress = json.loads((folder / "progress.json").read_text(encoding="utf-8"))
        saved = SavedState(folder, progress, load_file(str(folder / "network.safetensors")),
                           torch.load(folder / "optimizer.pt", weights_only=True),
                           torch.load(folder / "scheduler.pt", weights_only=True),
                           torch.load(folder / "rng.pt", weights_only=True))
        if int(progress.get("version", 0)) > STATE_VERSION:
            raise ValueError(f"written by a newer tui-lora (state version {progress['version']})")
        if min(saved.step, saved.epoch, saved.batch_in_epoch) < 0:
            raise ValueError("negative step, epoch or batch")
        saved.seed  # noqa: B018 - must be a number too
        if not {"torch", "generator", "caption"} <= set(saved.rng):
            raise ValueError("random number states are missing")
    except Exception as exc:  # noqa: BLE001 - whatever is wrong, the answer is the same
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ProblemError([error("--resume", f"{folder} is not a usable state folder: {reason}",
                                  "pick another state folder, or start without --resume")]) from None
    return saved


def _python_state(rng: random.Random) -> dict:
    version, internal, gauss = rng.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _python_state_back(saved: dict) -> tuple:
    return saved["version"], tuple(int(x) for x in saved["internal"].tolist()), saved["gauss"]


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
