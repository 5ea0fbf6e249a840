"""Load a FLUX.1 base model: a diffusers FluxPipeline folder or hub id, the built-in tiny one, or the
single files ComfyUI/Forge users have (BFL transformer + model.clip_l + model.t5xxl + model.ae).

Every mistake a user can fix becomes a `ProblemError` naming the setting. Called from
`loading.load_base_model`, which owns classification (folder / hub / file) and the family checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import engine.families.registry as registry
from engine.models import hub as hf
from engine.models.base_model import BaseModel
import engine.families.detect as fam
from engine.problems import Problem, ProblemError, error

COMPONENTS = ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")


def load_flux_parts(source: str, *, hub: bool, local_only: bool, dtype: Any):
    """(transformer, vae, [clip, t5], [clip tokenizer, t5 tokenizer], scheduler config) of a FluxPipeline folder."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

    common = {"local_files_only": local_only} if hub else {}
    transformer = FluxTransformer2DModel.from_pretrained(source, subfolder="transformer", torch_dtype=dtype, **common)
    vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **common)
    clip = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **hf.dtype_kwarg(dtype), **common)
    t5 = T5EncoderModel.from_pretrained(source, subfolder="text_encoder_2", **hf.dtype_kwarg(dtype), **common)
    tokenizers = [CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **common),
                  T5TokenizerFast.from_pretrained(source, subfolder="tokenizer_2", **common)]
    scheduler_config = FlowMatchEulerDiscreteScheduler.load_config(source, subfolder="scheduler", **common)
    return transformer, vae, [clip, t5], tokenizers, dict(scheduler_config)


def single_file_problems(path: str, clip_l: str | None, t5xxl: str | None, ae: str | None,
                         config_dir: str | None) -> list[Problem]:
    """What a single-file FLUX.1 transformer still needs before anything is loaded."""
    problems = []
    for key, value, what in (("model.clip_l", clip_l, "CLIP-L text encoder (clip_l.safetensors)"),
                             ("model.t5xxl", t5xxl, "T5-XXL text encoder (t5xxl_fp16.safetensors)"),
                             ("model.ae", ae, "autoencoder (ae.safetensors)")):
        if not value:
            problems.append(error(key, f"{path} is a single FLUX.1 transformer file; its {what} is a separate file",
                                  f"set {key} to that file"))
        elif not Path(value).expanduser().is_file():
            problems.append(error(key, f"{value} does not exist", f"set {key} to the {what} file"))
    if not config_dir:
        problems.append(error("model.config_dir", f"loading {path} needs FLUX.1's configs and tokenizers",
                              "set model.config_dir to a diffusers FLUX.1 folder (weights not needed), e.g. "
                              "`hf download black-forest-labs/FLUX.1-dev --exclude '*.safetensors'`"))
    elif (fam.read_json(Path(config_dir).expanduser() / "model_index.json") or {}).get("transformer", [None, None])[1] \
            != "FluxTransformer2DModel":
        problems.append(error("model.config_dir", f"{config_dir} is not a diffusers FLUX.1 folder",
                              "give a folder with model_index.json naming a FluxTransformer2DModel"))
    return problems


def _state_dict(path: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(Path(path).expanduser()))


def _load_encoder(model_class: Any, config_folder: Path, file: str, key: str, dtype: Any):
    """A transformers encoder built from its config, with the weights of a single file (HF key layout)."""
    config = model_class.config_class.from_pretrained(str(config_folder))
    model = model_class(config)
    state = _state_dict(file)
    expected = set(model.state_dict())
    # ComfyUI's files hold the bare model; some tools prefix the names or add the decoder's embedding.
    state = {k: v for k, v in state.items() if k in expected} or state
    missing, _ = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if "position_ids" not in m and m != "encoder.embed_tokens.weight"]
    if missing:
        raise ProblemError([error(key, f"{file} does not hold the expected weights (missing {missing[0]}, …)",
                                  f"set {key} to the matching encoder file")])
    if hasattr(model, "encoder") and "shared.weight" in state:
        model.encoder.embed_tokens = model.shared
    return model.to(dtype)


