"""Sample prompts as the wizard shows them: one per line, with Kohya-style options.

`a red circle --n blurry --d 42 --s 20 --l 7 --w 512 --h 512` becomes
`{prompt, negative, seed, steps, cfg, width, height}`; a line without options stays a plain
string, which is what the run file stores for it. The options are read by the engine's parser
(`engine.config.prompt_options`); here an option it cannot read is an error on the field.
"""

from __future__ import annotations

from typing import Any

from engine.config.prompt_options import OPTIONS, OPTIONS_HINT, parse_prompt_line
from engine.problems import Problem, error

KEY = "sampling.prompts"


def parse_prompt_text(text: str) -> tuple[list[Any], list[Problem]]:
    """Every non-blank line → a prompt entry; problems name the line as the text box counts it."""
    entries: list[Any] = []
    problems: list[Problem] = []
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        entry, dropped = parse_prompt_line(line, number)
        where = f"{KEY}[{len(entries)}]"
        problems += [error(where, message, OPTIONS_HINT if "unknown option" in message else "") for message in dropped]
        if entry is not None:
            entries.append(entry)
    return entries, problems


def format_prompts(entries: list[Any] | None) -> str:
    """Run-file prompt entries → the wizard's lines (the inverse of `parse_prompt_text`)."""
    lines = []
    names = {name: letter for letter, (name, _) in OPTIONS.items()}
    for entry in entries or []:
        if isinstance(entry, dict):
            parts = [str(entry.get("prompt", ""))]
            parts += [f"--{names[k]} {v}" for k, v in entry.items() if k in names]
            lines.append(" ".join(parts))
        else:
            lines.append(str(entry))
    return "\n".join(lines)
