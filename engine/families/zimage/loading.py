"""Load a Z-Image base model: a diffusers `ZImagePipeline` folder or hub id, the built-in tiny one, or
the single files ComfyUI users have (the transformer, `model.qwen3` for the Qwen3 text encoder,
`model.ae` for FLUX.1's autoencoder) with `model.config_dir` holding the configs and tokenizer.

Every mistake a user can fix becomes a `ProblemError` naming the setting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import engine.families.registry as registry
import engine.families.zimage.reference as ref
from engine.models import hub as hf
from engine.models.base_model import BaseModel
from engine.problems import Problem, ProblemError, error

PIPELINE_CLASS = "ZImagePipeline"
TRANSFORMER_CLASS = "ZImageTransformer2DModel"


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_zimage_index(index: dict | None) -> bool:
    """Whether a model_index.json describes a Z-Image pipeline (its transformer class decides)."""
    if not index:
        return False
    transformer = index.get("transformer")
    return index.get("_class_name") == PIPELINE_CLASS or (
        isinstance(transformer, list) and len(transformer) == 2 and transformer[1] == TRANSFORMER_CLASS)


def is_zimage_folder(folder: str | Path) -> bool:
    return is_zimage_index(_read_json(Path(folder).expanduser() / "model_index.json"))


def is_zimage_keys(keys: Any) -> bool:
    """A single file's tensor names: a Z-Image transformer, native (fused qkv) or diffusers layout."""
    names = {str(k) for k in keys}
    return ref.is_native_transformer(names) or (
        "noise_refiner.0.attention.to_q.weight" in names and "cap_embedder.1.weight" in names)


def load_parts(source: str, *, hub: bool, local_only: bool, dtype: Any):
    """(transformer, vae, [qwen3], [tokenizer], scheduler config) of a ZImagePipeline folder or hub repo."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImageTransformer2DModel
    from transformers import AutoTokenizer, Qwen3Model

    common = {"local_files_only": local_only} if hub else {}
    transformer = ZImageTransformer2DModel.from_pretrained(source, subfolder="transformer", torch_dtype=dtype, **common)
    vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **common)
    # The published text_encoder folder holds a Qwen3ForCausalLM; the pipeline reads only its hidden
    # states, so the bare model is loaded (as diffusers' example does) and the output head skipped.
    qwen = Qwen3Model.from_pretrained(source, subfolder="text_encoder", dtype=dtype, **common)
    tokenizer = AutoTokenizer.from_pretrained(source, subfolder="tokenizer", **common)
    scheduler_config = FlowMatchEulerDiscreteScheduler.load_config(source, subfolder="scheduler", **common)
    return transformer, vae, [qwen], [tokenizer], dict(scheduler_config)


def single_file_problems(path: str, qwen3: str | None, ae: str | None, config_dir: str | None) -> list[Problem]:
    """What a single-file Z-Image transformer still needs before anything is loaded."""
    problems = []
    for key, value, what in (("model.qwen3", qwen3, "Qwen3 text encoder (qwen_3_4b.safetensors)"),
                             ("model.ae", ae, "autoencoder (ae.safetensors, FLUX.1's)")):
        if not value:
            problems.append(error(key, f"{path} is a single Z-Image transformer file; its {what} is a separate file",
                                  f"set {key} to that file"))
        elif not Path(value).expanduser().is_file():
            problems.append(error(key, f"{value} does not exist", f"set {key} to the {what} file"))
    if not config_dir:
        problems.append(error("model.config_dir", f"loading {path} needs Z-Image's configs and tokenizer",
                              "set model.config_dir to a diffusers Z-Image folder (weights not needed), e.g. "
                              f"`hf download {ref.HUB_IDS['turbo']} --exclude '*.safetensors'`"))
    elif not is_zimage_folder(config_dir):
        problems.append(error("model.config_dir", f"{config_dir} is not a diffusers Z-Image folder",
                              f"give a folder with model_index.json naming a {TRANSFORMER_CLASS}"))
    return problems


def load_qwen3_file(config_folder: Path, file: str, dtype: Any):
    """Qwen3 from its config and a single file: ComfyUI's `qwen_3_4b.safetensors` (`model.` names, maybe
    an output head) or the bare model's names."""
    from safetensors.torch import load_file
    from transformers import Qwen3Config, Qwen3Model

    model = Qwen3Model(Qwen3Config.from_pretrained(str(config_folder)))
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    state = {key.removeprefix("model."): value for key, value in load_file(str(Path(file).expanduser())).items()}
    state = {key: value for key, value in state.items() if key in expected}
    wrong = [key for key, value in state.items() if tuple(value.shape) != expected[key]]
    missing = [key for key in expected if key not in state]
    if missing or wrong:
        detail = f"missing {missing[0]}" if missing else f"{wrong[0]} has another shape"
        raise ProblemError([error("model.qwen3", f"{file} does not hold the Qwen3 weights these configs describe "
                                  f"({detail}, …)", "set model.qwen3 to the Qwen3 text encoder file Z-Image uses "
                                  "(qwen_3_4b), matching model.config_dir")])
    model.load_state_dict(state)
    return model.to(dtype)


