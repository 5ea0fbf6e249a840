"""Checks of what the values point at on disk: folders, files, the base model, the output name.

The schema checks values; these look at the disk, so the wizard can say "does not exist" while
the path is typed. Each returns `Problem`s naming the setting, plus a short neutral note
("will be created") where there is nothing wrong. No torch, no textual.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.models import families
from engine.problems import Problem, error

# Paths the engine reads (so they must exist) versus folders it creates. The schema's kind says
# "path"; whether the engine reads or writes it is this module's knowledge.
_READ_FOLDERS = {"folders.images", "folders.regularization", "model.config_dir"}
_READ_FILES = {"network.weights"}
_WRITTEN_FOLDERS = {"folders.output", "folders.logging"}
# The schema lets any non-required path be empty; an empty output folder leaves nowhere to write.
_NEEDED = {"folders.output": "give a folder, e.g. ./output (it is created if missing)"}
_VERSIONED = re.compile(r"^(.*)_v(\d+)$")


def path_check(key: str, text: str) -> tuple[list[Problem], str]:
    """(problems, note) for a path field's text; empty text is the schema's business."""
    text = (text or "").strip()
    if not text:
        return ([error(key, "needs a value", _NEEDED[key])] if key in _NEEDED else []), ""
    path = Path(text).expanduser()
    if key in _READ_FOLDERS:
        if not path.exists():
            return [error(key, f"{text} does not exist", "check the spelling; → accepts a completion")], ""
        if not path.is_dir():
            return [error(key, f"{text} is a file, not a folder", "give the folder that holds it")], ""
        return [], "folder found"
    if key in _READ_FILES:
        if not path.exists():
            return [error(key, f"{text} does not exist", "give an existing LoRA file")], ""
        if not path.is_file():
            return [error(key, f"{text} is a folder, not a file", "give the LoRA file inside it")], ""
        return [], "file found"
    if key in _WRITTEN_FOLDERS:
        if path.exists() and not path.is_dir():
            return [error(key, f"{text} is a file, not a folder", "give a folder (it is created if missing)")], ""
        return [], "folder exists" if path.exists() else "will be created"
    return [], ""


def output_file(values: Mapping[str, Any]) -> Path:
    """Where the finished LoRA will be written (typed values)."""
    return Path(str(values["folders.output"])).expanduser() / f"{values['folders.output_name']}.{values['model.save_as']}"


def next_free_name(output_dir: str | Path, name: str, extension: str) -> str:
    """`name_v2`, `name_v3`, … (continuing an existing `_vN`): the first without a LoRA file."""
    folder = Path(output_dir).expanduser()
    match = _VERSIONED.match(name)
    stem, number = (match.group(1), int(match.group(2)) + 1) if match else (name, 2)
    while (folder / f"{stem}_v{number}.{extension}").exists():
        number += 1
    return f"{stem}_v{number}"


@dataclass
class ModelCheck:
    """What `model.path` points at, in words for the Model screen."""

    summary: str
    kind: str = ""  # builtin, folder, single_file, hub, missing
    family: str | None = None
    problems: list[Problem] = field(default_factory=list)


_KIND_WORDS = {
    "builtin": "built-in tiny model",
    "folder": "diffusers folder",
    "single_file": "single checkpoint file",
    "hub": "Hugging Face hub id",
    "missing": "not found",
}


def describe_model(path: str, config_dir: str | None = None) -> ModelCheck:
    """Classify the model path and tell its family (slow-ish: reads a file header; call in a thread)."""
    try:
        from engine.models.loading import describe_model_path
    except ImportError as exc:  # the loader is another module's work; say so instead of failing
        return ModelCheck(f"cannot check the model here ({exc})")
    description = describe_model_path(path, config_dir or None)
    words = _KIND_WORDS.get(description.kind, description.kind)
    if description.family:
        words += f", looks like {families.label(description.family)}"
    elif description.kind not in ("missing",):
        words += ", family not recognised"
    return ModelCheck(words, description.kind, description.family, list(description.problems))


def family_flags(family: str) -> dict[str, bool]:
    """`model.family` and the old model.* flags that agree with a detected family."""
    return {"model.family": family, **{f"model.{flag}": value for flag, value in families.get(family).legacy_flags().items()}}


def disk_problems(field_values: Mapping[str, Any]) -> list[Problem]:
    """`path_check` problems of every path setting in a draft's field values."""
    from engine.config import SETTINGS

    problems: list[Problem] = []
    for setting in SETTINGS:
        if setting.kind == "path":
            problems += path_check(setting.key, str(field_values.get(setting.key) or ""))[0]
    return problems
