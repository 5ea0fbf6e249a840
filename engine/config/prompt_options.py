"""Sample prompt lines with Kohya's inline options, e.g. `a cat --n blurry --d 42 --s 20 --l 7 --w 512 --h 512`.

One parser for the wizard's prompt box, the Kohya importer and the sampler (a plain-text prompt
in a run file may carry options too). It keeps what it can read and describes what it dropped;
each caller decides whether a dropped option is an error (the wizard) or a note (the importer).
"""

from __future__ import annotations

import re
from typing import Any

# option letter -> (run-file key, type); the letters sd-scripts reads, in any case
OPTIONS: dict[str, tuple[str, type]] = {
    "n": ("negative", str),
    "d": ("seed", int),
    "s": ("steps", int),
    "l": ("cfg", float),
    "w": ("width", int),
    "h": ("height", int),
}
OPTIONS_HINT = "options: " + ", ".join(f"--{letter} ({name})" for letter, (name, _) in OPTIONS.items())
_OPTION = re.compile(r"(?:^|\s)--([A-Za-z]+)(?=\s|$)")


def parse_prompt_line(line: str, number: int) -> tuple[str | dict[str, Any] | None, list[str]]:
    """(entry, dropped): the entry is the plain prompt text when no option was read, a mapping
    `{prompt, negative, seed, ...}` otherwise, and None when there is no prompt text at all.
    `dropped` says, naming line `number`, each option that could not be read."""
    matches = list(_OPTION.finditer(line))
    entry: dict[str, Any] = {"prompt": line[: matches[0].start() if matches else len(line)].strip()}
    dropped: list[str] = []
    for match, following in zip(matches, matches[1:] + [None]):
        letter = match.group(1)
        raw = line[match.end(): following.start() if following else len(line)].strip()
        name, kind = OPTIONS.get(letter.lower(), (None, None))
        if name is None:
            dropped.append(f"line {number}: unknown option --{letter}")
        elif kind is str:
            entry[name] = raw
        elif (value := _number(raw, whole=kind is int)) is None:
            dropped.append(f"line {number}: --{letter} needs a {'whole ' if kind is int else ''}number ≥ 0, got '{raw}'")
        else:
            entry[name] = value
    if not entry["prompt"]:
        dropped.append(f"line {number} has no prompt text before its options")
        return None, dropped
    return (entry["prompt"] if len(entry) == 1 else entry), dropped


def _number(text: str, *, whole: bool) -> int | float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not value >= 0 or value == float("inf") or (whole and not value.is_integer()):
        return None  # negative, NaN, infinite, or a fraction where a count is needed
    return int(value) if whole else value
