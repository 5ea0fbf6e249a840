"""A saved or pasted sd-scripts command line → its script, launcher options and script options.

    accelerate launch --num_cpu_threads_per_process 2 flux_train_network.py \\
      --pretrained_model_name_or_path flux1-dev.safetensors --network_module networks.lora_flux …

Words are split as a POSIX shell does (shlex); line continuations (`\\` on Linux/macOS, `^` in a
Windows .bat, a backtick in PowerShell) join lines first. The script is found by its file name
anywhere in the line (`python sd-scripts/train_network.py`, `accelerate launch … "./x/sdxl_train_network.py"`).
Flags are read as argparse reads them: `--name value`, `--name=value`, `--name` alone (a switch),
`--name a b c` (a list, as network_args and optimizer_args take).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import PurePath, PureWindowsPath
from typing import Any

from ..problems import ProblemError, error
from .tables import NOT_LORA_SCRIPTS, SCRIPT_FAMILIES, UNKNOWN_FAMILY_SCRIPTS

# accelerate launch's options that have a run setting (the rest only steer accelerate itself).
LAUNCHER_KEYS = ("num_processes", "num_cpu_threads_per_process", "gpu_ids", "mixed_precision", "num_machines",
                 "main_process_port", "dynamo_backend")
_CONTINUATION = re.compile(r"(\\|\^|`)[ \t]*\r?\n")
_SEPARATORS = frozenset(("&&", "||", ";", "|", "&"))
_DRIVE = re.compile(r"(^|[\s\"'=])[A-Za-z]:\\")  # C:\… : a Windows command, whose backslashes are path separators


@dataclass
class CommandLine:
    script: str  # file stem: train_network, flux_train_network, …
    options: dict[str, Any] = field(default_factory=dict)
    launcher: dict[str, Any] = field(default_factory=dict)


def script_stem(word: str) -> str:
    path = PureWindowsPath(word) if "\\" in word else PurePath(word)
    return path.stem if path.suffix == ".py" else ""


def looks_like_command(text: str) -> bool:
    """Whether text names an sd-scripts training script (a command line, not JSON or TOML)."""
    return bool(re.search(r"[\w./\\-]*(train\w*|fine_tune)\.py\b", text))


def parse_command(text: str, source: str) -> CommandLine:
    """The command's script and flags; ProblemError when no LoRA script is named or the words cannot be split."""
    joined = _CONTINUATION.sub(" ", text)
    lines = [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith(("#", "REM ", "rem "))]
    try:
        words = _split(" ".join(lines), windows=source.lower().endswith((".bat", ".cmd", ".ps1")) or bool(_DRIVE.search(text)))
    except ValueError as exc:
        raise ProblemError([error(source, f"the command cannot be split into words ({exc})",
                                  "check its quotes: every ' and \" must be closed")]) from None
    position = next((i for i, word in enumerate(words) if script_stem(word)), None)
    stem = script_stem(words[position]) if position is not None else ""
    if stem in NOT_LORA_SCRIPTS:
        raise ProblemError([error(source, f"{words[position]} trains {NOT_LORA_SCRIPTS[stem]}, not a LoRA",
                                  "tui-lora trains LoRAs: use " + ", ".join(f"{s}.py" for s in SCRIPT_FAMILIES)
                                  + " with --network_module networks.lora")])
    if stem not in SCRIPT_FAMILIES and stem not in UNKNOWN_FAMILY_SCRIPTS:  # those are refused with their family
        named = f"'{words[position]}' is not an sd-scripts LoRA script" if position is not None else \
            "names no sd-scripts training script"
        raise ProblemError([error(source, named, "give the `accelerate launch … train_network.py --…` line "
                                  "(or " + ", ".join(f"{s}.py" for s in SCRIPT_FAMILIES if s != "train_network") + ")")])
    launcher = _flags(words[:position], source, launcher=True)
    options = _flags(words[position + 1:], source)
    return CommandLine(stem, options, {k: v for k, v in launcher.items() if k in LAUNCHER_KEYS})


def _split(text: str, *, windows: bool) -> list[str]:
    """Words as the shell splits them; in a Windows command a backslash is a path separator, not an escape."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "" if windows else "#"
    if windows:
        lexer.escape = ""
    return list(lexer)


def _flags(words: list[str], source: str, *, launcher: bool = False) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    name = ""
    for word in words:
        if word in _SEPARATORS:
            if launcher:  # `cd x && accelerate launch …`: only the part before the script counts
                flags, name = {}, ""
                continue
            break
        if word.startswith("--") and len(word) > 2:
            name, has_value, value = word[2:].partition("=")
            name = name.replace("-", "_")
            flags[name] = value if has_value else True
        elif name:
            current = flags[name]
            flags[name] = word if current is True else (current + [word] if isinstance(current, list) else [current, word])
        # words before the first flag (`accelerate launch`, `python`, env assignments) are not options
    return flags
