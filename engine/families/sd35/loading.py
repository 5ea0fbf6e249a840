"""Load SD 3.5's parts: a diffusers StableDiffusion3Pipeline folder or hub id (the built-in tiny one too),
or the single files ComfyUI/Forge users have: SAI's `sd3.5_large.safetensors` (the MMDiT, and
usually its VAE) with `model.clip_l`, `model.clip_g`, `model.t5xxl` (and `model.ae` when the VAE is
separate), configs and tokenizers from `model.config_dir`, as FLUX.1's single files load.

Every mistake a user can fix becomes a `ProblemError` naming the setting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import engine.families.detect as detect
import engine.families.sd35.reference as ref
from engine.families.sd35.tiny import NAME as TINY_NAME, ensure_tiny_sd35_model
from engine.models import hub
from engine.models.base_model import BaseModel
from engine.problems import Problem, ProblemError, error

TRANSFORMER_CLASS = "SD3Transformer2DModel"
# (setting, what it is, its folder in a diffusers SD 3.5 repo, encoder class)
ENCODER_FILES = (("model.clip_l", "CLIP-L text encoder (clip_l.safetensors)", "text_encoder"),
                 ("model.clip_g", "CLIP-G text encoder (clip_g.safetensors)", "text_encoder_2"),
                 ("model.t5xxl", "T5-XXL text encoder (t5xxl_fp16.safetensors)", "text_encoder_3"))
_VAE_PREFIX = "first_stage_model."


def load_sd35_parts(source: str, *, from_hub: bool, local_only: bool, dtype: Any):
    """(transformer, vae, [CLIP-L, CLIP-G, T5], [their tokenizers], scheduler config) of a diffusers folder."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

    common = {"local_files_only": local_only} if from_hub else {}
    transformer = SD3Transformer2DModel.from_pretrained(source, subfolder="transformer", torch_dtype=dtype, **common)
    vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **common)
    encoders = [CLIPTextModelWithProjection.from_pretrained(source, subfolder="text_encoder", **hub.dtype_kwarg(dtype), **common),
                CLIPTextModelWithProjection.from_pretrained(source, subfolder="text_encoder_2", **hub.dtype_kwarg(dtype), **common),
                T5EncoderModel.from_pretrained(source, subfolder="text_encoder_3", **hub.dtype_kwarg(dtype), **common)]
    tokenizers = [CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **common),
                  CLIPTokenizer.from_pretrained(source, subfolder="tokenizer_2", **common),
                  T5TokenizerFast.from_pretrained(source, subfolder="tokenizer_3", **common)]
    scheduler_config = FlowMatchEulerDiscreteScheduler.load_config(source, subfolder="scheduler", **common)
    return transformer, vae, encoders, tokenizers, dict(scheduler_config)


def _is_sd3_config_folder(folder: Path) -> bool:
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(index, dict) and (index.get("transformer") or [None, None])[1] == TRANSFORMER_CLASS


def file_holds_vae(keys: Any) -> bool:
    """Whether a single SD3 file carries its autoencoder (SAI's files do, under `first_stage_model.`)."""
    return any(str(key).startswith(_VAE_PREFIX) for key in keys)


def single_file_problems(path: str, *, files: dict[str, str | None], ae: str | None, config_dir: str | None,
                         vae_inside: bool) -> list[Problem]:
    """What a single-file SD 3.5 still needs before anything is loaded (`files` by setting key)."""
    problems = []
    for key, what, _ in ENCODER_FILES:
        value = files.get(key)
        if not value:
            problems.append(error(key, f"{path} is a single SD 3.5 model file; its {what} is a separate file",
                                  f"set {key} to that file (ComfyUI keeps it in models/text_encoders)"))
        elif not Path(value).expanduser().is_file():
            problems.append(error(key, f"{value} does not exist", f"set {key} to the {what} file"))
    if ae and not Path(ae).expanduser().is_file():
        problems.append(error("model.ae", f"{ae} does not exist", "set model.ae to SD 3.5's VAE file, or leave it empty"))
    elif not ae and not vae_inside:
        problems.append(error("model.ae", f"{path} holds no autoencoder (no first_stage_model.* weights)",
                              "set model.ae to SD 3.5's VAE file (diffusion_pytorch_model.safetensors of its vae folder)"))
    if not config_dir:
        problems.append(error("model.config_dir", f"loading {path} needs SD 3.5's configs and tokenizers",
                              "set model.config_dir to a diffusers SD 3.5 folder (weights not needed), e.g. "
                              "`hf download stabilityai/stable-diffusion-3.5-large --exclude '*.safetensors'`"))
    elif not _is_sd3_config_folder(Path(config_dir).expanduser()):
        problems.append(error("model.config_dir", f"{config_dir} is not a diffusers SD 3.5 folder",
                              f"give a folder with model_index.json naming an {TRANSFORMER_CLASS}"))
    return problems


def _load_encoder(model_class: Any, config_folder: Path, file: str, key: str, dtype: Any):
    """A transformers encoder from its config, with the weights of a single file (Hugging Face key layout)."""
    from safetensors.torch import load_file

    model = model_class(model_class.config_class.from_pretrained(str(config_folder)))
    state = load_file(str(Path(file).expanduser()))
    expected = set(model.state_dict())
    # ComfyUI's files hold the bare model; some tools prefix the names or add extra tensors
    state = {k: v for k, v in state.items() if k in expected} or state
    missing, _ = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if "position_ids" not in m and m != "encoder.embed_tokens.weight"]
    if missing:
        raise ProblemError([error(key, f"{file} does not hold the expected weights (missing {missing[0]}, …)",
                                  f"set {key} to the matching encoder file")])
    if hasattr(model, "encoder") and "shared.weight" in state:
        model.encoder.embed_tokens = model.shared
    return model.to(dtype)


