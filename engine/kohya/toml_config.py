"""Reading sd-scripts TOML files: a `--config_file` (options, optionally grouped in tables) or a
`--dataset_config` (`[general]`, `[[datasets]]`)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import read_regular_file
from ..problems import ProblemError, error

MAX_TOML_BYTES = 5_000_000


def read_toml(path: str | Path, what: str = "sd-scripts TOML file") -> dict[str, Any]:
    """The parsed document; ProblemError naming the file (and line) when it cannot be read."""
    name = str(path)
    data = read_regular_file(path, MAX_TOML_BYTES, what=what, too_large="is larger than 5 MB",
                             hint="an sd-scripts config is a few kB; is this the right file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ProblemError([error(name, "is not UTF-8 text", "give the .toml file sd-scripts reads")]) from None
    return parse_toml(text, name)


def parse_toml(text: str, name: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProblemError([error(name, f"not valid TOML: {exc}", "check the line named; strings need quotes")]) from None


def flatten_config(document: Mapping[str, Any]) -> dict[str, Any]:
    """sd-scripts reads a config file's options from the top level and from one level of tables
    ([model_arguments], [training_arguments], …), whose names do not matter (train_util.read_config_from_file)."""
    options: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, Mapping):
            options.update({str(k): v for k, v in value.items()})
        else:
            options[str(key)] = value
    return options
