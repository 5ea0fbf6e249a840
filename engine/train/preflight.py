"""Checks that need the disk or installed packages, run before any model loads."""

from __future__ import annotations

import errno
import importlib.util
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from .. import families
from ..config import RunConfig
from ..problems import Problem, error, warning
from .run_family import run_family
from .model_files import model_file_problems

if TYPE_CHECKING:  # the plan scans images (numpy, PIL): not needed before the run registers
    from ..plan import RunPlan


def preflight(cfg: RunConfig, plan: RunPlan, *, resuming: bool = False, run_file: str | None = None,
              yaml_text: str | None = None, load_libraries: bool = True) -> list[Problem]:
    """Every check the engine makes before it starts. `load_libraries=False` (the wizard's Review, which
    must stay torch-free) leaves out the ones that import the optimizer, scheduler or torch; the run-file
    rules already check those arguments against a written table, and training checks them again."""
    return (output_problems(cfg, resuming=resuming, run_file=run_file, yaml_text=yaml_text)
            + package_problems(cfg, plan, load_libraries=load_libraries))


def output_problems(cfg: RunConfig, *, resuming: bool = False, run_file: str | None = None,
                    yaml_text: str | None = None, collisions: bool = True) -> list[Problem]:
    """Checks of the output folder and files: quick (no imports), so they run before the run registers.
    `collisions=False` skips the existing-files and lock checks (the other ranks of a multi-process
    run: the main rank owns the output, and its lock would otherwise look like another run's)."""
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
    elif collisions:
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


def package_problems(cfg: RunConfig, plan: RunPlan, *, load_libraries: bool = True) -> list[Problem]:
    """Checks that need the dataset plan or import packages (seconds): steps, the model's files, the
    optional packages chosen."""
    problems: list[Problem] = []
    if plan.total_steps < 1 and not plan.dataset.errors:
        problems.append(error("folders.images", "the dataset gives no training steps", "add images"))
    problems += _model_problems(cfg) + (_library_problems(cfg) if load_libraries else []) + _package_problems(cfg)
    more = [p for p in model_file_problems(cfg.values) if p.field != "model.path"]  # the model's are above
    return problems + [p for p in more + download_problems(cfg) if p not in problems]


def _model_problems(cfg: RunConfig) -> list[Problem]:
    from ..families.load import describe_model_path

    try:
        description = describe_model_path(cfg.model.path, cfg.model.config_dir)
    except Exception as exc:  # noqa: BLE001 - the loader reports it properly later
        return [warning("model.path", f"could not inspect the model before loading: {exc}")]
    errors = [p for p in description.problems if p.is_error]
    return errors or _family_flag_problems(cfg, description.kind, description.family)


def _family_flag_problems(cfg: RunConfig, kind: str, family: str | None) -> list[Problem]:
    """A named model.family against the family the configs or file header show.

    Checked here, before anything is written, as well as when the weights load. Where the
    prediction type cannot be read (single files, hub SD 1.x/SDXL), the family's own is taken.
    """
    from ..families import detect as fam

    wanted = run_family(cfg)
    if family is None or wanted is None:
        return []  # `auto` takes whatever family the model is
    prediction = wanted.prediction_type
    spec = families.get(family)
    if kind == "builtin" or families.split_by_prediction(spec) and kind != "single_file":
        prediction = None  # the family says it (SD 2.x folders are told apart by their scheduler)
    elif kind == "folder":
        prediction = fam.prediction_type_of_folder(cfg.model.path) or prediction
    return [p for p in fam.check_family(family, wanted.name, prediction_type=prediction, source=cfg.model.path)
            if p.is_error]


def _library_problems(cfg: RunConfig) -> list[Problem]:
    """Checks that import the chosen optimizer or scheduler class, or torch."""
    from ..optim.extra_args import check_optimizer_args, parse_extra_args
    from ..problems import ProblemError

    problems: list[Problem] = []
    try:
        problems += check_optimizer_args(cfg.optimizer.name, parse_extra_args(cfg.optimizer.extra_args),
                                         scheduler=cfg.optimizer.scheduler)
    except ProblemError as exc:
        problems += exc.problems
    if cfg.optimizer.scheduler_type:
        from ..optim.custom_schedule import scheduler_problems

        problems += scheduler_problems(cfg.optimizer.scheduler_type, cfg.optimizer.scheduler_args)
    if cfg.training.fp8_base:
        import torch

        from ..networks.fp8 import fp8_problems

        problems += fp8_problems(cfg.training.mixed_precision, "cuda" if torch.cuda.is_available() else "cpu")
    return problems


def _package_problems(cfg: RunConfig) -> list[Problem]:
    problems: list[Problem] = attention_problems(cfg)
    if cfg.sampling.prompts and cfg.sampling.sampler == "lms" and importlib.util.find_spec("scipy") is None:
        problems.append(error("sampling.sampler", "the lms sampler needs scipy, which is not installed",
                              "pip install 'tui-lora[samplers]' (scipy), or choose another sampler (euler_a, dpmpp_2m, ...)"))
    if cfg.folders.logging:
        if cfg.logging.log_with in ("tensorboard", "all") and importlib.util.find_spec("tensorboard") is None:
            problems.append(error("logging.log_with", "tensorboard is not installed", "pip install tensorboard"))
        if cfg.logging.log_with in ("wandb", "all") and importlib.util.find_spec("wandb") is None:
            problems.append(error("logging.log_with", "wandb is not installed", "pip install 'tui-lora[wandb]'"))
    return problems


# --- what `validate` and the wizard's Review screen ask too (no torch) ---------------------------

def environment_problems(cfg: RunConfig) -> list[Problem]:
    """What training would hit on this machine, found without loading anything: a missing
    attention package, a model file that is missing or unreadable, a model that would need a
    download the machine cannot make."""
    return attention_problems(cfg) + model_file_problems(cfg.values) + download_problems(cfg)


def attention_problems(cfg: RunConfig) -> list[Problem]:
    """xformers chosen but not installed is an error, not a silent switch to sdpa: the user asked
    for it (often to save memory), so they decide between installing it and choosing sdpa."""
    if cfg.training.attention == "xformers" and importlib.util.find_spec("xformers") is None:
        return [error("training.attention", "xformers is chosen but not installed",
                      "pip install xformers (a build matching your torch), or set training.attention: sdpa")]
    return []


HUB_HOST = ("huggingface.co", 443)
PROBE_TIMEOUT_S = 2.0


def download_problems(cfg: RunConfig) -> list[Problem]:
    """A hub model missing from the local cache needs a download: an error when HF_HUB_OFFLINE is
    set (the loader will not even try), a warning when huggingface.co cannot be reached."""
    from ..families.load import describe_model_path

    try:
        description = describe_model_path(cfg.model.path, cfg.model.config_dir or None)
    except Exception:  # noqa: BLE001 - the model checks report unreadable models
        return []
    if description.kind != "hub":
        return []
    offline = [p for p in description.problems if p.is_error and p.field == "model.path"]
    if offline:
        return offline
    needs_download = any(p.field == "model.path" for p in description.problems)
    if needs_download and not _proxy_configured() and not hub_reachable():
        return [warning("model.path", f"{cfg.model.path} is not in the local Hugging Face cache and "
                        f"{HUB_HOST[0]} cannot be reached from this machine, so the download will fail",
                        f"on a machine with internet run `hf download {cfg.model.path}` and copy its Hugging Face "
                        "cache here, or set model.path to a downloaded model folder")]
    return []


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _proxy_configured() -> bool:
    """Behind a proxy a direct connection fails while downloads work: do not cry wolf."""
    return any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
