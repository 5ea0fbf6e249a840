"""Training metadata in sd-scripts' form: `ss_*` keys and the SAI `modelspec.*` keys.

Tools that read LoRA metadata (A1111's and ComfyUI's metadata viewers, the additional-networks
extension, Civitai) expect what sd-scripts writes, so we copy its string forms exactly: every value
is `str()` of the Python value (booleans `True`/`False`, missing values `None`), except the few it
stores as JSON (`ss_network_args`, `ss_tag_frequency`). `ss_resolution` is `str()` of the
`(width, height)` tuple, e.g. `(512, 512)`; `modelspec.resolution` is `512x512`.

Inputs are plain values (see `RunFacts`) so this module does not depend on the run configuration.
The `sshs_*` hashes depend on the saved tensors and are added by `io.save_lora_file`.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any, Mapping, TypedDict


MODELSPEC_VERSION = "1.0.1"
class RunFacts(TypedDict, total=False):
    """What a run knows when it saves. Required keys are marked; the rest default to None."""

    family: Any  # required: the ModelFamily whose file this is (`engine.families.for_file(naming, v)`)
    v_parameterization: bool
    network_module: str  # required: "networks.lora", "networks.dylora" or "lycoris.kohya"
    network_dim: int  # required
    network_alpha: float  # required
    network_args: Mapping[str, Any]  # e.g. {"conv_dim": 4, "algo": "loha"}; written only if not empty
    network_dropout: float | None  # None when off, as Kohya records an unset option
    resolution: tuple[int, int]  # required: (width, height)
    num_epochs: int
    epoch: int
    steps: int
    max_train_steps: int
    learning_rate: float  # required
    unet_lr: float | None
    text_encoder_lr: float | None
    optimizer: str  # required, e.g. "bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.01)"
    lr_scheduler: str  # required
    lr_warmup_steps: int
    seed: int | None
    mixed_precision: str  # "no" | "fp16" | "bf16"
    training_comment: str | None
    output_name: str  # required
    tag_frequency: Mapping[str, Mapping[str, int]]  # {folder: {tag: count}}
    num_train_images: int
    num_reg_images: int
    training_started_at: float  # required: time.time() at the start
    training_finished_at: float  # time.time() of this save; now when missing
    clip_skip: int | None  # also gives modelspec.encoder_layer when set
    # modelspec extras
    title: str  # defaults to output_name, as sd-scripts does
    author: str
    description: str
    license: str
    tags: str  # comma-separated


_REQUIRED = ("family", "network_module", "network_dim", "network_alpha", "resolution", "learning_rate",
             "optimizer", "lr_scheduler", "output_name", "training_started_at")
# ss_* keys written as str() of the fact with the same name.
_PLAIN_SS_KEYS = (
    "network_module", "network_dim", "network_alpha", "network_dropout", "num_epochs", "epoch", "steps",
    "max_train_steps", "learning_rate", "unet_lr", "text_encoder_lr", "optimizer", "lr_scheduler",
    "lr_warmup_steps", "seed", "mixed_precision", "training_comment", "output_name",
    "num_train_images", "num_reg_images", "training_started_at", "training_finished_at",
)
_MODELSPEC_OPTIONAL = ("author", "description", "license", "tags")


def base_model_version(family: Any, v_parameterization: bool) -> str:
    """`ss_base_model_version`: sd_v1, sd_v2, sd_v2_v, sdxl_base_v1-0 (sd-scripts' spelling)."""
    return family.version_for(v_parameterization)


def architecture(family: Any) -> str:
    """`modelspec.architecture` of a LoRA for this family."""
    return family.modelspec_architecture()


def network_args_json(args: Mapping[str, Any]) -> str:
    """sd-scripts splits `key=value` strings, so every value is recorded as a string."""
    return json.dumps({str(k): str(v) for k, v in args.items()})


def _modelspec(facts: Mapping[str, Any], finished_at: float) -> dict[str, str]:
    family = facts["family"]
    v_param = bool(facts.get("v_parameterization", False))
    width, height = facts["resolution"]
    spec = {
        "modelspec.sai_model_spec": MODELSPEC_VERSION,
        "modelspec.architecture": architecture(family),
        "modelspec.implementation": family.implementation,
        "modelspec.title": str(facts.get("title") or facts["output_name"]),
        "modelspec.resolution": f"{int(width)}x{int(height)}",
        "modelspec.prediction_type": "v" if v_param else "epsilon",
        # Local time without microseconds, as sd-scripts writes it.
        "modelspec.date": datetime.datetime.fromtimestamp(int(finished_at)).isoformat(),
    }
    if not family.writes_prediction_type:
        del spec["modelspec.prediction_type"]
    for key in _MODELSPEC_OPTIONAL:
        if facts.get(key):
            spec[f"modelspec.{key}"] = str(facts[key])
    if facts.get("clip_skip") is not None:
        spec["modelspec.encoder_layer"] = str(facts["clip_skip"])
    return spec


def build_metadata(facts: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """All `ss_*` and `modelspec.*` metadata for one save.

    `extra` holds further sd-scripts options by Kohya key (`scale_weight_norms`, or already
    prefixed `ss_scale_weight_norms`); each becomes `ss_<key>` = str(value). An extra key that
    repeats one of the keys above is a caller bug and raises ValueError.
    """
    missing = [key for key in _REQUIRED if key not in facts]
    if missing:
        raise ValueError(f"build_metadata needs {', '.join(missing)}")
    family = facts["family"]
    if not hasattr(family, "version_for"):
        raise ValueError(f"build_metadata needs the family object, not {family!r} (engine.families.for_file)")
    v_param = bool(facts.get("v_parameterization", False))
    finished_at = facts.get("training_finished_at")
    if finished_at is None:
        finished_at = time.time()
    values: dict[str, Any] = {key: facts.get(key) for key in _PLAIN_SS_KEYS}
    values["training_finished_at"] = finished_at
    width, height = facts["resolution"]

    metadata = {f"ss_{key}": str(value) for key, value in values.items()}
    metadata["ss_v2"] = str(family.legacy_flags()["v2"])
    metadata["ss_base_model_version"] = base_model_version(family, v_param)
    metadata["ss_resolution"] = str((int(width), int(height)))
    metadata["ss_tag_frequency"] = json.dumps(dict(facts.get("tag_frequency") or {}))
    if facts.get("network_args"):
        metadata["ss_network_args"] = network_args_json(facts["network_args"])
    if "clip_skip" in facts:
        metadata["ss_clip_skip"] = str(facts["clip_skip"])

    for key, value in (extra or {}).items():
        full_key = key if key.startswith("ss_") else f"ss_{key}"
        if full_key in metadata:
            raise ValueError(f"extra metadata key {full_key} is already written from the run facts")
        metadata[full_key] = str(value)

    metadata.update(_modelspec(facts, finished_at))
    return metadata