def load_single_file(path: str, *, qwen3: str | None, ae: str | None, config_dir: str | None, dtype: Any):
    """The parts of a single-file Z-Image: the transformer through diffusers' single-file loader (which
    unfuses ComfyUI's qkv), Qwen3 and the autoencoder from their files, the rest from `config_dir`."""
    problems = single_file_problems(path, qwen3, ae, config_dir)
    if problems:
        raise ProblemError(problems)
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImageTransformer2DModel
    from transformers import AutoTokenizer

    folder = Path(config_dir).expanduser()
    try:
        transformer = ZImageTransformer2DModel.from_single_file(path, config=str(folder), subfolder="transformer",
                                                                torch_dtype=dtype, local_files_only=True)
    except Exception as exc:
        raise ProblemError([error("model.path", f"could not load {path} as a Z-Image transformer with the configs "
                                  f"in {config_dir}: {hf.first_line(exc)}",
                                  "check that model.config_dir holds the configs of the same model")]) from None
    try:
        vae = AutoencoderKL.from_single_file(str(Path(ae).expanduser()), config=str(folder), subfolder="vae",
                                             torch_dtype=dtype, local_files_only=True)
    except Exception as exc:
        raise ProblemError([error("model.ae", f"could not load {ae} as Z-Image's autoencoder: {hf.first_line(exc)}",
                                  "set model.ae to FLUX.1's ae.safetensors, which Z-Image uses")]) from None
    qwen = load_qwen3_file(folder / "text_encoder", qwen3, dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    scheduler_config = FlowMatchEulerDiscreteScheduler.load_config(str(folder), subfolder="scheduler")
    return transformer, vae, [qwen], [tokenizer], dict(scheduler_config)


def is_zimage_source(kind: str, location: str, requested: str | None) -> bool:
    """Whether `model.path` is a Z-Image model, from its structure (hub ids: the name asked for)."""
    from engine.families.detect import safetensors_keys
    from engine.families.zimage.tiny import NAME as TINY_NAME

    if kind == "builtin":
        return location == TINY_NAME
    if kind == "folder":
        return is_zimage_folder(location)
    if kind == "single_file":
        keys = safetensors_keys(location) if location.lower().endswith((".safetensors", ".sft")) else None
        return keys is not None and is_zimage_keys(keys)
    snapshot = hf.cached_hub_snapshot(location)
    if snapshot is not None:
        return is_zimage_folder(snapshot)
    return requested == ref.NAME


def load_zimage_base(kind: str, location: str, path: str, *, family: str | None, config_dir: str | None, dtype: Any,
                     cache_dir: str | None, qwen3: str | None = None, ae: str | None = None) -> Any:
    """A frozen `BaseModel` from whichever source `model.path` names; library errors at the boundary
    with the user's files become problems naming the setting."""
    from engine.families.zimage.tiny import ensure_tiny_zimage_model

    if family not in (None, registry.AUTO, ref.NAME):
        raise ProblemError([error("model.family", f"model.family is {family} but {path} is Z-Image",
                                  f"set model.family: {ref.NAME} (or auto)")])
    if kind == "single_file":
        source = location
        parts = load_single_file(location, qwen3=qwen3, ae=ae, config_dir=config_dir, dtype=dtype)
    else:
        source = str(ensure_tiny_zimage_model(cache_dir)) if kind == "builtin" else location
        hub = kind == "hub"
        try:
            parts = load_parts(source, hub=hub, local_only=hub and hf.hub_offline(), dtype=dtype)
        except Exception as exc:
            if hub and hf.is_not_found(exc):
                offline = hf.hub_offline()
                raise ProblemError([hf.hub_download_problem(source, offline, "" if offline else hf.first_line(exc))]) from None
            raise ProblemError([error("model.path", f"could not load {source} as a Z-Image model: {hf.first_line(exc)}",
                                      "check that the Z-Image model is complete (a diffusers ZImagePipeline folder)")]) from None
    transformer, vae, encoders, tokenizers, scheduler_config = parts
    for module in (transformer, vae, *encoders):
        module.requires_grad_(False)
        module.eval()
    from diffusers import FlowMatchEulerDiscreteScheduler

    return BaseModel(
        unet=transformer, vae=vae, text_encoders=encoders, tokenizers=tokenizers,
        noise_scheduler=FlowMatchEulerDiscreteScheduler.from_config(scheduler_config),
        family=ref.NAME, spec=registry.get(ref.NAME), prediction_type="flow_matching",
        vae_scale_factor=2 ** (len(vae.config.block_out_channels) - 1),
        scaling_factor=float(vae.config.scaling_factor), source=source, kind=kind,
        scheduler_config=dict(scheduler_config),
    )
