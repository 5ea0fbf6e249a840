"""The settings schema and run files. Cheap to import: no torch, no textual."""

from .rules import check_rules
from .runconfig import SCHEMA_VERSION, SETTINGS, RunConfig, complete, parse_nested
from .schema import Setting
from .values import coerce, did_you_mean
from .yamlio import (
    config_from_document,
    dump_run_yaml,
    load_run_file,
    load_yaml_text,
    save_run_file,
    write_text_atomic,
)


def check_values(values) -> list:
    """Every problem with a (possibly partial) flat set of values: field checks + cross rules."""
    problems = []
    typed = {}
    for key, raw in values.items():
        setting = SETTINGS.get(key)
        if setting is None:
            continue
        value, problem = coerce(setting, raw, lenient=isinstance(raw, str))
        if problem:
            problems.append(problem)
        else:
            typed[key] = value
    if any(p.is_error for p in problems):
        return problems
    return problems + check_rules(complete(typed))


__all__ = [
    "SCHEMA_VERSION", "SETTINGS", "RunConfig", "Setting", "check_rules", "check_values", "coerce",
    "complete", "config_from_document", "did_you_mean", "dump_run_yaml", "load_run_file",
    "load_yaml_text", "parse_nested", "save_run_file", "write_text_atomic",
]
