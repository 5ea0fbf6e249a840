"""`dataset.subsets`: per-concept-folder overrides of the run-wide dataset values.

sd-scripts' `--dataset_config` gives each image folder (a "subset") its own repeats, class tokens,
caption extension, caption and augmentation options and a regularisation flag. Here each entry
names one concept folder of `folders.images` or `folders.regularization` and overrides only the
keys it gives; everything it leaves out keeps the run-wide value, and a folder no entry names
trains as its name says. An empty list (the default) is today's behaviour.

This module declares the setting, types its entries (errors name `dataset.subsets[i].key`) and
holds the rules that look at them together with other settings. It looks only at values; the
scan reports a folder that does not exist.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from ..problems import Problem, error, warning
from ..dataset.subsets import SETTING_KEY, dotted, entry_folder, is_bare_name
from ..schema import Setting
from .values import coerce, did_you_mean


# key → (kind, label, bounds) of one entry's values; run-wide counterparts in RUN_WIDE.
ENTRY_KEYS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "image_dir": ("str", "concept folder", {}),
    "num_repeats": ("int", "repeats", {"minimum": 1}),
    "is_reg": ("bool", "regularisation", {}),
    "caption_extension": ("str", "caption extension", {}),
    "class_tokens": ("str", "class tokens", {}),
    "keep_tokens": ("int", "keep tokens", {"minimum": 0}),
    "shuffle_caption": ("bool", "shuffle captions", {}),
    "flip_aug": ("bool", "flip", {}),
    "color_aug": ("bool", "colour jitter", {}),
    "random_crop": ("bool", "random crop", {}),
    "caption_dropout_rate": ("float", "caption dropout", {"minimum": 0, "maximum": 1}),
}
# The run-wide setting an entry's key overrides (None: decided by the folder itself).
RUN_WIDE: dict[str, str | None] = {
    "image_dir": None, "num_repeats": None, "is_reg": None, "class_tokens": None,
    "caption_extension": "training.caption_extension", "keep_tokens": "captions.keep_tokens",
    "shuffle_caption": "captions.shuffle", "flip_aug": "augment.flip", "color_aug": None,
    "random_crop": "augment.random_crop", "caption_dropout_rate": "captions.dropout_rate",
}
EXAMPLE = "e.g. - {image_dir: 10_mychar, keep_tokens: 1}"


def _entry_setting(index: int, key: str) -> Setting:
    kind, label, bounds = ENTRY_KEYS[key]
    return Setting(f"{SETTING_KEY}[{index}].{key}", kind, None, label, "", "", "folders", **bounds)


def parse_subsets(setting: Setting, value: Any, lenient: bool) -> tuple[Any, Problem | None]:
    """The typed list: each entry keeps only the keys it gives (an empty or null value is left out,
    so the run-wide value applies). The first problem names the entry and key."""
    if value in (None, ""):
        return [], None
    if not isinstance(value, (list, tuple)):
        return None, error(SETTING_KEY, "must be a list of per-folder entries", EXAMPLE)
    entries: list[dict[str, Any]] = []
    for index, raw in enumerate(value):
        where = f"{SETTING_KEY}[{index}]"
        if not isinstance(raw, Mapping):
            return None, error(where, "each entry is a mapping of a concept folder's values", EXAMPLE)
        entry: dict[str, Any] = {}
        for key, item in raw.items():
            if str(key) not in ENTRY_KEYS:
                hint = did_you_mean(str(key), list(ENTRY_KEYS)) or "keys: " + ", ".join(ENTRY_KEYS)
                return None, error(f"{where}.{key}", f"unknown key '{key}'", hint)
            if item is None or (isinstance(item, str) and not item.strip() and key != "class_tokens"):
                continue
            typed, problem = coerce(_entry_setting(index, str(key)), item, lenient=lenient or isinstance(item, str))
            if problem:
                return None, problem
            entry[str(key)] = typed
        if not str(entry.get("image_dir", "")).strip():
            return None, error(f"{where}.image_dir", "each entry needs the concept folder it applies to",
                               "give the folder's name (e.g. 10_mychar) or its path")
        if "caption_extension" in entry:
            entry["caption_extension"] = dotted(entry["caption_extension"])
        entries.append(entry)
    return entries, None


def root_of(folder: str, values: Mapping[str, Any]) -> str | None:
    """Which root setting holds `folder` as one of its concept folders, or None."""
    for key in ("folders.images", "folders.regularization"):
        root = values.get(key)
        if root and os.path.normpath(os.path.abspath(os.path.expanduser(str(root)))) == os.path.dirname(folder):
            return key
    return None


def subset_rules(v: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(v.get(SETTING_KEY) or []):
        where = f"{SETTING_KEY}[{index}]"
        folder = entry_folder(entry)
        if not is_bare_name(folder) and root_of(folder, v) is None:
            roots = " or ".join(str(v[k]) for k in ("folders.images", "folders.regularization") if v.get(k))
            out.append(error(f"{where}.image_dir", f"{entry['image_dir']} is not a concept folder of the run's "
                             f"image folders ({roots or 'none set'})",
                             "give a folder directly inside folders.images or folders.regularization"))
        elif folder in seen:
            out.append(error(f"{where}.image_dir", f"names the same folder as {SETTING_KEY}[{seen[folder]}]",
                             "merge the two entries"))
        seen.setdefault(folder, index)
        if v.get("training.cache_latents"):
            for key in ("random_crop", "color_aug"):
                if entry.get(key):
                    out.append(error(f"{where}.{key}", f"{ENTRY_KEYS[key][1]} changes the image every step, "
                                     "so it cannot be used with cached latents",
                                     f"turn training.cache_latents off, or {key} off"))
        if v.get("training.cache_text_encoder_outputs") and (entry.get("shuffle_caption") or entry.get("caption_dropout_rate")):
            key = "shuffle_caption" if entry.get("shuffle_caption") else "caption_dropout_rate"
            out.append(error(f"{where}.{key}", "changes the caption every step, so the cached text encoder "
                             "outputs would not match", "turn it off, or turn training.cache_text_encoder_outputs off"))
        shuffled = entry.get("shuffle_caption", v.get("captions.shuffle"))
        if entry.get("keep_tokens") and not shuffled:
            out.append(warning(f"{where}.keep_tokens", "only matters when captions are shuffled",
                               "set shuffle_caption: true for this folder, or turn captions.shuffle on"))
    return out


def describe_entry(entry: Mapping[str, Any]) -> str:
    """The overrides of one entry in a few words (`validate`, the wizard's list)."""
    parts = []
    for key, value in entry.items():
        if key == "image_dir":
            continue
        shown = str(value).lower() if isinstance(value, bool) else f"'{value}'" if key == "class_tokens" else value
        parts.append(f"{key} {shown}")
    return ", ".join(parts) or "no overrides"


def folder_name(entry: Mapping[str, Any]) -> str:
    return PurePath(str(entry.get("image_dir", ""))).name


SUBSET_SETTINGS = [
    Setting(
        SETTING_KEY, "subsets", [], "Per-folder overrides",
        "Folders with their own repeats, captions or augmentation; Enter on a folder edits its values.",
        "Each entry names one concept folder (its name, or its path) of the image or regularisation "
        "folder and the values it trains with instead of the run-wide ones: num_repeats, is_reg (train "
        "it as regularisation images), caption_extension, class_tokens (the caption of images without a "
        "caption file), keep_tokens, shuffle_caption, flip_aug, color_aug (small random hue or gamma "
        "changes), random_crop and caption_dropout_rate. Keys an entry leaves out keep the run-wide "
        "value. This is what sd-scripts' dataset config calls subsets, so a dataset config imports "
        "with each folder's own values. A folder named here need not start with its repeat count.",
        "folders", kohya=None, ss_extra=False, parse=parse_subsets,
    ),
]
