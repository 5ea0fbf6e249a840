"""The wizard's working copy of a run: one flat dict of what each field holds.

Field values are what the widgets hold: booleans for switches, the chosen value for selects,
text for everything typed. The schema's `coerce` parses that text leniently and its cross-field
rules judge the whole, so the schema stays the only place that knows what a valid value is.
A model-dependent setting left empty follows the model pick (its placeholder shows the value
it will get).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.config import (
    SETTINGS,
    RunConfig,
    Setting,
    complete,
    parse_nested,
    validate_values,
)
from engine.config.runconfig import FAMILY_FLAGS
from engine.config.settings_model import QUICK_PICKS
from engine.problems import Problem

from .prompt_lines import format_prompts, parse_prompt_text

_KEY_IN_TEXT = re.compile(r"\b([a-z_]+\.[a-z_]+)\b")


def format_number(value: float) -> str:
    """Numbers as a person would type them: 0.0001, 5e-05 → '5e-05', 10.0 → '10'."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def field_text(setting: Setting, value: Any) -> Any:
    """A typed setting value → what its widget holds."""
    if setting.kind == "bool":
        return bool(value)
    if setting.kind == "choice":
        return value
    if value is None:
        return ""
    if setting.kind == "prompts":
        return format_prompts(value)
    if setting.kind == "subsets":  # edited in a table of its own, not as text: the list itself
        return [dict(entry) for entry in value]
    if setting.kind in ("pair", "int_list"):
        return ", ".join(str(v) for v in value)
    if setting.kind == "list":
        return " ".join(str(v) for v in value)
    if setting.kind in ("int", "float"):
        return format_number(value)
    return str(value)


def blank_values() -> dict[str, Any]:
    """Field values of a new run: every default, model-dependent ones left to follow the pick."""
    typed = complete({})
    return {s.key: "" if s.model_default is not None else field_text(s, typed[s.key]) for s in SETTINGS}


