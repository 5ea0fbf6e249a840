"""Names for output files that never replace one the user already has. No torch."""

from __future__ import annotations

import re
from pathlib import Path

_VERSIONED = re.compile(r"^(.*)_v(\d+)$")


def next_free_name(output_dir: str | Path, name: str, extension: str) -> str:
    """The first of `name_v2`, `name_v3`, … with no `<name>.<extension>` file in the folder.

    A name that is already versioned counts on from its number (`mylora_v2` → `mylora_v3`), so
    the versions stay one series instead of growing `_v2_v2`.
    """
    folder = Path(output_dir).expanduser()
    extension = extension.lstrip(".")
    match = _VERSIONED.match(name)
    stem, number = (match.group(1), int(match.group(2)) + 1) if match else (name, 2)
    while (folder / f"{stem}_v{number}.{extension}").exists():
        number += 1
    return f"{stem}_v{number}"


def step_save_stem(output_name: str, step: int) -> str:
    """sd-scripts' name for a step save (train_util.get_step_ckpt_name): `<name>-step00000500`."""
    return f"{output_name}-step{step:08d}"


def planned_step_saves(output_name: str, every: int | None, total_steps: int) -> list[str]:
    """The step saves a run will write (the last step writes the final file instead)."""
    return [step_save_stem(output_name, step) for step in range(every, total_steps, every)] if every else []
