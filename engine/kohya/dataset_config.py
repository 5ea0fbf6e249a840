"""sd-scripts `--dataset_config` TOML → Kohya GUI keys, concept folders and per-subset values.

The file (library/config_util.py in sd-scripts) holds `[general]` options, `[[datasets]]` with
their own options, and `[[datasets.subsets]]`, each an image folder with its repeats and caption
options; a subset's value falls back to its dataset's, then to `[general]`, then to sd-scripts'
default. tui-lora's dataset is a folder of `<repeats>_<tokens>` concept folders, so a subset is a
concept folder: folders.images is their parent when each folder's name carries its repeats.

Values every subset shares become the run's settings (captions.keep_tokens, …). Values that
differ between subsets are per-folder settings: `subset_entries` lists them in the shape of the
`dataset.subsets` setting; until the schema has that setting, each difference is a warning
naming the subset and the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from ..config.runconfig import SETTINGS
from ..dataset.scan import parse_concept_name
from ..problems import Problem, ProblemError, error, warning

SUBSETS_SETTING = "dataset.subsets"
# Per-subset options `dataset.subsets` keeps, with sd-scripts' defaults (DreamBoothSubsetParams).
SUBSET_DEFAULTS: dict[str, Any] = {
    "image_dir": None, "num_repeats": 1, "is_reg": False, "caption_extension": ".caption", "class_tokens": None,
    "keep_tokens": 0, "shuffle_caption": False, "flip_aug": False, "color_aug": False, "random_crop": False,
    "caption_dropout_rate": 0.0,
}
# Subset options that are one run-wide Kohya key when every subset agrees.
SHARED_KEYS = ("caption_extension", "keep_tokens", "shuffle_caption", "flip_aug", "color_aug", "random_crop",
               "caption_dropout_rate")
# Dataset options → Kohya GUI keys (sd-scripts' DreamBoothDatasetParams, with its defaults).
DATASET_KEYS: dict[str, tuple[str, Any]] = {
    "resolution": ("max_resolution", None), "batch_size": ("train_batch_size", 1),
    "enable_bucket": ("enable_bucket", False), "min_bucket_reso": ("min_bucket_reso", 256),
    "max_bucket_reso": ("max_bucket_reso", 1024), "bucket_reso_steps": ("bucket_reso_steps", 64),
    "bucket_no_upscale": ("bucket_no_upscale", False), "prior_loss_weight": ("prior_loss_weight", 1.0),
}
# Subset options with no tui-lora counterpart, with sd-scripts' defaults (noted when set).
UNUSED_SUBSET_KEYS: dict[str, Any] = {
    "caption_separator": ",", "keep_tokens_separator": "", "secondary_separator": None, "enable_wildcard": False,
    "face_crop_aug_range": None, "caption_prefix": None, "caption_suffix": None, "caption_dropout_every_n_epochs": 0,
    "caption_tag_dropout_rate": 0.0, "token_warmup_min": 1, "token_warmup_step": 0, "custom_attributes": None,
    "cache_info": False, "alpha_mask": False, "validation_seed": None, "validation_split": 0.0,
    "resize_interpolation": None, "network_multiplier": 1.0, "debug_dataset": False,
}
_REFUSED_SUBSET_KEYS = {"metadata_file": "a fine-tuning dataset (captions in a metadata file)",
                        "conditioning_data_dir": "a ControlNet dataset"}


@dataclass
class DatasetImport:
    gui: dict[str, Any] = field(default_factory=dict)
    subsets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # run settings set directly (dataset.subsets)


def is_dataset_config(document: Mapping[str, Any]) -> bool:
    return isinstance(document.get("datasets"), list)


def read_dataset_config(document: Mapping[str, Any], source: str) -> DatasetImport:
    """The dataset TOML's values as Kohya GUI keys plus its subsets; ProblemError when it holds no
    usable subset or a kind of dataset tui-lora cannot train."""
    out = DatasetImport()
    general = document.get("general") or {}
    datasets = document.get("datasets") or []
    if not isinstance(general, Mapping) or not all(isinstance(d, Mapping) for d in datasets):
        raise ProblemError([error(source, "[general] and each [[datasets]] must be tables",
                                  "see sd-scripts' docs/config_README for the layout")])
    subsets: list[dict[str, Any]] = []
    for number, dataset in enumerate(datasets, 1):
        merged = {**general, **{k: v for k, v in dataset.items() if k != "subsets"}}
        _dataset_keys(merged, out, number)
        for subset in dataset.get("subsets") or []:
            if not isinstance(subset, Mapping):
                raise ProblemError([error(f"{source} datasets {number}", "each [[datasets.subsets]] must be a table", "")])
            subsets.append({**merged, **subset})
    if not subsets:
        raise ProblemError([error(source, "holds no [[datasets.subsets]] (no image folder)",
                                  "add a subset with image_dir and num_repeats")])
    for subset in subsets:
        for key, what in _REFUSED_SUBSET_KEYS.items():
            if subset.get(key):
                raise ProblemError([error(f"{source} {key}", f"this is {what}, which tui-lora does not train",
                                          "use image_dir subsets with caption files (DreamBooth style)")])
        _unused(subset, out)
    out.subsets = subset_entries(subsets)
    _folders(out)
    _shared(out)
    return out


def subset_entries(subsets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each subset's effective per-folder values, in the shape of the `dataset.subsets` setting."""
    return [{key: subset.get(key, default) for key, default in SUBSET_DEFAULTS.items()} for subset in subsets]


