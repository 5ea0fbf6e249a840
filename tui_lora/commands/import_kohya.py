"""`tui-lora import-kohya FILE -o run.yaml [--force]`: a Kohya GUI .json, sd-scripts options (.json or
--config_file .toml), an sd-scripts --dataset_config .toml, or a saved sd-scripts command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.config.kohya_import import write_imported
from engine.kohya.sources import convert_source, read_source
from engine.problems import Problem, ProblemError

from .kohya_args import IMPORT_DESCRIPTION as DESCRIPTION
from .kohya_args import IMPORT_FILE_HELP as CONFIG_HELP


def _arguments(args: Sequence[str] | argparse.Namespace) -> argparse.Namespace:
    if isinstance(args, argparse.Namespace):
        return args
    parser = argparse.ArgumentParser(prog="tui-lora import-kohya", description=DESCRIPTION)
    parser.add_argument("config", help=CONFIG_HELP)
    parser.add_argument("-o", "--output", required=True, help="run file to write (.yaml)")
    parser.add_argument("--force", action="store_true", help="replace the output file if it exists")
    return parser.parse_args(list(args))


def main_import_kohya(args: Sequence[str] | argparse.Namespace) -> int:
    """`tui-lora import-kohya CONFIG -o RUN.yaml [--force]`: 0 written, 1 not converted or not written,
    2 unreadable input or bad arguments."""
    try:
        options = _arguments(args)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        source = read_source(options.config)
    except ProblemError as exc:
        _print_problems(exc.problems)
        return 2
    try:
        result = convert_source(source)
    except ProblemError as exc:
        _print_problems(exc.problems)
        print(f"error: {options.config}: not imported; nothing was written", file=sys.stderr)
        return 1
    print(f"read {options.config} as {result.kind}")
    _print_problems(result.notes)
    try:
        written = write_imported(result, options.output, overwrite=bool(getattr(options, "force", False)))
    except ProblemError as exc:
        _print_problems(exc.problems)
        return 1
    print(f"wrote {written}")
    return 0


def _print_problems(problems: Sequence[Problem]) -> None:
    for problem in problems:
        print(str(problem), file=sys.stderr)
