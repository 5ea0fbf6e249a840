"""Per-folder values for the scan and the training loop (`dataset.subsets`).

`SubsetPlan` answers, for each concept folder the scan meets, what the folder trains with: its
repeats, caption tokens, caption extension, whether it is regularisation, and the `ImageOptions`
(caption shuffle, keep tokens, caption dropout, flip, colour jitter, random crop) every image of
it carries into the loop. Folders no entry names get the run-wide options and keep what their
names say. Torch-free, like the scan.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from engine.dataset.captions import process_caption

from ..problems import Problem, error


SETTING_KEY = "dataset.subsets"


def dotted(extension: str) -> str:
    text = extension.strip()
    return text if text.startswith(".") else f".{text}"


def entry_folder(entry: Mapping[str, Any]) -> str:
    """What an entry names: a concept folder's name alone (found in either image folder by the
    scan), or a path, made absolute and normalised."""
    text = os.path.expanduser(str(entry["image_dir"]).strip())
    if is_bare_name(text):
        return text
    return os.path.normpath(os.path.abspath(text))


def is_bare_name(text: str) -> bool:
    return os.sep not in text and "/" not in text


@dataclass(frozen=True)
class ImageOptions:
    """How one image's caption and pixels vary from draw to draw."""

    shuffle: bool = False
    keep_tokens: int = 0
    dropout_rate: float = 0.0
    flip: bool = False
    color_aug: bool = False
    random_crop: bool = False


# entry key → ImageOptions field
_OPTION_KEYS = {"shuffle_caption": "shuffle", "keep_tokens": "keep_tokens", "caption_dropout_rate": "dropout_rate",
                "flip_aug": "flip", "color_aug": "color_aug", "random_crop": "random_crop"}


@dataclass(frozen=True)
class FolderRule:
    """What one `dataset.subsets` entry decides for its folder (None: the folder name decides)."""

    index: int
    repeats: int | None
    tokens: str | None
    is_reg: bool | None
    caption_extension: str | None
    options: ImageOptions


class SubsetPlan:
    def __init__(self, run_options: ImageOptions = ImageOptions(), entries: list[Mapping[str, Any]] = ()):
        self.run_options = run_options
        self.rules: dict[str, FolderRule] = {}
        for index, entry in enumerate(entries):
            changes = {field: entry[key] for key, field in _OPTION_KEYS.items() if key in entry}
            rule = FolderRule(index, entry.get("num_repeats"), entry.get("class_tokens"), entry.get("is_reg"),
                              dotted(entry["caption_extension"]) if entry.get("caption_extension") else None,
                              replace(run_options, **changes))
            self.rules.setdefault(entry_folder(entry), rule)

    def __eq__(self, other: object) -> bool:  # two plans built from the same values are the same plan
        return isinstance(other, SubsetPlan) and (self.run_options, self.rules) == (other.run_options, other.rules)

    __hash__ = None  # mutable-looking and compared by value: not a dict key

    def _key(self, folder: Path) -> str | None:
        full = os.path.normpath(os.path.abspath(folder))
        return full if full in self.rules else folder.name if folder.name in self.rules else None

    def rule_for(self, folder: Path) -> FolderRule | None:
        key = self._key(folder)
        return self.rules[key] if key is not None else None

    def options_for(self, folder: Path) -> ImageOptions:
        key = self._key(folder)
        return self.rules[key].options if key is not None else self.run_options

    def unmatched(self, scanned: list[Path]) -> list[Problem]:
        """Entries that name none of the `scanned` concept folders: missing, or not a folder."""
        seen = {self._key(folder) for folder in scanned}
        problems = []
        for folder, rule in self.rules.items():
            if folder in seen:
                continue
            if is_bare_name(folder):
                why = "is not a concept folder of folders.images or folders.regularization"
            else:
                why = ("was not used (0 repeats, or it cannot be read)" if os.path.isdir(folder)
                       else "is not a folder" if os.path.exists(folder) else "does not exist")
            problems.append(error(f"{SETTING_KEY}[{rule.index}].image_dir", f"{folder} {why}",
                                  "check the folder's name, or remove the entry"))
        return problems


def caption_for(item: Any, rng: Any) -> str:
    """The caption one draw of an image trains with, under its folder's caption options."""
    options = item.options
    return process_caption(item.caption, shuffle=options.shuffle, keep_tokens=options.keep_tokens,
                           dropout_rate=options.dropout_rate, rng=rng)


def datasets_metadata(summary: Any, values: Mapping[str, Any]) -> str | None:
    """`ss_datasets` as sd-scripts writes it for a run with a dataset config: one dataset whose
    subsets are the concept folders with the values each trained with (folder names only, no
    paths). None when no folder has its own values, as sd-scripts writes it only then."""
    if not values.get(SETTING_KEY):
        return None
    subsets = []
    for concept in summary.concepts:
        options = next((i.options for i in summary.items if i.concept == concept.name
                        and i.is_reg == concept.is_regularization), None) or run_options(values)
        subsets.append({
            "img_count": concept.image_count, "num_repeats": concept.repeats, "color_aug": options.color_aug,
            "flip_aug": options.flip, "random_crop": options.random_crop, "shuffle_caption": options.shuffle,
            "keep_tokens": options.keep_tokens, "caption_dropout_rate": options.dropout_rate,
            "image_dir": concept.name, "class_tokens": concept.tokens or None, "is_reg": concept.is_regularization,
        })
    width, height = values["training.max_resolution"]
    dataset = {
        "is_dreambooth": True, "batch_size_per_device": values["training.batch_size"],
        "num_train_images": summary.num_train_images, "num_reg_images": summary.num_reg_images,
        "resolution": [width, height], "enable_bucket": values["buckets.enabled"],
        "min_bucket_reso": values["buckets.min_resolution"], "max_bucket_reso": values["buckets.max_resolution"],
        "tag_frequency": summary.tag_frequency, "subsets": subsets,
    }
    return json.dumps([dataset])


def run_options(values: Mapping[str, Any]) -> ImageOptions:
    """The run-wide options every folder without an override trains with."""
    return ImageOptions(shuffle=bool(values["captions.shuffle"]), keep_tokens=int(values["captions.keep_tokens"]),
                        dropout_rate=float(values["captions.dropout_rate"]), flip=bool(values["augment.flip"]),
                        random_crop=bool(values["augment.random_crop"]))


def subset_plan(values: Mapping[str, Any]) -> SubsetPlan:
    return SubsetPlan(run_options(values), list(values.get(SETTING_KEY) or []))