def load_flux_single_file(path: str, *, clip_l: str | None, t5xxl: str | None, ae: str | None,
                          config_dir: str | None, dtype: Any):
    """The parts of a single-file FLUX.1: the BFL transformer through diffusers' single-file loader,
    the encoders from their files, configs and tokenizers from `model.config_dir`."""
    problems = single_file_problems(path, clip_l, t5xxl, ae, config_dir)
    if problems:
        raise ProblemError(problems)
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

    folder = Path(config_dir).expanduser()
    try:
        transformer = FluxTransformer2DModel.from_single_file(path, config=str(folder), subfolder="transformer",
                                                              torch_dtype=dtype, local_files_only=True)
    except Exception as exc:
        raise ProblemError([error("model.path", f"could not load {path} as a FLUX.1 transformer with the configs "
                                  f"in {config_dir}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                                  "check that model.config_dir holds the configs of the same FLUX.1 variant")]) from None
    try:
        vae = AutoencoderKL.from_single_file(str(Path(ae).expanduser()), config=str(folder), subfolder="vae",
                                             torch_dtype=dtype, local_files_only=True)
    except Exception as exc:
        raise ProblemError([error("model.ae", f"could not load {ae} as FLUX.1's autoencoder: "
                                  f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                                  "set model.ae to the ae.safetensors that comes with FLUX.1")]) from None
    encoders = [_load_encoder(CLIPTextModel, folder / "text_encoder", clip_l, "model.clip_l", dtype),
                _load_encoder(T5EncoderModel, folder / "text_encoder_2", t5xxl, "model.t5xxl", dtype)]
    tokenizers = [CLIPTokenizer.from_pretrained(str(folder / "tokenizer")),
                  T5TokenizerFast.from_pretrained(str(folder / "tokenizer_2"))]
    scheduler_config = FlowMatchEulerDiscreteScheduler.load_config(str(folder), subfolder="scheduler")
    return transformer, vae, encoders, tokenizers, dict(scheduler_config)


def is_flux_source(kind: str, location: str, requested: str | None) -> bool:
    """Whether `model.path` is a FLUX.1 model, from its structure (hub ids: the name asked for)."""
    from engine.families.flux1.tiny import NAME

    if kind == "builtin":
        return location == NAME
    if kind == "folder":
        return fam.family_of_folder(location) == "flux1"
    if kind == "single_file":
        keys = fam.safetensors_keys(location) if location.lower().endswith((".safetensors", ".sft")) else None
        return keys is not None and fam.family_of_single_file_keys(keys) == "flux1"
    snapshot = hf.cached_hub_snapshot(location)
    if snapshot is not None:
        return fam.family_of_folder(snapshot) == "flux1"
    return requested == "flux1"


def load_flux_base(kind: str, location: str, path: str, *, family: str | None, config_dir: str | None, dtype: Any,
                   cache_dir: str | None, clip_l: str | None, t5xxl: str | None, ae: str | None) -> Any:
    from engine.families.flux1.tiny import ensure_tiny_flux_model

    if family not in (None, registry.AUTO, "flux1"):
        raise ProblemError([error("model.family", f"model.family is {family} but {path} is FLUX.1",
                                  "set model.family: flux1 (or auto)")])
    if kind == "single_file":
        source = location
        parts = load_flux_single_file(location, clip_l=clip_l, t5xxl=t5xxl, ae=ae, config_dir=config_dir, dtype=dtype)
    else:
        source = str(ensure_tiny_flux_model(cache_dir)) if kind == "builtin" else location
        hub = kind == "hub"
        try:
            parts = load_flux_parts(source, hub=hub, local_only=hub and hf.hub_offline(), dtype=dtype)
        except Exception as exc:  # library errors at the boundary with user files become problems
            if hub and hf.is_not_found(exc):
                offline = hf.hub_offline()
                raise ProblemError([hf.hub_download_problem(source, offline, "" if offline else hf.first_line(exc))]) from None
            raise ProblemError([error("model.path", f"could not load {source}: {hf.first_line(exc)}",
                                      "check that the FLUX.1 model is complete")]) from None
    transformer, vae, encoders, tokenizers, scheduler_config = parts
    for module in (transformer, vae, *encoders):
        module.requires_grad_(False)
        module.eval()
    from diffusers import FlowMatchEulerDiscreteScheduler

    return BaseModel(
        unet=transformer, vae=vae, text_encoders=encoders, tokenizers=tokenizers,
        noise_scheduler=FlowMatchEulerDiscreteScheduler.from_config(scheduler_config),
        family="flux1", spec=registry.get("flux1"), prediction_type="flow_matching",
        vae_scale_factor=2 ** (len(vae.config.block_out_channels) - 1),
        scaling_factor=float(vae.config.scaling_factor), source=source, kind=kind,
        scheduler_config=dict(scheduler_config),
    )
