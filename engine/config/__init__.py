"""The settings schema and run files. Cheap to import: no torch, no textual."""

from .rules import check_rules
from .runconfig import SCHEMA_VERSION, SETTINGS, RunConfig, complete, parse_nested
from ..schema import Setting
from .validation import problem_key, validate_values
from .values import coerce, did_you_mean
from .yamlio import (
    config_from_document,
    dump_run_yaml,
    load_run_file,
    load_yaml_text,
    save_run_file,
    write_text_atomic,
)


__all__ = [
    "SCHEMA_VERSION", "SETTINGS", "RunConfig", "Setting", "check_rules", "coerce",
    "complete", "config_from_document", "did_you_mean", "dump_run_yaml", "load_run_file",
    "load_yaml_text", "parse_nested", "problem_key", "save_run_file", "validate_values", "write_text_atomic",
]
