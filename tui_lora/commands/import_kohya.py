"""`tui-lora import-kohya CONFIG.json -o run.yaml [--force]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.config.kohya_import import convert_kohya_settings, read_kohya_file, write_imported
from engine.problems import Problem, ProblemError


def _arguments(args: Sequence[str] | argparse.Namespace) -> argparse.Namespace:
    if isinstance(args, argparse.Namespace):
        return args
    parser = argparse.ArgumentParser(prog="tui-lora import-kohya", description="convert a Kohya SS GUI .json config into a run file")
    parser.add_argument("config", help="Kohya SS GUI config or preset (.json)")
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
        data = read_kohya_file(options.config)
    except ProblemError as exc:
        _print_problems(exc.problems)
        return 2
    try:
        result = convert_kohya_settings(data, source=str(options.config))
    except ProblemError as exc:
        _print_problems(exc.problems)
        print(f"error: {options.config}: not imported; nothing was written", file=sys.stderr)
        return 1
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
