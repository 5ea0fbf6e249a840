"""Which Stable Diffusion family a base model belongs to, told from its structure alone.

Widths are never used: real models and the tiny test models differ in every width, but keep the
structure of their family. The signals:
- a second text encoder (or the UNet's `text_time` size conditioning) means SDXL;
- the text encoder's activation separates SD 1.x (CLIP-L: `quick_gelu`) from SD 2.x (OpenCLIP,
  represented by transformers as a CLIPTextModel with plain `gelu`); the UNet's linear projections
  in its transformer blocks are the fallback signal when no text encoder config is at hand;
- the scheduler's `prediction_type` says whether the model predicts velocity (v) or noise.

This module imports no torch: the wizard uses it on a folder's json files.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Mapping

import engine.families.registry as families
from engine.problems import Problem, error

Family = str  # a `model.family` name from the registry

# Activations of the text encoders as transformers configures them.
_CLIP_L_ACTIVATIONS = {"quick_gelu"}
_OPEN_CLIP_ACTIVATIONS = {"gelu", "gelu_new", "gelu_pytorch_tanh"}


def family_from_configs(
    *,
    text_encoder_configs: list[Mapping[str, Any]],
    unet_config: Mapping[str, Any] | None = None,
    scheduler_config: Mapping[str, Any] | None = None,
) -> Family:
    """The family from component configs (plain dicts, or diffusers/transformers config objects).

    `text_encoder_configs` lists the pipeline's text encoders in order (one, or two for SDXL).
    """
    unet = unet_config or {}
    if len(text_encoder_configs) >= 2 or unet.get("addition_embed_type") == "text_time":
        return "sdxl"

    architecture = _sd_text_encoder_architecture(text_encoder_configs[0] if text_encoder_configs else None)
    if architecture is None:
        architecture = "open_clip" if unet.get("use_linear_projection") else "clip_l"
    if architecture == "clip_l":
        return "sd1"
    return "sd2-v" if prediction_type_of(scheduler_config) == "v_prediction" else "sd2"


def prediction_type_of(scheduler_config: Mapping[str, Any] | None) -> str:
    """`epsilon` or `v_prediction` (or `sample`) from a scheduler config; epsilon when unset."""
    if not scheduler_config:
        return "epsilon"
    return str(scheduler_config.get("prediction_type") or "epsilon")


def _sd_text_encoder_architecture(config: Mapping[str, Any] | None) -> str | None:
    if config is None:
        return None
    activation = config.get("hidden_act")
    if activation in _CLIP_L_ACTIVATIONS:
        return "clip_l"
    if activation in _OPEN_CLIP_ACTIVATIONS:
        return "open_clip"
    return None


def detect_family(unet: Any, text_encoders: list[Any], noise_scheduler: Any | None = None) -> Family:
    """The family of loaded components (anything with a `.config`)."""
    return family_from_configs(
        text_encoder_configs=[_as_mapping(encoder.config) for encoder in text_encoders],
        unet_config=_as_mapping(unet.config) if unet is not None else None,
        scheduler_config=_as_mapping(noise_scheduler.config) if noise_scheduler is not None else None,
    )


def _as_mapping(config: Any) -> Mapping[str, Any]:
    if isinstance(config, Mapping):
        return config
    if hasattr(config, "to_dict"):  # transformers PretrainedConfig
        return config.to_dict()
    return vars(config)


# ----------------------------------------------------------------------------- torch-free probes


def family_of_folder(folder: str | Path) -> Family | None:
    """The family a diffusers folder's json configs describe, or None when they cannot tell.

    Reads `model_index.json`, the text encoders', the UNet's and the scheduler's configs; loads no
    weights and imports no torch.
    """
    root = Path(folder)
    index = read_json(root / "model_index.json")
    if index is None:
        return None
    claimed = family_of_index(index)
    if claimed is not None:
        return claimed
    encoders = [name for name in ("text_encoder", "text_encoder_2") if component_present(index, name)]
    encoder_configs = [config for name in encoders if (config := read_json(root / name / "config.json"))]
    unet_config = read_json(root / "unet" / "config.json")
    scheduler_config = read_json(root / "scheduler" / "scheduler_config.json")
    if len(encoders) >= 2:
        return "sdxl"
    if not encoder_configs and unet_config is None:
        return None
    return family_from_configs(
        text_encoder_configs=encoder_configs, unet_config=unet_config, scheduler_config=scheduler_config
    )


def prediction_type_of_folder(folder: str | Path) -> str | None:
    """The scheduler's prediction type in a diffusers folder, or None when it has no scheduler config."""
    config = read_json(Path(folder) / "scheduler" / "scheduler_config.json")
    return prediction_type_of(config) if config is not None else None