def load_sd35_single_file(path: str, *, files: dict[str, str | None], ae: str | None, config_dir: str | None,
                          dtype: Any, keys: Any):
    """The parts of a single-file SD 3.5: the MMDiT (and VAE) through diffusers' single-file loader, the
    encoders from their files, configs and tokenizers from `model.config_dir`."""
    problems = single_file_problems(path, files=files, ae=ae, config_dir=config_dir, vae_inside=file_holds_vae(keys))
    if problems:
        raise ProblemError(problems)
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

    folder = Path(config_dir).expanduser()
    try:
        transformer = SD3Transformer2DModel.from_single_file(path, config=str(folder), subfolder="transformer",
                                                             torch_dtype=dtype, local_files_only=True)
    except Exception as exc:  # library errors at the boundary with user files become problems
        raise ProblemError([error("model.path", f"could not load {path} as an SD 3.5 transformer with the configs in "
                                  f"{config_dir}: {hub.first_line(exc)}",
                                  "check that model.config_dir holds the configs of the same SD 3.5 model (Large or Medium)")]) from None
    vae_file, vae_key = (str(Path(ae).expanduser()), "model.ae") if ae else (path, "model.path")
    try:
        vae = AutoencoderKL.from_single_file(vae_file, config=str(folder), subfolder="vae", torch_dtype=dtype,
                                             local_files_only=True)
    except Exception as exc:
        raise ProblemError([error(vae_key, f"could not load SD 3.5's autoencoder from {vae_file}: {hub.first_line(exc)}",
                                  "set model.ae to the VAE file that comes with SD 3.5")]) from None
    classes = (CLIPTextModelWithProjection, CLIPTextModelWithProjection, T5EncoderModel)
    encoders = [_load_encoder(cls, folder / sub, str(files[key]), key, dtype)
                for cls, (key, _, sub) in zip(classes, ENCODER_FILES)]
    tokenizers = [CLIPTokenizer.from_pretrained(str(folder / "tokenizer")),
                  CLIPTokenizer.from_pretrained(str(folder / "tokenizer_2")),
                  T5TokenizerFast.from_pretrained(str(folder / "tokenizer_3"))]
    scheduler_config = FlowMatchEulerDiscreteScheduler.load_config(str(folder), subfolder="scheduler")
    return transformer, vae, encoders, tokenizers, dict(scheduler_config)


def is_sd35_source(kind: str, location: str, requested: str | None) -> bool:
    """Whether `model.path` is an SD 3 / 3.5 model, from its structure (hub ids: the id or the name asked for)."""
    if kind == "builtin":
        return location == TINY_NAME
    if kind == "folder":
        return _is_sd3_config_folder(Path(location))
    if kind == "single_file":
        keys = detect.safetensors_keys(location) if location.lower().endswith((".safetensors", ".sft")) else None
        return keys is not None and ref.is_sai_transformer(keys)
    snapshot = hub.cached_hub_snapshot(location)
    if snapshot is not None:
        return _is_sd3_config_folder(Path(snapshot))
    return requested == "sd35" or location.lower() in {hub_id.lower() for hub_id in ref.HUB_IDS.values()}


def load_sd35_base(kind: str, location: str, path: str, *, family: str | None, config_dir: str | None, dtype: Any,
                   cache_dir: str | None, companions: dict[str, str | None], spec: Any) -> Any:
    """A frozen `BaseModel` of SD 3.5 from any source `is_sd35_source` claimed."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if family not in (None, "auto", "sd35"):
        raise ProblemError([error("model.family", f"model.family is {family} but {path} is SD 3.5",
                                  "set model.family: sd35 (or auto)")])
    if kind == "single_file":
        source = location
        parts = load_sd35_single_file(location, files={key: companions.get(key) for key, _, _ in ENCODER_FILES},
                                      ae=companions.get("model.ae"), config_dir=config_dir, dtype=dtype,
                                      keys=detect.safetensors_keys(location) or [])
    else:
        source = str(ensure_tiny_sd35_model(cache_dir)) if kind == "builtin" else location
        from_hub = kind == "hub"
        try:
            parts = load_sd35_parts(source, from_hub=from_hub, local_only=from_hub and hub.hub_offline(), dtype=dtype)
        except Exception as exc:  # library errors at the boundary with user files become problems
            if from_hub and hub.is_not_found(exc):
                offline = hub.hub_offline()
                raise ProblemError([hub.hub_download_problem(source, offline, "" if offline else hub.first_line(exc))]) from None
            raise ProblemError([error("model.path", f"could not load {source}: {hub.first_line(exc)}",
                                      "check that the SD 3.5 model is complete")]) from None
    transformer, vae, encoders, tokenizers, scheduler_config = parts
    for module in (transformer, vae, *encoders):
        module.requires_grad_(False)
        module.eval()
    return BaseModel(
        unet=transformer, vae=vae, text_encoders=encoders, tokenizers=tokenizers,
        noise_scheduler=FlowMatchEulerDiscreteScheduler.from_config(scheduler_config),
        family="sd35", spec=spec, prediction_type="flow_matching",
        vae_scale_factor=2 ** (len(vae.config.block_out_channels) - 1),
        scaling_factor=float(vae.config.scaling_factor), source=source, kind=kind,
        scheduler_config=dict(scheduler_config),
    )
