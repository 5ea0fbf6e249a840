"""Judging a run's values: the one path the YAML loader (and so `train` and `validate`), the
wizard's draft and the Kohya importer all take, so they agree on what is an error.

Each given value is checked against its setting (text is read leniently, as the wizard's fields
and the Kohya GUI hold it), every missing setting takes its default (model-dependent ones from the
model pick), then the cross-field rules run. A value that does not parse takes its default and
the rules still run, so an error on one wizard screen does not hide a rule broken on another; a
rule never adds a second problem to a setting that already has one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..problems import Problem
from .rules import check_rules
from .runconfig import SETTINGS, complete
from .values import coerce


def validate_values(given: Mapping[str, Any], *, earlier: Iterable[Problem] = ()) -> tuple[dict[str, Any], list[Problem]]:
    """(complete typed values, every problem). `earlier` holds problems the caller already found
    (unknown keys in a file, unreadable prompt lines); they come first in the result."""
    problems = list(earlier)
    typed: dict[str, Any] = {}
    for key, raw in given.items():
        setting = SETTINGS.get(key)
        if setting is None:
            continue  # unknown keys are the reader's to report: it knows the file's layout
        value, problem = coerce(setting, raw, lenient=isinstance(raw, str))
        if problem is None:
            typed[key] = value
        else:
            problems.append(problem)
    values = complete(typed)
    marked = {problem_key(p) for p in problems}
    problems += [p for p in check_rules(values) if problem_key(p) not in marked]
    return values, problems


def problem_key(problem: Problem) -> str:
    """The setting a problem belongs to (`sampling.prompts[0].seed` → `sampling.prompts`)."""
    field = problem.field
    if field in SETTINGS:
        return field
    base = field.split("[", 1)[0]
    return base if base in SETTINGS else field
