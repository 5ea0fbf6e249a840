"""Sample images during training: what the LoRA draws now, from the user's prompts.

`SampleImages` is a training extension (see extensions.py). At the chosen epochs and/or steps it
renders every prompt with the base model plus the LoRA at its current weights, writes PNGs to
`<output>/sample/<name>_e<epoch>_s<step>_<index>.png`, logs them to TensorBoard / W&B when a
logging folder is set, and announces them as one `sample` event. With prompts but no interval it
renders once, at the end of training.

Sampling must leave training exactly as it found it: the modules go to eval mode (no dropout) and
back to their own modes, everything runs under `torch.no_grad`, every random generator's state is
restored, and the pipeline's temporaries are freed so GPU memory returns to its baseline.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config.prompt_options import read_prompt_entry
from ..diffusion.samplers import SAMPLERS, build_sampler  # noqa: F401  (SAMPLERS: the names the UI lists)
from ..output_names import sample_stem
from ..problems import ProblemError, error

DEFAULT_STEPS = 20
DEFAULT_CFG = 7.0
SIZE_STEP = 64  # sample sides snap to this: every SD family's UNet takes it without padding



@dataclass(frozen=True)
class SamplePrompt:
    prompt: str
    negative: str
    seed: int
    steps: int
    cfg: float
    width: int
    height: int


def resolve_prompts(entries: list[str | Mapping[str, Any]], *, width: int, height: int, seed: int,
                    defaults: Mapping[str, Any] | None = None) -> list[SamplePrompt]:
    """The schema's `sampling.prompts` entries with every option filled in.

    Defaults: the training resolution, the family's steps and CFG (`defaults`, see
    ModelFamily.sample_defaults) else DEFAULT_STEPS and DEFAULT_CFG, and seed `seed + index`
    so each prompt keeps its seed from one sample to the next and the images show only the LoRA's
    progress.
    """
    steps = int((defaults or {}).get("steps", DEFAULT_STEPS))
    guidance = float((defaults or {}).get("cfg", DEFAULT_CFG))
    prompts = []
    for index, entry in enumerate(entries):
        parsed, problems = read_prompt_entry(entry, f"sampling.prompts[{index}]")
        if problems:  # validate refuses these; a config built in code gets the same verdict, not a silent drop
            raise ProblemError([error(field, message, hint) for field, message, hint in problems])
        values = parsed if isinstance(parsed, dict) else {"prompt": parsed}
        prompts.append(SamplePrompt(
            prompt=str(values["prompt"]).strip(),
            negative=str(values.get("negative") or ""),
            seed=int(values["seed"]) if values.get("seed") is not None else seed + index,
            steps=int(values.get("steps") or steps),
            cfg=float(values["cfg"]) if values.get("cfg") is not None else guidance,
            width=_snap(values.get("width") or width),
            height=_snap(values.get("height") or height),
        ))
    return prompts


def _snap(side: int) -> int:
    return max(SIZE_STEP, int(side) // SIZE_STEP * SIZE_STEP)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's (CPU and every CUDA device) random states on exit."""
    import numpy as np

    python_state = random.getstate()
    numpy_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


@contextlib.contextmanager
def eval_mode(*roots: torch.nn.Module) -> Iterator[None]:
    """Every module under `roots` in eval mode; on exit each gets back its own mode."""
    modes = [(module, module.training) for root in roots for module in root.modules()]
    for root in roots:
        root.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def render(base, prompts: list[SamplePrompt], *, sampler: str, clip_skip: int = 1,
           autocast: Callable[[], contextlib.AbstractContextManager] | None = None) -> list[Any]:
    """PIL images of `prompts` drawn by `base` (a BaseModel carrying the LoRA), one per prompt.

    `autocast` makes the mixed-precision context (the accelerator's). Seeds go to CPU generators
    so the same prompt gives the same image on any device.
    """
    scheduler = base.spec.sample_scheduler(sampler, base)
    pipe = base.to_pipeline(scheduler)
    pipe.set_progress_bar_config(disable=True)
    images = []
    try:
        for prompt in prompts:
            generator = torch.Generator(device="cpu").manual_seed(prompt.seed)
            with torch.no_grad(), (autocast or contextlib.nullcontext)():
                result = pipe(prompt=prompt.prompt, num_inference_steps=prompt.steps, guidance_scale=prompt.cfg,
                              width=prompt.width, height=prompt.height, generator=generator,
                              **base.spec.sample_options(prompt, clip_skip))
            images.append(result.images[0])
    finally:
        del pipe
    return images