def _dataset_keys(merged: Mapping[str, Any], out: DatasetImport, number: int) -> None:
    for key, (gui_key, default) in DATASET_KEYS.items():
        value = merged.get(key, default)
        if key == "resolution" and value is not None:
            value = ",".join(str(v) for v in value) if isinstance(value, list) else f"{value},{value}"
        if value is None:
            continue
        if gui_key in out.gui and out.gui[gui_key] != value:
            out.notes.append(warning(key, f"dataset {number} sets {value!r}, dataset 1 {out.gui[gui_key]!r}; "
                                          "tui-lora trains one dataset, with dataset 1's value"))
            continue
        out.gui[gui_key] = value


def _unused(subset: Mapping[str, Any], out: DatasetImport) -> None:
    known = set(SUBSET_DEFAULTS) | set(DATASET_KEYS) | set(UNUSED_SUBSET_KEYS) | set(_REFUSED_SUBSET_KEYS)
    for key, value in subset.items():
        seen = {note.field for note in out.notes}
        if key in UNUSED_SUBSET_KEYS and value != UNUSED_SUBSET_KEYS[key] and key not in seen:
            out.notes.append(warning(key, f"{value!r} has no counterpart in tui-lora; not imported"))
        elif key not in known and key not in seen:
            out.notes.append(warning(key, f"is not an sd-scripts dataset option tui-lora knows; {value!r} was not imported"))


def _folders(out: DatasetImport) -> None:
    """Subsets → concept folders: folders.images / folders.regularization are their parents."""
    for is_reg, gui_key in ((False, "train_data_dir"), (True, "reg_data_dir")):
        group = [s for s in out.subsets if bool(s["is_reg"]) == is_reg and s["image_dir"]]
        parents = []
        for subset in group:
            path = PurePath(str(subset["image_dir"]))
            parents.append(str(path.parent))
            parsed = parse_concept_name(path.name)
            if parsed is None or parsed[0] != subset["num_repeats"]:
                _differs(out, subset, "num_repeats", f"the folder name '{path.name}' does not carry its "
                         f"{subset['num_repeats']} repeats", "rename it to "
                         f"'{subset['num_repeats']}_{subset['class_tokens'] or path.name}'")
            elif subset["class_tokens"] and subset["class_tokens"] != parsed[1]:
                _differs(out, subset, "class_tokens", f"'{subset['class_tokens']}' differs from the folder name's "
                         f"tokens '{parsed[1]}', which caption the images without a caption file",
                         f"rename the folder to '{parsed[0]}_{subset['class_tokens']}'")
        if parents:
            out.gui[gui_key] = parents[0]
            _unlisted(out, parents[0], {PurePath(str(s["image_dir"])).name for s in group})
            for parent in sorted(set(parents) - {parents[0]}):
                out.notes.append(warning("image_dir", f"'{parent}' is not under '{parents[0]}'; tui-lora reads one "
                                         f"{'regularisation' if is_reg else 'images'} folder of concept folders",
                                         "move the concept folders into one folder"))
    if out.gui.get("reg_data_dir") and out.gui.get("reg_data_dir") == out.gui.get("train_data_dir"):
        out.notes.append(warning("is_reg", "the regularisation subsets sit in the same folder as the training ones",
                                 "move the regularisation folders into their own folder"))


def _unlisted(out: DatasetImport, parent: str, listed: set[str]) -> None:
    """Concept folders beside the listed ones: tui-lora trains every one, sd-scripts only the listed."""
    try:
        extra = sorted(p.name for p in Path(parent).iterdir() if p.is_dir() and parse_concept_name(p.name)
                       and p.name not in listed)
    except OSError:
        return  # not on this machine: nothing to compare
    if extra:
        out.notes.append(warning("image_dir", f"'{parent}' also holds {', '.join(extra[:3])}"
                                 f"{' …' if len(extra) > 3 else ''}, which the dataset config leaves out; tui-lora "
                                 "trains every concept folder there", "move the folders sd-scripts did not train elsewhere"))


def _shared(out: DatasetImport) -> None:
    """Keys every subset agrees on become run settings; differing ones are per-subset values."""
    training = [s for s in out.subsets if not s["is_reg"]] or out.subsets
    for key in SHARED_KEYS:
        values = [s[key] for s in out.subsets]
        # the run-wide value is the training subsets' when they agree (regularisation folders often differ)
        out.gui[key] = training[0][key]
        if len({repr(v) for v in values}) > 1:
            for subset in out.subsets:
                if subset[key] != out.gui[key]:
                    _differs(out, subset, key, f"{subset[key]!r} differs from the run's {out.gui[key]!r}", "")
    if SUBSETS_SETTING in SETTINGS:  # the per-folder setting exists: it keeps every subset's values
        out.values[SUBSETS_SETTING] = out.subsets
        out.notes = [n for n in out.notes if not n.field.startswith("subset ")]


def _differs(out: DatasetImport, subset: Mapping[str, Any], key: str, why: str, hint: str) -> None:
    name = PurePath(str(subset["image_dir"])).name or str(subset["image_dir"])
    kept = "tui-lora does not keep per-folder values yet; the run uses one value for every folder"
    out.notes.append(warning(f"subset '{name}' {key}", f"{why}; {kept}", hint))
