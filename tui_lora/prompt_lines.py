"""Sample prompts as the wizard shows them: one per line, with Kohya-style options.

`a red circle --n blurry --d 42 --s 20 --l 7 --w 512 --h 512` becomes
`{prompt, negative, seed, steps, cfg, width, height}`; a line without options stays a plain
string, which is what the run file stores for it.
"""

from __future__ import annotations

import re
from typing import Any

from engine.problems import Problem, error

KEY = "sampling.prompts"
# option letter -> (run-file key, type)
OPTIONS: dict[str, tuple[str, type]] = {
    "n": ("negative", str),
    "d": ("seed", int),
    "s": ("steps", int),
    "l": ("cfg", float),
    "w": ("width", int),
    "h": ("height", int),
}
_OPTION = re.compile(r"(?:^|\s)--([a-z])(?=\s|$)")


def parse_prompt_line(line: str, index: int = 0) -> tuple[Any, Problem | None]:
    """One line → a string or a mapping; a problem names the line when an option is wrong."""
    where = f"{KEY}[{index}]"
    matches = list(_OPTION.finditer(line))
    if not matches:
        return line.strip(), None
    entry: dict[str, Any] = {"prompt": line[: matches[0].start()].strip()}
    for match, following in zip(matches, matches[1:] + [None]):
        letter = match.group(1)
        raw = line[match.end(): following.start() if following else len(line)].strip()
        if letter not in OPTIONS:
            return None, error(where, f"unknown option --{letter} in line {index + 1}",
                               "options: " + ", ".join(f"--{k} ({v[0]})" for k, v in OPTIONS.items()))
        name, kind = OPTIONS[letter]
        try:
            value = kind(raw) if kind is not str else raw
        except ValueError:
            return None, error(where, f"--{letter} needs a {'whole ' if kind is int else ''}number in line {index + 1}, got '{raw}'")
        entry[name] = value
    if not entry["prompt"]:
        return None, error(where, f"line {index + 1} has options but no prompt", "write the prompt before the options")
    return entry, None


def parse_prompt_text(text: str) -> tuple[list[Any], list[Problem]]:
    """Every non-blank line → a prompt entry."""
    entries: list[Any] = []
    problems: list[Problem] = []
    lines = [line for line in (text or "").splitlines() if line.strip()]
    for index, line in enumerate(lines):
        entry, problem = parse_prompt_line(line, index)
        if problem:
            problems.append(problem)
        else:
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
