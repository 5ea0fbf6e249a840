"""Checks that need the disk or installed packages, run before any model loads."""

from __future__ import annotations

import errno
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import RunConfig
from ..problems import Problem, error, warning

if TYPE_CHECKING:  # the plan scans images (numpy, PIL): not needed before the run registers
    from ..plan import RunPlan


def next_free_name(output_dir: Path, name: str, suffix: str) -> str:
    """`name_v2`, `name_v3`, ... : the first name with no file in the output folder."""
    version = 2
    base = name
    while (output_dir / f"{base}_v{version}{suffix}").exists():
        version += 1
    return f"{base}_v{version}"


def preflight(cfg: RunConfig, plan: RunPlan, *, resuming: bool = False, run_file: str | None = None,
              yaml_text: str | None = None) -> list[Problem]:
    return (output_problems(cfg, resuming=resuming, run_file=run_file, yaml_text=yaml_text)
            + package_problems(cfg, plan))


def output_problems(cfg: RunConfig, *, resuming: bool = False, run_file: str | None = None,
                    yaml_text: str | None = None) -> list[Problem]:
    """Checks of the output folder and files: quick (no imports), so they run before the run registers."""
    from ..outputs import collision_problems

    problems: list[Problem] = []
    output = Path(cfg.folders.output)
    suffix = ".ckpt" if cfg.model.save_as == "ckpt" else ".safetensors"
    final = output / f"{cfg.folders.output_name}{suffix}"
    if output.is_symlink() and not output.exists():
        problems.append(error("folders.output", f"{output} is a link to a folder that does not exist "
                              f"({os.readlink(output)})", "create the folder it points to, or choose another folder"))
    elif output.exists() and not output.is_dir():
        problems.append(error("folders.output", f"{output} is a file, not a folder", "choose a folder"))
    elif output.exists() and not os.access(output, os.W_OK):
        problems.append(error("folders.output", f"{output} is not writable", "choose a folder you can write to"))
    else:
        problems += collision_problems(cfg, cfg.epochs, resuming=resuming, run_file=run_file, yaml_text=yaml_text)
    weights = cfg.network.weights
    if weights and not Path(weights).is_file():
        why = "is a link that points to itself or in a circle" if _is_link_loop(Path(weights)) else "does not exist"
        problems.append(error("network.weights", f"{weights} {why}", "give the path of an existing LoRA file"))
    elif weights and os.path.realpath(weights) == os.path.realpath(final):
        problems.append(error("network.weights", "is the file this run would write",
                              "set another folders.output_name so the file you continue from is kept"))
    return problems


def _is_link_loop(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def package_problems(cfg: RunConfig, plan: RunPlan) -> list[Problem]:
    """Checks that need the dataset plan or import packages (seconds): steps, the model's files, the
    optional packages chosen."""
    problems: list[Problem] = []
    if plan.total_steps < 1 and not plan.dataset.errors:
        problems.append(error("folders.images", "the dataset gives no training steps", "add images"))
    return problems + _model_problems(cfg) + _package_problems(cfg)


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
    from ..models import family as fam

    if family is None:
        return []
    flags = {"v2": cfg.model.v2, "v_parameterization": cfg.model.v_parameterization, "sdxl": cfg.model.sdxl}
    prediction = "v_prediction" if cfg.model.v_parameterization else "epsilon"
    if kind == "builtin" or family in ("sd2", "sd2-v") and kind != "single_file":
        prediction = None  # the family says it
    elif kind == "folder":
        prediction = fam.prediction_type_of_folder(cfg.model.path) or prediction
    if kind == "single_file" and family == "sd2" and prediction == "v_prediction":
        family = "sd2-v"
    return [p for p in fam.check_family_flags(family, **flags, prediction_type=prediction, source=cfg.model.path)
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
