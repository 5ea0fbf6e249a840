"""`tui-lora export-kohya RUN.yaml (-o OUT.json | --toml DIR) [--force]`: a run for the Kohya GUI or sd-scripts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.config import RunConfig, load_yaml_text, parse_nested
from engine.config.yamlio import read_run_text, write_text_atomic
from engine.kohya.export_gui import export_gui
from engine.kohya.export_toml import COMMAND_NAME, export_toml
from engine.problems import ProblemError

from .kohya_args import EXPORT_DESCRIPTION, add_export_arguments

def _read_run(path: str) -> RunConfig:
    """The run's settings; a file that cannot be read, or an unknown or mistyped setting, stops the
    export. Problems between settings (a FLUX.1 without model.config_dir) do not: Kohya may not share them."""
    values, problems = parse_nested(load_yaml_text(read_run_text(path), path), source=path)
    if any(problem.is_error for problem in problems):
        raise ProblemError(problems)
    return RunConfig(values)


def main_export_kohya(args: Sequence[str] | argparse.Namespace) -> int:
    """0 written; 1 not written (a file exists, cannot be written); 2 the run file cannot be read."""
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="tui-lora export-kohya", description=EXPORT_DESCRIPTION)
        add_export_arguments(parser)
        try:
            args = parser.parse_args(list(args))
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else 2
    try:
        config = _read_run(args.file)
    except ProblemError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        print(f"error: {args.file}: not exported; nothing was written", file=sys.stderr)
        return 2
    if args.output:
        export = export_gui(config)
        files = {Path(args.output): json.dumps(export.data, indent=2, ensure_ascii=False) + "\n"}
        left_out = export.notes
    else:
        folder = Path(args.toml)
        toml = export_toml(config, folder)
        files = {folder / name: text for name, text in toml.files.items()}
        left_out = toml.left_out
    existing = [str(path) for path in files if path.exists()]
    if existing and not args.force:
        for path in existing:
            print(f"error: {path}: already exists; it was not replaced (use --force to replace it, or give "
                  "another output)", file=sys.stderr)
        print("error: nothing was written", file=sys.stderr)
        return 1
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, text, overwrite=True)
            if path.name == COMMAND_NAME:
                path.chmod(0o755)
    except OSError as exc:
        print(f"error: {exc.filename or ''}: cannot be written: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for line in left_out:
        print(f"not exported: {line}", file=sys.stderr)
    for path in files:
        print(f"wrote {path}")
    if args.toml:
        print(f"run it in the sd-scripts folder: {toml.command}")
    return 0
