"""Load the base model a LoRA is trained against, from wherever `model.path` points.

Accepted: a built-in tiny model name, a diffusers folder, a single `.safetensors`/`.ckpt` file
(with `model.config_dir` holding its diffusers configs for offline use), or a Hugging Face hub id
(from the local cache when offline). Every user mistake becomes a `ProblemError` naming the
setting to fix; the family flags are checked against the model's structure before training.

Importing this module is cheap: torch and diffusers are imported inside the loaders, so the wizard
can call `describe_model_path` freely.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from engine import families
import engine.families.detect as fam
from engine.families.base import ModelFamily
from engine.families.builtin import builtin_family, builtin_names, ensure_builtin_model
from engine.models import hub as hf
from engine.models.base_model import BaseModel
from engine.problems import Problem, ProblemError, error, warning

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TEXT_ENCODER_CLASSES = {"CLIPTextModel", "CLIPTextModelWithProjection"}



class PathDescription(NamedTuple):
    """What `model.path` points at, found without torch: kind, family when known, problems."""

    kind: str  # "builtin", "folder", "single_file", "hub" or "missing"
    family: str | None  # a Family; "sd2" for single files, which cannot tell v-prediction
    problems: list[Problem]


# ----------------------------------------------------------------------------- cheap description


def describe_model_path(path: str, config_dir: str | None = None) -> PathDescription:
    """Classify `model.path` and read its family from configs or a file header (no torch, no weights)."""
    kind, location = _classify(path)
    problems: list[Problem] = []
    if kind == "builtin":
        return PathDescription(kind, builtin_family(location), problems)
    if kind == "missing":
        return PathDescription(kind, None, [_missing_problem(path)])
    if kind == "folder":
        problems += _folder_problems(Path(location))
        return PathDescription(kind, fam.family_of_folder(location) if not problems else None, problems)
    if kind == "single_file":
        file_family, recorded_v, problems = _single_file_facts(location, config_dir)
        if file_family and recorded_v:
            file_family = _with_v_prediction(file_family)
        if not config_dir and hf.hub_offline():
            problems.append(
                warning(
                    "model.config_dir",
                    "a single-file model needs its diffusers configs, and this machine is offline",
                    "set model.config_dir to a folder with the model's configs and tokenizer "
                    "(a diffusers model folder of the same family works)",
                )
            )
        return PathDescription(kind, file_family, problems)

    # hub id: look only in the local cache
    snapshot = hf.cached_hub_snapshot(location)
    if snapshot is None:
        if hf.hub_offline():
            problems.append(hf.hub_download_problem(location, offline=True))
        else:
            problems.append(
                warning("model.path", f"{location} is not in the local Hugging Face cache; it will be downloaded")
            )
        return PathDescription(kind, None, problems)
    return PathDescription(kind, fam.family_of_folder(snapshot), problems)


def describe_kind(path: str) -> str:
    """What `model.path` names, from the file system only: builtin, folder, single_file, hub or missing."""
    return _classify(path)[0]


def _classify(path: str) -> tuple[str, str]:
    text = (path or "").strip()
    if text in builtin_names():
        return "builtin", text
    local = Path(text).expanduser()
    if text and local.is_dir():
        return "folder", str(local)
    if text and local.is_file():
        return "single_file", str(local)
    looks_like_path = text.startswith(("/", ".", "~")) or text.lower().endswith(SINGLE_FILE_SUFFIXES)
    if text and not looks_like_path and _HUB_ID.match(text):
        return "hub", text
    return "missing", text


def _missing_problem(path: str) -> Problem:
    if not (path or "").strip():
        return error("model.path", "no base model given", "pick a model or enter a folder, file or hub id")
    return error(
        "model.path",
        f"{path} does not exist",
        "give a diffusers folder, a .safetensors/.ckpt file, a hub id such as "
        f"stable-diffusion-v1-5/stable-diffusion-v1-5, or one of: {', '.join(builtin_names())}",
    )


def _folder_problems(folder: Path) -> list[Problem]:
    index = fam.read_json(folder / "model_index.json")
    if index is None:
        singles = sorted(p.name for p in folder.iterdir() if p.suffix in SINGLE_FILE_SUFFIXES)
        hint = (
            f"to use the single file inside, set model.path to {folder / singles[0]}"
            if singles
            else "point model.path at a diffusers model folder (it holds model_index.json, unet/, vae/, …)"
        )
        return [error("model.path", f"{folder} has no model_index.json, so it is not a diffusers model folder", hint)]
    if fam.family_of_index(index) is not None:
        return []  # a pipeline a family claims (FluxPipeline): its parts are checked as they load
    if not fam.component_present(index, "unet") or index.get("unet", [None, None])[1] != "UNet2DConditionModel":
        kind = index.get("_class_name", "this pipeline")
        return [
            error(
                "model.path",
                f"{folder} holds a {kind}, which has no Stable Diffusion UNet; tui-lora trains SD 1.x, 2.x and SDXL",
                "pick a Stable Diffusion 1.x, 2.x or SDXL base model",
            )
        ]
    encoders = [n for n in ("text_encoder", "text_encoder_2") if fam.component_present(index, n)]
    unknown = [index[n][1] for n in encoders if index[n][1] not in _TEXT_ENCODER_CLASSES]
    if not encoders or unknown:
        return [
            error(
                "model.path",
                f"{folder} has text encoders tui-lora does not know ({', '.join(unknown) or 'none'})",
                "pick a Stable Diffusion 1.x, 2.x or SDXL base model (CLIP text encoders)",
            )
        ]
    if fam.component_present(index, "text_encoder_2") and not fam.component_present(index, "text_encoder"):
        return [error("model.path", f"{folder} looks like the SDXL refiner, which is not a base for LoRAs")]
    return []


def _config_dir_problems(config_dir: str | None) -> list[Problem]:
    if not config_dir:
        return []
    folder = Path(config_dir).expanduser()
    if not folder.is_dir():
        return [error("model.config_dir", f"{config_dir} is not a folder", "give a folder of diffusers configs")]
    if not (folder / "model_index.json").is_file():
        return [
            error(
                "model.config_dir",
                f"{config_dir} has no model_index.json",
                "give a diffusers model folder (configs and tokenizer; weights are not needed)",
            )
        ]
    return []


# ----------------------------------------------------------------------------- loading


def load_base_model(
    path: str,
    *,
    family: ModelFamily | None = None,
    companions: Mapping[str, str | None] | None = None,
    config_dir: str | None = None,
    dtype: Any = None,
    cache_dir: str | None = None,
) -> BaseModel:
    """Load `path` (builtin name, diffusers folder, single file or hub id) as a frozen `BaseModel`.

    `dtype` is a torch dtype (default float32). `cache_dir` is the tui-lora cache root for built-in
    models. Raises `ProblemError` for anything the user can fix: missing files, offline downloads,
    unsupported models, and a family that contradicts the model.

    `family` is the run's family object, worked out once by preflight from `model.family`; None
    (`auto`) accepts whatever family the model is. `companions` are the single-file companions by
    setting name (FLUX.1's `clip_l` / `t5xxl` / `ae`), handed to a family that loads its own models.
    """
    import torch

    dtype = dtype if dtype is not None else torch.float32
    auto = family is None
    requested = families.AUTO if auto else family.name
    flags = families.get(families.from_flags()).legacy_flags() if auto else family.legacy_flags()
    kind, location = _classify(path)
    if kind == "missing":
        raise ProblemError([_missing_problem(path)])

    given = dict(companions or {})  # single-file companions by setting name
    for spec in families.REGISTRY.values():  # a family with its own loader claims its models first
        if spec.claims_source(kind, location, requested):
            return spec.load_base(kind, location, path, family=requested, config_dir=config_dir, dtype=dtype,
                                  cache_dir=cache_dir, companions={name: given.get(name) for name in spec.companions})
    warnings: list[Problem] = []
    if kind == "single_file":
        parts, prediction_type = _load_single_file(location, config_dir, flags, dtype, warnings, requested)
        source = location
    else:
        if kind == "builtin":
            source = str(ensure_builtin_model(location, cache_dir))
        elif kind == "hub":
            source = location
        else:
            source = location
            hf.raise_errors(_folder_problems(Path(location)))
        if not auto:
            _precheck_folder(source if kind != "hub" else hf.cached_hub_snapshot(source), path, requested)
        parts = _load_diffusers(source, hub=kind == "hub", dtype=dtype)
        prediction_type = fam.prediction_type_of(parts[4])

    unet, vae, encoders, tokenizers, scheduler_config = parts
    detected = fam.family_from_configs(
        text_encoder_configs=[e.config.to_dict() for e in encoders],
        unet_config=dict(unet.config),
        scheduler_config={"prediction_type": prediction_type},
    )
    if not auto:
        hf.raise_errors(
            fam.check_family(detected, requested, prediction_type=prediction_type, source=_display(path, source))
        )

    from diffusers import DDPMScheduler

    # Training noise: the model's own betas and prediction type; never clip (it is not sampling).
    noise_scheduler = DDPMScheduler.from_config(scheduler_config, prediction_type=prediction_type, clip_sample=False)
    for module in (unet, vae, *encoders):
        module.requires_grad_(False)
        module.eval()
    return BaseModel(
        unet=unet,
        vae=vae,
        text_encoders=encoders,
        tokenizers=tokenizers,
        noise_scheduler=noise_scheduler,
        family=detected,
        spec=families.get(detected),
        prediction_type=prediction_type,
        vae_scale_factor=2 ** (len(vae.config.block_out_channels) - 1),
        scaling_factor=float(vae.config.scaling_factor),
        source=source,
        kind=kind,
        scheduler_config=dict(scheduler_config),
        warnings=warnings,
    )


def _display(path: str, source: str) -> str:
    return path if path in builtin_names() else source


def _precheck_folder(folder: str | None, path: str, requested: str | None) -> None:
    """Check the named family against the json configs before spending time (and memory) on weights."""
    if folder is None:
        return
    family = fam.family_of_folder(folder)
    if family is not None:
        prediction = fam.prediction_type_of_folder(folder)
        hf.raise_errors(fam.check_family(family, requested, prediction_type=prediction, source=path))


def _load_diffusers(source: str, *, hub: bool, dtype: Any):
    """Components of a diffusers folder or hub repo, each loaded on its own (no safety checker)."""
    import transformers
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTokenizer

    local_only = hub and hf.hub_offline()
    common = {"local_files_only": local_only} if hub else {}
    try:
        index_file = Path(source) / "model_index.json"
        if hub:
            from huggingface_hub import hf_hub_download

            index_file = Path(hf_hub_download(source, "model_index.json", local_files_only=local_only))
            hf.raise_errors(_folder_problems(index_file.parent))
        index = fam.read_json(index_file) or {}
        encoder_names = [n for n in ("text_encoder", "text_encoder_2") if fam.component_present(index, n)]
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=dtype, **common)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **common)
        encoders = []
        tokenizers = []
        for name in encoder_names:
            encoder_class = getattr(transformers, index[name][1])
            encoders.append(encoder_class.from_pretrained(source, subfolder=name, **hf.dtype_kwarg(dtype), **common))
            tokenizer_name = name.replace("text_encoder", "tokenizer")
            tokenizers.append(CLIPTokenizer.from_pretrained(source, subfolder=tokenizer_name, **common))
        scheduler_config = DDPMScheduler.load_config(source, subfolder="scheduler", **common)
    except ProblemError:
        raise
    except Exception as exc:  # library errors at the boundary with user files become problems
        if hub and hf.is_not_found(exc):
            offline = hf.hub_offline()
            detail = "" if offline else hf.first_line(exc)
            raise ProblemError([hf.hub_download_problem(source, offline, detail)]) from None
        raise ProblemError(
            [error("model.path", f"could not load {source}: {hf.first_line(exc)}", "check that the model is complete")]
        ) from None
    for encoder, tokenizer in zip(encoders, tokenizers):
        _fix_tokenizer_length(tokenizer, encoder)
    return unet, vae, encoders, tokenizers, dict(scheduler_config)


def _fix_tokenizer_length(tokenizer: Any, encoder: Any) -> None:
    # Without a recorded model_max_length, from_pretrained reports an effectively infinite one.
    if tokenizer.model_max_length > 100_000:
        tokenizer.model_max_length = int(encoder.config.max_position_embeddings)


# ----------------------------------------------------------------------------- single files


def _load_single_file(path: str, config_dir: str | None, flags: dict[str, bool], dtype: Any, warnings: list,
                      requested: str):
    """Load an original-layout checkpoint through diffusers' `from_single_file`.

    Returns the parts and the prediction type to train with.
    """
    file_family, recorded_v, problems = _single_file_facts(path, config_dir)
    hf.raise_errors(problems)
    config_family = fam.family_of_folder(config_dir) if config_dir else None
    # The file's own structure first, then the configs, then the user's flags.
    spec = families.get(file_family or config_family or families.from_flags(**flags))
    # Only a marker key records v-prediction; otherwise the flag decides, as in the Kohya scripts.
    prediction_type = "v_prediction" if recorded_v or flags["v_parameterization"] else "epsilon"
    auto = requested == families.AUTO
    if file_family and not auto:  # a wrong family fail before the weights are read
        expected = _with_v_prediction(file_family) if prediction_type == "v_prediction" else file_family
        hf.raise_errors(fam.check_family(expected, requested, prediction_type=prediction_type, source=path))

    import diffusers

    pipeline_class = getattr(diffusers, spec.pipeline_class)
    offline = hf.hub_offline()
    kwargs: dict[str, Any] = {"torch_dtype": dtype}
    if config_dir:
        kwargs.update(config=str(Path(config_dir).expanduser()), local_files_only=True)
    else:
        kwargs.update(local_files_only=offline)
    try:
        pipe = pipeline_class.from_single_file(path, **kwargs)
    except Exception as exc:
        raise ProblemError([_single_file_problem(path, config_dir, file_family, flags, offline, exc)]) from None

    encoders = [getattr(pipe, name) for name in spec.text_encoder_components]
    tokenizers = [getattr(pipe, name.replace("text_encoder", "tokenizer")) for name in spec.text_encoder_components]
    for encoder, tokenizer in zip(encoders, tokenizers):
        _fix_tokenizer_length(tokenizer, encoder)
    scheduler_config = dict(pipe.scheduler.config)
    configured = fam.prediction_type_of(scheduler_config)
    if auto and not recorded_v:
        prediction_type = configured  # `model.family: auto` trusts the configs
    elif configured != prediction_type and not recorded_v:
        warnings.append(
            warning(
                "model.family",
                f"the configs say {configured} but model.family {requested} trains {prediction_type}; "
                "a single file does not record this, so the setting wins",
            )
        )
    return (pipe.unet, pipe.vae, encoders, tokenizers, scheduler_config), prediction_type


def _single_file_facts(path: str, config_dir: str | None) -> tuple[str | None, bool, list[Problem]]:
    """From the file's header alone: its family (sd1/sd2/sdxl), whether it records v-prediction, problems."""
    problems = _config_dir_problems(config_dir)
    suffix = Path(path).suffix.lower()
    if suffix not in SINGLE_FILE_SUFFIXES:
        return None, False, [*problems, error("model.path", f"{path} is not a .safetensors or .ckpt file")]
    if suffix == ".ckpt":
        return None, False, problems  # reading a pickle's names means unpickling it: leave that to loading
    keys = fam.safetensors_keys(path)
    if keys is None:
        return None, False, [*problems, error("model.path", f"{path} is not a readable .safetensors file")]
    file_family = fam.family_of_single_file_keys(keys)
    config_family = fam.family_of_folder(config_dir) if config_dir and not problems else None
    if file_family and config_family and _architecture(file_family) != _architecture(config_family):
        problems.append(
            error(
                "model.config_dir",
                f"{config_dir} holds {families.label(config_family)} configs but {path} is "
                f"{families.label(_architecture(file_family))}",
                "set model.config_dir to configs of the same family as the file",
            )
        )
    return file_family, fam.single_file_records_v_prediction(keys), problems


def _with_v_prediction(family: str) -> str:
    """The family of a v-prediction model with this layout (SD 2.x → SD 2.x v; others stay)."""
    return families.from_flags(**families.get(family).legacy_flags("v_prediction"))


def _architecture(family: str) -> str:
    return families.get(family).naming  # the layout of the weights: SD 2.x with or without v


def _single_file_problem(
    path: str,
    config_dir: str | None,
    file_family: str | None,
    flags: dict[str, bool],
    offline: bool,
    exc: Exception,
) -> Problem:
    if path.lower().endswith(".ckpt") and _holds_more_than_tensors(path):
        return error(
            "model.path",
            f"{path} holds Python objects besides tensors; tui-lora loads .ckpt files weights-only and will not "
            "run code from them",
            "convert the file to .safetensors with a tool you trust, or use the model's .safetensors release",
        )
    if not config_dir:
        guess = file_family or families.from_flags(**flags)
        if flags["v_parameterization"]:
            guess = _with_v_prediction(guess)
        repo = families.get(guess).config_repo
        where = "this machine is offline" if offline else "they could not be fetched"
        return error(
            "model.config_dir",
            f"loading {path} needs the model's diffusers configs and {where} ({hf.first_line(exc)})",
            f"on a machine with internet run `hf download {repo} --exclude '*.safetensors' '*.bin' '*.ckpt'`, "
            "copy that folder here and set model.config_dir to it (any diffusers folder of the same family works)",
        )
    return error(
        "model.path",
        f"could not load {path} with the configs in {config_dir}: {hf.first_line(exc)}",
        "check that model.config_dir holds configs of the same model (same family and sizes)",
    )


def _holds_more_than_tensors(path: str) -> bool:
    import pickle

    import torch

    try:
        torch.load(path, map_location="meta", weights_only=True)
    except pickle.UnpicklingError:
        return True
    except Exception:
        return False
    return False
