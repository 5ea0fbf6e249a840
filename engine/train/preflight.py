"""Checks that need the disk or installed packages, run before any model loads."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..config import RunConfig
from ..plan import RunPlan
from ..problems import Problem, error, warning


def next_free_name(output_dir: Path, name: str, suffix: str) -> str:
    """`name_v2`, `name_v3`, ... : the first name with no file in the output folder."""
    version = 2
    base = name
    while (output_dir / f"{base}_v{version}{suffix}").exists():
        version += 1
    return f"{base}_v{version}"


def preflight(cfg: RunConfig, plan: RunPlan, *, resuming: bool = False) -> list[Problem]:
    problems: list[Problem] = []
    output = Path(cfg.folders.output)
    suffix = ".ckpt" if cfg.model.save_as == "ckpt" else ".safetensors"
    final = output / f"{cfg.folders.output_name}{suffix}"
    if final.exists() and not cfg.overwrite and not resuming:
        problems.append(error("folders.output_name", f"{final} already exists and would be replaced",
                              f"use another name (e.g. '{next_free_name(output, cfg.folders.output_name, suffix)}') "
                              "or set overwrite: true"))
    if output.exists() and not os.access(output, os.W_OK):
        problems.append(error("folders.output", f"{output} is not writable", "choose a folder you can write to"))
    if output.exists() and not output.is_dir():
        problems.append(error("folders.output", f"{output} is a file, not a folder", "choose a folder"))
    weights = cfg.network.weights
    if weights and not Path(weights).is_file():
        problems.append(error("network.weights", f"{weights} does not exist", "give the path of an existing LoRA file"))
    if weights and Path(weights).resolve() == final.resolve():
        problems.append(error("network.weights", "is the file this run would write",
                              "set another folders.output_name so the file you continue from is kept"))
    problems += _model_problems(cfg)
    problems += _package_problems(cfg)
    if plan.total_steps < 1 and not plan.dataset.errors:
        problems.append(error("folders.images", "the dataset gives no training steps", "add images"))
    return problems


def _model_problems(cfg: RunConfig) -> list[Problem]:
    from ..models.loading import describe_model_path

    try:
        description = describe_model_path(cfg.model.path, cfg.model.config_dir)
    except Exception as exc:  # noqa: BLE001 - the loader reports it properly later
        return [warning("model.path", f"could not inspect the model before loading: {exc}")]
    errors = [p for p in description.problems if p.is_error]
    return errors or _family_flag_problems(cfg, description.kind, description.family)


def _family_flag_problems(cfg: RunConfig, kind: str, family: str | None) -> list[Problem]:
    """model.v2 / v_parameterization / sdxl against the family the configs or file header show.

    Checked here, before anything is written, as well as when the weights load. Where the
    prediction type cannot be read (single files, hub SD 1.x/SDXL), the flag is taken as given.
    """
    from ..models import families
    from ..models import family as fam

    requested = families.requested_family(cfg.values)
    if family is None or requested == families.AUTO:
        return []  # `auto` takes whatever family the model is
    flags = {"v2": cfg.model.v2, "v_parameterization": cfg.model.v_parameterization, "sdxl": cfg.model.sdxl}
    prediction = "v_prediction" if cfg.model.v_parameterization else "epsilon"
    spec = families.get(family)
    if kind == "builtin" or families.split_by_prediction(spec) and kind != "single_file":
        prediction = None  # the family says it (SD 2.x folders are told apart by their scheduler)
    elif kind == "folder":
        prediction = fam.prediction_type_of_folder(cfg.model.path) or prediction
    if kind == "single_file" and prediction == "v_prediction":
        family = families.from_flags(**spec.legacy_flags(prediction))  # a file cannot tell SD 2.x v apart
    return [p for p in fam.check_family(family, requested, flags, prediction_type=prediction, source=cfg.model.path)
            if p.is_error]


def _package_problems(cfg: RunConfig) -> list[Problem]:
    from ..optim.extra_args import check_optimizer_args, parse_extra_args
    from ..problems import ProblemError

    problems: list[Problem] = []
    try:
        problems += check_optimizer_args(cfg.optimizer.name, parse_extra_args(cfg.optimizer.extra_args),
                                         scheduler=cfg.optimizer.scheduler)
    except ProblemError as exc:
        problems += exc.problems
    if cfg.training.attention == "xformers" and importlib.util.find_spec("xformers") is None:
        problems.append(error("training.attention", "xformers is not installed", "pip install xformers, or use sdpa"))
    if cfg.sampling.prompts and cfg.sampling.sampler == "lms" and importlib.util.find_spec("scipy") is None:
        problems.append(error("sampling.sampler", "the lms sampler needs scipy, which is not installed",
                              "pip install 'tui-lora[samplers]' (scipy), or choose another sampler (euler_a, dpmpp_2m, ...)"))
    if cfg.folders.logging:
        if cfg.logging.log_with in ("tensorboard", "all") and importlib.util.find_spec("tensorboard") is None:
            problems.append(error("logging.log_with", "tensorboard is not installed", "pip install tensorboard"))
        if cfg.logging.log_with in ("wandb", "all") and importlib.util.find_spec("wandb") is None:
            problems.append(error("logging.log_with", "wandb is not installed", "pip install 'tui-lora[wandb]'"))
    return problems
