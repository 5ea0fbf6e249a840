"""Sample prompt lines with Kohya's inline options, e.g. `a cat --n blurry --d 42 --s 20 --l 7 --w 512 --h 512`.

One parser for the wizard's prompt box, `validate` (through `read_prompt_entry`), the Kohya
importer and the sampler (a plain-text prompt in a run file may carry options too). It keeps what
it can read and describes what it dropped; the importer makes a dropped option a note, every
other caller an error, so `validate`, the wizard and the sampler give one verdict.
"""

from __future__ import annotations

import difflib
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


# the keys of a prompt written as a mapping in a run file (the options' names, and the text)
PROMPT_KEYS = ("prompt", *(name for name, _ in OPTIONS.values()))


def read_prompt_entry(item: Any, where: str) -> tuple[str | dict[str, Any] | None, list[tuple[str, str, str]]]:
    """A run file's prompt entry (a text line with options, or a mapping) checked as every reader
    checks it: (entry, problems), each problem (field, message, hint). The entry is what the
    sampler uses; any problem means the line cannot be sampled as written."""
    if isinstance(item, str):
        entry, dropped = parse_prompt_line(item, 1)
        return entry, [(where, message.replace("line 1: ", "").replace("line 1 ", ""),
                        OPTIONS_HINT if "unknown option" in message else "") for message in dropped]
    if not isinstance(item, dict):
        return None, [(where, "each prompt is a text or a mapping with 'prompt'", "")]
    unknown = [k for k in item if k not in PROMPT_KEYS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), PROMPT_KEYS, n=1)
        return None, [(where, f"unknown key '{unknown[0]}'",
                       f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(PROMPT_KEYS))]
    if not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
        return None, [(where, "needs a 'prompt' text", "")]
    for letter, (name, kind) in OPTIONS.items():
        if name not in item or kind is str:
            continue
        value = item[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                kind is int and not isinstance(value, int)) or _number(str(value), whole=kind is int) is None:
            return None, [(f"{where}.{name}", f"{value!r} is not a {'whole ' if kind is int else ''}number ≥ 0", "")]
    if "negative" in item and not isinstance(item["negative"], str):
        return None, [(f"{where}.negative", "must be a text", "")]
    return dict(item), []
