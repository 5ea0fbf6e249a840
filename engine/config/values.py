"""Turning raw values (YAML, wizard text, Kohya strings) into typed setting values.

`coerce` returns `(value, problem)`; a problem names the setting and the allowed values.
`lenient=True` also parses strings ("8", "true", "512,768"), as typed in the wizard or stored by
the Kohya GUI; YAML values must already have the right type.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from ..problems import Problem, error
from ..schema import Setting
from .prompt_options import PROMPT_KEYS, read_prompt_entry  # noqa: F401 - PROMPT_KEYS is read from here too

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_YAML11_WORDS = {"yes", "no", "on", "off"}


def did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        lowered = {o.lower(): o for o in options}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f"did you mean '{close[0]}'?" if close else ""


def _type_error(s: Setting, value: Any, expected: str) -> Problem:
    shown = repr(value) if not isinstance(value, str) else f"'{value}'"
    return error(s.key, f"{shown} is not {expected}", f"allowed: {s.bounds_text()}")


def _check_bounds(s: Setting, number: float) -> Problem | None:
    if isinstance(number, float) and not math.isfinite(number):
        return error(s.key, f"{number} is not a finite number", f"allowed: {s.bounds_text()}")
    low_bad = s.minimum is not None and (number <= s.minimum if s.min_exclusive else number < s.minimum)
    high_bad = s.maximum is not None and (number >= s.maximum if s.max_exclusive else number > s.maximum)
    if low_bad or high_bad:
        shown = str(number) if len(str(number)) <= 24 else "the number"
        return error(s.key, f"{shown} is out of range", f"allowed: {s.bounds_text()}")
    return None


def _as_int(s: Setting, value: Any, lenient: bool) -> tuple[int | None, Problem | None]:
    if isinstance(value, bool):
        return None, _type_error(s, value, "a whole number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and lenient:
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return None, _type_error(s, value, "a whole number")
        if not math.isfinite(number) or not number.is_integer():
            return None, _type_error(s, value, "a whole number")
        value = int(number)
    if not isinstance(value, int):
        return None, _type_error(s, value, "a whole number")
    return value, _check_bounds(s, value)


def _as_float(s: Setting, value: Any, lenient: bool) -> tuple[float | None, Problem | None]:
    if isinstance(value, bool):
        return None, _type_error(s, value, "a number")
    if isinstance(value, str) and lenient:
        try:
            value = float(value.strip())
        except ValueError:
            return None, _type_error(s, value, "a number")
    if isinstance(value, str):
        # YAML reads "1e-4" (no dot) as a string; accept that one common spelling.
        try:
            value = float(value)
        except ValueError:
            return None, _type_error(s, value, "a number")
    if not isinstance(value, (int, float)):
        return None, _type_error(s, value, "a number")
    try:
        value = float(value)
    except OverflowError:
        return None, error(s.key, "is far too large a number", f"allowed: {s.bounds_text()}")
    return value, _check_bounds(s, value)


def _as_bool(s: Setting, value: Any, lenient: bool) -> tuple[bool | None, Problem | None]:
    if isinstance(value, bool):
        return value, None
    if lenient and isinstance(value, (str, int)) and str(value).strip().lower() in _TRUE | _FALSE:
        return str(value).strip().lower() in _TRUE, None
    if isinstance(value, str) and value.strip().lower() in _YAML11_WORDS:  # run files read yes/no as words
        return value.strip().lower() in _TRUE, None
    return None, _type_error(s, value, "true or false")


def _as_choice(s: Setting, value: Any, lenient: bool) -> tuple[Any, Problem | None]:
    if value in s.choices and not isinstance(value, bool):
        return value, None
    if isinstance(value, bool):  # `false` (or a JSON false) for a choice spelled like a boolean: "no", "off"
        words = [c for c in s.choices if str(c).lower() in (_TRUE if value else _FALSE)]
        if len(words) == 1:
            return words[0], None
    for choice in s.choices:  # numbers typed as text, or a different letter case
        if str(choice).lower() == str(value).strip().lower():
            return choice, None
    hint = did_you_mean(str(value), [str(c) for c in s.choices])
    allowed = "allowed: " + ", ".join(str(c) for c in s.choices)
    return None, error(s.key, f"'{value}' is not a known value", f"{hint} {allowed}".strip())


def _as_int_list(s: Setting, value: Any, lenient: bool, length: int | None) -> tuple[Any, Problem | None]:
    items = value
    if isinstance(value, str) and not value.strip() and length is None:
        return [], None
    if isinstance(value, str) and (lenient or length == 2):  # a pair as Kohya users write it: "512,768"
        items = [part for part in value.replace("x", ",").replace(" ", ",").split(",") if part]
    if isinstance(items, int) and not isinstance(items, bool) and length == 2:
        items = [items, items]
    if length == 2 and isinstance(value, str) and len(items) == 1:
        items = [items[0], items[0]]  # one number means a square: "512" → [512, 512] (a list must have two)
    if not isinstance(items, (list, tuple)):
        return None, _type_error(s, value, s.bounds_text())
    numbers = []
    for item in items:
        number, problem = _as_int(s, item, True)
        if problem:
            return None, problem
        numbers.append(number)
    if length is not None and len(numbers) != length:
        return None, error(s.key, f"needs exactly {length} numbers, got {len(numbers)}", "write it as [W, H]")
    return numbers, None


def _as_str_list(s: Setting, value: Any, lenient: bool) -> tuple[Any, Problem | None]:
    if isinstance(value, dict):  # {weight_decay: 0.01} is a natural way to write optimizer args
        value = [f"{k}={_plain(v)}" for k, v in value.items()]
    if isinstance(value, str):
        value = [part for part in value.split() if part] if lenient else [value]
    if not isinstance(value, (list, tuple)):
        return None, _type_error(s, value, "a list of key=value texts")
    out = []
    for item in value:
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            return None, _type_error(s, item, "a key=value text")
        out.append(str(item))
    return out, None


def _plain(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def _as_prompts(s: Setting, value: Any) -> tuple[Any, Problem | None]:
    if isinstance(value, str):
        value = [line for line in value.splitlines() if line.strip()]
    if not isinstance(value, list):
        return None, _type_error(s, value, "a list of prompts")
    prompts = []
    for index, item in enumerate(value):
        entry, problems = read_prompt_entry(item, f"{s.key}[{index}]")  # the wizard's and the sampler's verdict
        if problems:
            field, message, hint = problems[0]
            return None, error(field, message, hint)
        prompts.append(item if isinstance(item, str) else entry)
    return prompts, None


def coerce(s: Setting, value: Any, *, lenient: bool = False) -> tuple[Any, Problem | None]:
    """Return the typed value for setting `s`, or a problem explaining why it is not valid."""
    if s.parse is not None:
        return s.parse(s, value, lenient)
    if value is None or (isinstance(value, str) and value.strip() == "" and s.kind not in ("str", "list", "int_list", "prompts")):
        if s.optional or (s.kind == "path" and not s.required):
            return None, None
        if s.kind == "path" and s.required:
            return None, error(s.key, "needs a value", "give the folder's path")
        return None, error(s.key, "needs a value", f"allowed: {s.bounds_text()}")
    if s.kind == "bool":
        return _as_bool(s, value, lenient)
    if s.kind == "int":
        return _as_int(s, value, lenient)
    if s.kind == "float":
        return _as_float(s, value, lenient)
    if s.kind == "choice":
        return _as_choice(s, value, lenient)
    if s.kind == "pair":
        return _as_int_list(s, value, lenient, 2)
    if s.kind == "int_list":
        return _as_int_list(s, value, lenient, None)
    if s.kind == "list":
        return _as_str_list(s, value, lenient)
    if s.kind == "prompts":
        return _as_prompts(s, value)
    # str and path
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None, _type_error(s, value, "a text")
    return str(value), None
