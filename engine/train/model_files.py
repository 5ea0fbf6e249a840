"""Are the model's files there? Existence, readability and size of `model.path` and of every
`model.*` file setting (`disk="read_file"`: FLUX.1's clip_l, t5xxl and ae, and any companion file
a family adds).

Only the file system is asked (no torch, no weights, no header parsing), so `validate` and the
wizard's Review screen answer at once; loading finds what is wrong inside a file. A hub id or a
built-in model name is not a file and is left to the download checks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..config import SETTINGS, Setting
from ..families.load import SINGLE_FILE_SUFFIXES, describe_kind
from ..problems import Problem, error

_SMALLEST_SAFETENSORS = 8  # the header's length field alone


def model_file_problems(values: Mapping[str, Any]) -> list[Problem]:
    """One clear error per base-model or companion file that is missing, unreadable or empty."""
    problems = _model_path_problems(str(values.get("model.path") or "").strip())
    for setting in SETTINGS:
        if setting.section != "model" or setting.disk != "read_file" or not values.get(setting.key):
            continue
        if setting.applies is not None and setting.applies(values) is not None:
            continue  # not used with this model: the value's rules say so, its file does not matter
        problems += file_problems(setting.key, str(values[setting.key]), _what(setting))
    return problems


def _what(setting: Setting) -> str:
    return setting.label[0].lower() + setting.label[1:]


def _model_path_problems(text: str) -> list[Problem]:
    if not text:
        return []  # the quick pick decides; the rules report a custom model without a path
    kind = describe_kind(text)
    if kind in ("builtin", "hub"):
        return []
    path = Path(text).expanduser()
    if kind == "folder":
        if not os.access(path, os.R_OK | os.X_OK):
            return [error("model.path", f"{text} cannot be read (permission denied)", "check the folder's permissions")]
        return []
    return file_problems("model.path", text, "base model",
                         hint="give a diffusers folder, a .safetensors/.ckpt file, or a hub id such as "
                              "stable-diffusion-v1-5/stable-diffusion-v1-5")


def file_problems(key: str, text: str, what: str, *, hint: str = "") -> list[Problem]:
    """A file the engine will read: there, a file, readable and not empty."""
    path = Path(text).expanduser()
    try:
        stat = path.stat()
    except FileNotFoundError:
        broken = " (a link that leads nowhere)" if path.is_symlink() else ""
        return [error(key, f"the {what} {text} does not exist{broken}", hint or "check the path")]
    except OSError as exc:  # a link loop, a folder we may not enter
        return [error(key, f"the {what} {text} cannot be reached: {exc.strerror or exc}", hint or "check the path")]
    if path.is_dir():
        return [error(key, f"the {what} {text} is a folder, not a file", "give the file inside it")]
    if not os.access(path, os.R_OK):
        return [error(key, f"the {what} {text} cannot be read (permission denied)", "check the file's permissions")]
    smallest = _SMALLEST_SAFETENSORS if path.suffix.lower() in SINGLE_FILE_SUFFIXES else 1
    if stat.st_size < smallest:
        return [error(key, f"the {what} {text} is empty ({stat.st_size} bytes)",
                      "the download or copy did not finish: fetch the file again")]
    return []