class SampleImages:
    """Training extension: renders the sample prompts at the configured epochs and steps."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.every_epochs: int | None = cfg.sampling.every_n_epochs
        self.every_steps: int | None = cfg.sampling.every_n_steps
        self.folder = Path(cfg.folders.output) / "sample"
        self.last_step: int | None = None

    def on_step(self, trainer, step: int, epoch: int) -> None:
        if self.every_steps and step % self.every_steps == 0:
            self.sample(trainer, step=step, epoch=epoch + 1)  # `epoch` counts from 0 inside the epoch

    def on_epoch_end(self, trainer, epoch: int) -> None:
        at_end = not self.every_epochs and not self.every_steps and epoch == trainer.plan.epochs
        if at_end or (self.every_epochs and epoch % self.every_epochs == 0):
            self.sample(trainer, step=trainer.progress.step, epoch=epoch)

    def sample(self, trainer, *, step: int, epoch: int) -> list[Path]:
        if step == self.last_step:
            return []  # an epoch end that falls on a sampled step
        self.last_step = step
        cfg = self.cfg
        width, height = cfg.training.max_resolution
        base = trainer.model.base
        prompts = resolve_prompts(cfg.sampling.prompts, width=width, height=height, seed=trainer.seed,
                                  defaults=base.spec.sample_defaults(base.source))
        roots = [base.unet, base.vae, *base.text_encoders]
        trainer.phase("sampling", f"sampling {len(prompts)} image{'s' if len(prompts) != 1 else ''}")
        try:
            with preserved_rng(), eval_mode(*roots):
                images = render(base, prompts, sampler=cfg.sampling.sampler, clip_skip=cfg.training.clip_skip,
                                autocast=trainer.accelerator.autocast)
        except Exception as exc:  # noqa: BLE001 - a failed sample must not cost the training run
            trainer.emit("warning", message=f"sampling at step {step} failed: {type(exc).__name__}: {exc}",
                         field="sampling.prompts", hint="check the sample prompts' sizes; training goes on")
            return []
        finally:
            _release_memory(trainer.device)
        paths = self._write(images, step=step, epoch=epoch)
        _log_to_trackers(trainer.accelerator, images, prompts, step)
        trainer.emit("sample", paths=[str(p) for p in paths], prompts=[p.prompt for p in prompts], step=step,
                     epoch=epoch)
        return paths

    def _write(self, images: list[Any], *, step: int, epoch: int) -> list[Path]:
        self.folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, image in enumerate(images):
            path = self.folder / f"{sample_stem(self.cfg.folders.output_name, epoch, step, index)}.png"
            partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            image.save(partial, format="PNG")
            os.replace(partial, path)  # a reader (the dashboard) never sees half a PNG
            paths.append(path)
        return paths


def _release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _log_to_trackers(accelerator, images: list[Any], prompts: list[SamplePrompt], step: int) -> None:
    """Each prompt's image under its own tag (`sample/00`, ...), so sizes may differ."""
    import numpy as np

    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            for index, (image, prompt) in enumerate(zip(images, prompts)):
                tracker.writer.add_image(f"sample/{index:02d}", np.asarray(image.convert("RGB")), global_step=step,
                                         dataformats="HWC")
                tracker.writer.add_text(f"sample/{index:02d}/prompt", prompt.prompt, global_step=step)
            tracker.writer.flush()
        elif tracker.name == "wandb":
            tracker.log_images({f"sample/{index:02d}": [image] for index, image in enumerate(images)}, step=step)
