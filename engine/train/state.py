"""Resumable state: everything needed to continue a run exactly where it was saved.

A state folder sits beside the LoRA it belongs to (`<name>-state/`, `<name>-000002-state/`) and
holds the trainable weights, optimizer and schedule state, random number generators and the
position in the data. Loading uses `torch.load(weights_only=True)`: no code is unpickled.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..problems import ProblemError, error
from .loop import Trainer

STATE_VERSION = 1


def state_dir_for(lora_path: Path) -> Path:
    return lora_path.with_name(lora_path.stem + "-state")


def find_latest_state(output_dir: Path, output_name: str) -> Path | None:
    candidates = [p for p in output_dir.glob(f"{output_name}*-state") if (p / "progress.json").exists()]
    return max(candidates, key=lambda p: (p / "progress.json").stat().st_mtime) if candidates else None


class StatefulTrainer(Trainer):
    def _trainable(self) -> list[torch.nn.Parameter]:
        return self.model.unet_parameters() + self.model.text_parameters()

    def save_state_if_enabled(self, kind: str, lora_path: Path) -> None:
        if not self.cfg.training.save_state:
            return
        target = state_dir_for(lora_path)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            params = {f"p{index:05d}": p.detach().float().cpu().contiguous() for index, p in enumerate(self._trainable())}
            save_file(params, str(staging / "network.safetensors"))
            torch.save(self.optimizer.state_dict(), staging / "optimizer.pt")
            torch.save(self.lr_scheduler.state_dict(), staging / "scheduler.pt")
            rng = {"torch": torch.get_rng_state(), "generator": self.generator.get_state(),
                   "caption": _python_state(self.caption_rng)}
            if torch.cuda.is_available():
                rng["cuda"] = torch.cuda.get_rng_state_all()
            torch.save(rng, staging / "rng.pt")
            progress = {"version": STATE_VERSION, "step": self.progress.step, "epoch": self.progress.epoch,
                        "batch_in_epoch": self.progress.batch_in_epoch, "seed": self.seed,
                        "total_steps": self.plan.total_steps, "output_name": self.cfg.folders.output_name,
                        "network_type": self.model.shape.network_type, "rank": self.model.shape.rank}
            (staging / "progress.json").write_text(json.dumps(progress, indent=1))
            if target.exists():
                old = target.with_name(target.name + ".old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
                os.replace(staging, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.emit("checkpoint", path=str(target), bytes=_folder_bytes(target), step=self.progress.step,
                  epoch=self.progress.epoch, kind="state")

    def load_state(self, selector: str) -> None:
        folder = self._resolve(selector)
        try:
            progress = json.loads((folder / "progress.json").read_text())
            params = load_file(str(folder / "network.safetensors"))
            optimizer_state = torch.load(folder / "optimizer.pt", weights_only=True)
            scheduler_state = torch.load(folder / "scheduler.pt", weights_only=True)
            rng = torch.load(folder / "rng.pt", weights_only=True)
        except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
            raise ProblemError([error("--resume", f"{folder} is not a usable state folder: {exc}",
                                      "pick another state folder, or start without --resume")]) from None
        trainable = self._trainable()
        if len(params) != len(trainable) or progress.get("rank") != self.model.shape.rank:
            raise ProblemError([error("--resume", f"{folder} was saved by a run with a different network",
                                      "resume with the run file that made it")])
        with torch.no_grad():
            for index, param in enumerate(trainable):
                saved = params[f"p{index:05d}"]
                if saved.shape != param.shape:
                    raise ProblemError([error("--resume", f"{folder}: parameter {index} has shape {tuple(saved.shape)}, "
                                              f"the run has {tuple(param.shape)}", "resume with the same settings")])
                param.copy_(saved.to(param.dtype))
        self.optimizer.load_state_dict(optimizer_state)
        self.lr_scheduler.load_state_dict(scheduler_state)
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["generator"])
        self.caption_rng.setstate(_python_state_back(rng["caption"]))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.seed = int(progress["seed"])
        self.progress.step = int(progress["step"])
        self.progress.epoch = int(progress["epoch"])
        self.progress.batch_in_epoch = int(progress["batch_in_epoch"])
        self.emit("log", message=f"resumed from {folder} at step {self.progress.step}")

    def _resolve(self, selector: str) -> Path:
        if selector == "latest":
            found = find_latest_state(Path(self.cfg.folders.output), self.cfg.folders.output_name)
            if found is None:
                raise ProblemError([error("--resume", f"no saved state for '{self.cfg.folders.output_name}' in {self.cfg.folders.output}",
                                          "turn on training.save_state so runs can be resumed, or name a state folder")])
            return found
        folder = Path(selector)
        if not (folder / "progress.json").exists():
            raise ProblemError([error("--resume", f"{folder} is not a state folder", "give a '<name>-state' folder")])
        return folder


def _python_state(rng: random.Random) -> dict:
    version, internal, gauss = rng.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _python_state_back(saved: dict) -> tuple:
    return saved["version"], tuple(int(x) for x in saved["internal"].tolist()), saved["gauss"]


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
