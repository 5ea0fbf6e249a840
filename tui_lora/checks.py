"""Checks of what the values point at on disk: folders, files, the base model, the output name.

The schema checks values; these look at the disk, so the wizard can say "does not exist" while
the path is typed. Each returns `Problem`s naming the setting, plus a short neutral note
("will be created") where there is nothing wrong. No torch, no textual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import SETTINGS
from engine import families
from engine.problems import Problem, error


def path_check(key: str, text: str) -> tuple[list[Problem], str]:
    """(problems, note) for a path field's text, following what the engine does with the path
    (`Setting.disk`); whether an empty value is allowed is the schema's business, except for a
    folder the engine writes into, which an empty value leaves nowhere to write."""
    text = (text or "").strip()
    setting = SETTINGS.get(key)
    disk = setting.disk if setting is not None else ""
    if not text:
        if disk == "write_folder" and not setting.optional:
            return [error(key, "needs a value", f"give a folder, e.g. {setting.default or './output'} (it is created if missing)")], ""
        return [], ""
    path = Path(text).expanduser()
    if disk == "read_folder":
        if not path.exists():
            return [error(key, f"{text} does not exist", "check the spelling; → accepts a completion")], ""
        if not path.is_dir():
            return [error(key, f"{text} is a file, not a folder", "give the folder that holds it")], ""
        return [], "folder found"
    if disk == "read_file":
        if not path.exists():
            return [error(key, f"{text} does not exist", "give an existing LoRA file")], ""
        if not path.is_file():
            return [error(key, f"{text} is a folder, not a file", "give the LoRA file inside it")], ""
        return [], "file found"
    if disk == "write_folder":
        if path.exists() and not path.is_dir():
            return [error(key, f"{text} is a file, not a folder", "give a folder (it is created if missing)")], ""
        return [], "folder exists" if path.exists() else "will be created"
    return [], ""


def output_file(values: Mapping[str, Any]) -> Path:
    """Where the finished LoRA will be written (typed values)."""
    return Path(str(values["folders.output"])).expanduser() / f"{values['folders.output_name']}.{values['model.save_as']}"


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
    from engine.families.load import describe_model_path

    description = describe_model_path(path, config_dir or None)
    words = _KIND_WORDS.get(description.kind, description.kind)
    if description.family:
        words += f", looks like {families.label(description.family)}"
    elif description.kind not in ("missing",):
        words += ", family not recognised"
    return ModelCheck(words, description.kind, description.family, list(description.problems))


def disk_problems(field_values: Mapping[str, Any]) -> list[Problem]:
    """`path_check` problems of every path setting in a draft's field values."""
    problems: list[Problem] = []
    for setting in SETTINGS:
        if setting.kind == "path":
            problems += path_check(setting.key, str(field_values.get(setting.key) or ""))[0]
    return problems
