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


# The one definition of the names a run's saves get; every reader (collision checks, resume,
# cleaning after a kill) matches them with `save_stem_pattern`, so a digit count cannot drift.
EPOCH_DIGITS = 6  # sd-scripts' train_util.EPOCH_FILE_NAME: `<name>-000003`
STEP_DIGITS = 8  # sd-scripts' train_util.STEP_FILE_NAME: `<name>-step00000500`
_SAVE_TAIL = rf"(?:-\d{{{EPOCH_DIGITS},}}|-step\d{{{STEP_DIGITS},}})"


def epoch_save_stem(output_name: str, epoch: int) -> str:
    return f"{output_name}-{epoch:0{EPOCH_DIGITS}d}"


def step_save_stem(output_name: str, step: int) -> str:
    """sd-scripts' name for a step save (train_util.get_step_ckpt_name): `<name>-step00000500`."""
    return f"{output_name}-step{step:0{STEP_DIGITS}d}"


def sample_stem(output_name: str, epoch: int, step: int, index: int) -> str:
    return f"{output_name}_e{epoch:0{EPOCH_DIGITS}d}_s{step:06d}_{index:02d}"


def save_stem_pattern(output_name: str, *, final: bool = True, epoch: bool = True) -> str:
    """A regex (unanchored) for the stems of this name's saves: step saves always, epoch saves and
    the final file unless left out."""
    name = re.escape(output_name)
    if final and epoch:
        return name + _SAVE_TAIL + "?"
    if epoch:
        return name + _SAVE_TAIL
    step = rf"-step\d{{{STEP_DIGITS},}}"
    return name + (f"(?:{step})?" if final else step)


def sample_pattern(output_name: str) -> str:
    return re.escape(output_name) + r"_e\d+_s\d+_\d+"


def planned_step_saves(output_name: str, every: int | None, total_steps: int) -> list[str]:
    """The step saves a run will write (the last step writes the final file instead)."""
    return [step_save_stem(output_name, step) for step in range(every, total_steps, every)] if every else []
