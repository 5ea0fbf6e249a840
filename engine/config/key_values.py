"""Typing the `key=value` texts a run file gives as optimizer and scheduler-class arguments.

Torch-free, so the settings' rules check the texts' form with the rest of the run file; which keys
an optimizer or scheduler class accepts is checked in `engine.optim`, which builds on this.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

from engine.problems import ProblemError, error

FIELD = "optimizer.extra_args"
EXAMPLE = "e.g. weight_decay=0.01 or betas=0.9,0.99"
_INT = re.compile(r"[+-]?\d+")


def parse_extra_args(items: Sequence[str]) -> dict[str, Any]:
    """Type each 'key=value' text: int, float, bool, None, tuple ('0.9,0.99', '(…)', '[…]') or string."""
    parsed: dict[str, Any] = {}
    problems = []
    for item in items:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            problems.append(error(FIELD, f"'{item}' is not key=value", EXAMPLE))
            continue
        if key in parsed:
            problems.append(error(FIELD, f"'{key}' is given twice", "keep one of them"))
            continue
        try:
            parsed[key] = _typed_value(raw)
        except ValueError as why:
            problems.append(error(FIELD, f"'{item}': {why}", EXAMPLE))
    if problems:
        raise ProblemError(problems)
    return parsed


def _typed_value(raw: str) -> Any:
    text = raw.strip()
    if not text:
        raise ValueError("the value is empty")
    brackets = {"(": ")", "[": "]"}
    if text[0] in brackets:
        if text[-1] != brackets[text[0]]:
            raise ValueError(f"'{text}' opens a bracket it does not close")
        inner = text[1:-1].strip()
        if not inner:
            return ()
        parts = inner.split(",")
        if parts[-1].strip() == "":  # "(0.9,)" is a one-item tuple, as in Python
            parts = parts[:-1]
        return tuple(_typed_item(part, text) for part in parts)
    if "," in text:
        return tuple(_typed_item(part, text) for part in text.split(","))
    return _scalar(text)


def _typed_item(part: str, whole: str) -> Any:
    part = part.strip()
    if not part:
        raise ValueError(f"'{whole}' has an empty item")
    if part[0] in "([" or part[-1] in ")]":
        raise ValueError(f"'{whole}': nested lists are not supported")
    return _scalar(part)


def _scalar(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if _INT.fullmatch(text):
        if len(text) > 30 or not -2**63 <= int(text) < 2**63:
            raise ValueError(f"{text} is too large a number for an optimizer")
        return int(text)
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        # 'inf' written out is meaningful (D-Adaptation's and Prodigy's growth_rate default to it);
        # a number that only overflowed to inf (1e999), or nan, is a mistake.
        if math.isnan(number) or (math.isinf(number) and lowered.lstrip("+-") not in ("inf", "infinity")):
            raise ValueError(f"{text} is not a usable number (it overflows, or is nan)")
        return number
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