def family_of_index(index: Mapping[str, Any]) -> str | None:
    """The family whose pipeline a `model_index.json` shows by itself (a family's `detects_folder`), if any."""
    return next((family.name for family in families.REGISTRY.values() if family.detects_folder(index)), None)


def component_present(index: Mapping[str, Any], name: str) -> bool:
    """Whether `model_index.json` lists component `name` (absent ones are `[null, null]`)."""
    value = index.get(name)
    return isinstance(value, list) and len(value) == 2 and value[0] is not None


def read_json(path: Path) -> dict[str, Any] | None:
    """A json object from a file, or None when it is missing or not a json object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# Keys that mark each family in original (LDM / A1111) single-file checkpoints.
_SDXL_MARKERS = ("conditioner.embedders.1.",)
_SD2_MARKERS = ("cond_stage_model.model.",)
_SD1_MARKERS = ("cond_stage_model.transformer.",)


def family_of_single_file_keys(keys: list[str] | set[str]) -> str | None:
    """The family from a checkpoint's tensor names (SD 2.x: v-prediction unknown); None if unknown.
    A family that knows its own files says so first (`detects_single_file`), then the SD markers."""
    for family in families.REGISTRY.values():
        if family.detects_single_file(keys):
            return family.name
    if any(key.startswith(_SDXL_MARKERS) for key in keys):
        return "sdxl"
    if any(key.startswith(_SD2_MARKERS) for key in keys):
        return "sd2"
    if any(key.startswith(_SD1_MARKERS) for key in keys):
        return "sd1"
    return None


def safetensors_keys(path: str | Path) -> list[str] | None:
    """Tensor names in a .safetensors file, read from its json header only (no torch, no weights).

    None when the file is not a readable safetensors file.
    """
    try:
        with open(path, "rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            if header_size <= 0 or header_size > 100_000_000:
                return None
            header = json.loads(handle.read(header_size))
    except (OSError, ValueError, struct.error):
        return None
    if not isinstance(header, dict):
        return None
    return [key for key in header if key != "__metadata__"]


def single_file_records_v_prediction(keys: list[str] | set[str]) -> bool:
    """Some v-prediction checkpoints carry an empty `v_pred` tensor as a marker (a ComfyUI convention)."""
    return "v_pred" in keys


# ----------------------------------------------------------------------------- family checks


def check_family(
    detected: Family,
    requested: str | None,
    *,
    prediction_type: str | None = None,
    source: str = "the model",
) -> list[Problem]:
    """A named `model.family` against the family the model shows.

    `prediction_type` is the model's own (its scheduler's), when known: where two families share a
    layout and differ only by objective (SD 2.x and SD 2.x v) it tells them apart. Elsewhere a
    model's own objective is trained as it is (an SD 1.x or SDXL model trained for v-prediction).
    """
    if requested in (None, families.AUTO):
        return []
    wanted, found = families.get(requested), families.get(detected)
    actual = found
    if families.split_by_prediction(found):
        actual = families.for_file(found.naming, (prediction_type or found.prediction_type) == "v_prediction")
    if wanted.naming == actual.naming and (wanted is actual or not families.split_by_prediction(wanted)):
        return []
    return [error("model.family", f"model.family is {requested} but {source} is {actual.label}",
                  f"set model.family: {actual.name} (or auto)")]