class Draft:
    """Field values plus where they came from; knows its problems and whether it changed."""

    def __init__(self, values: Mapping[str, Any] | None = None, *, path: Path | None = None,
                 notes: list[Problem] | None = None):
        self.values: dict[str, Any] = blank_values()
        self.values.update({k: v for k, v in (values or {}).items() if k in SETTINGS})
        self.path = path  # the run file this draft is saved to / was opened from
        self.suggested_path: Path | None = None  # offered when saving a draft that has no path
        self.notes: list[Problem] = list(notes or [])  # what loading it reported
        self._baseline = dict(self.values)
        self._cache_key: tuple | None = None
        self._cache: tuple[list[Problem], dict[str, Any]] = ([], {})

    # ---------------------------------------------------------------- building

    @classmethod
    def from_config(cls, config: RunConfig, *, path: Path | None = None,
                    notes: list[Problem] | None = None) -> Draft:
        values = {}
        for s in SETTINGS:
            value = config.values[s.key]
            follows_model = s.model_default is not None and value == s.model_default(config.values)
            values[s.key] = "" if follows_model else field_text(s, value)
        return cls(values, path=path, notes=notes)

    @classmethod
    def from_document(cls, document: Any, *, path: Path | None = None) -> Draft:
        """A loaded YAML document, even a broken one: valid values fill their fields, a wrong typed
        value stays in its field (so the error shows there), and the rest become notes."""
        typed, problems = parse_nested(document, source=str(path or "run file"))
        draft = cls.from_config(RunConfig(typed), path=path)
        notes = []
        for problem in problems:
            setting = SETTINGS.get(problem.field)
            raw = _raw_value(document, problem.field) if setting else None
            if setting and setting.kind not in ("bool", "choice") and raw is not None and not isinstance(raw, (dict, list)):
                draft.values[setting.key] = str(raw)
            else:
                notes.append(problem)
        draft.notes = notes
        draft._baseline = dict(draft.values)
        return draft

    # ---------------------------------------------------------------- state

    @property
    def dirty(self) -> bool:
        return self.values != self._baseline

    def mark_unsaved(self) -> None:
        """Content that exists nowhere on disk yet (an import): dirty until it is saved."""
        self._baseline = {}

    def mark_saved(self, path: Path) -> None:
        self.path = path
        self._baseline = dict(self.values)

    def set(self, key: str, value: Any) -> bool:
        """Change one field; True when it really changed."""
        if self.values.get(key) == value:
            return False
        self.values[key] = value
        return True

    def apply_quick_pick(self) -> list[str]:
        """Set the family flags the quick pick implies; returns the keys that changed."""
        implied = QUICK_PICKS.get(self.values["model.quick_pick"])
        if not implied:
            return []
        return [flag for flag in FAMILY_FLAGS if self.set(flag, implied[flag.split(".")[1]])]

    # ---------------------------------------------------------------- checking

    def check_input(self) -> dict[str, Any]:
        """The values as `validate_values` takes them: empty model-dependent fields are left out
        (so they follow the model) and prompt lines are parsed."""
        out: dict[str, Any] = {}
        picked = self.values["model.quick_pick"] in QUICK_PICKS
        for key, value in self.values.items():
            setting = SETTINGS[key]
            if setting.model_default is not None and value == "":
                continue
            if picked and key in FAMILY_FLAGS:
                continue  # a well-known pick names its family; the fields only show it

            if setting.kind == "prompts":
                value, _ = parse_prompt_text(value)
            elif setting.kind == "int_list" and isinstance(value, str) and not value.strip():
                value = []  # an empty list field means "none"; the schema's coerce wants a list
            out[key] = value
        return out

    def _evaluate(self) -> tuple[list[Problem], dict[str, Any]]:
        key = tuple(sorted((k, str(v)) for k, v in self.values.items()))
        if key != self._cache_key:
            prompt_problems = parse_prompt_text(self.values["sampling.prompts"])[1]
            complete_values, problems = validate_values(self.check_input(), earlier=prompt_problems)
            self._cache_key, self._cache = key, (problems, complete_values)
        return self._cache

    def problems(self) -> list[Problem]:
        """Every error and warning of the values (fields and cross-field rules)."""
        return list(self._evaluate()[0])

    def typed(self) -> dict[str, Any]:
        """Complete typed values; a field that does not parse takes its default here."""
        return dict(self._evaluate()[1])

    def errors(self) -> list[Problem]:
        return [p for p in self.problems() if p.is_error]

    def to_config(self) -> RunConfig:
        """The run as it will be saved (call only when `errors()` is empty)."""
        return RunConfig(self.typed())

    # ---------------------------------------------------------------- presentation

    def disabled_reason(self, setting: Setting) -> str | None:
        """Why a field does not apply now (shown instead of hiding it), or None."""
        pick = self.values["model.quick_pick"]
        if setting.key in FAMILY_FLAGS and pick in QUICK_PICKS:
            return f"set by the base model pick '{pick}'"
        if setting.applies is None:
            return None
        return setting.applies(self.typed())

    def empty_text(self, setting: Setting) -> str:
        """What an empty field means, with the value it will take: the input's placeholder."""
        typed = self.typed()
        if setting.model_default is not None:
            shown = field_text(setting, setting.model_default(typed))
            return f"auto: {shown}" if shown != "" else "auto (from the model)"
        if setting.required:
            return "required"
        if setting.empty_means:
            return "empty: " + _KEY_IN_TEXT.sub(lambda m: _named_value(m.group(1), typed), setting.empty_means)
        if setting.optional or setting.default in (None, "", []):
            return "empty: none"
        return f"default: {field_text(setting, setting.default)}"


def _named_value(key: str, typed: Mapping[str, Any]) -> str:
    setting = SETTINGS.get(key)
    if setting is None:
        return key
    return f"{setting.label.lower()} ({field_text(setting, typed[key])})"


def _raw_value(document: Any, key: str) -> Any:
    node = document
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
