"""`tui-lora` command line. Heavy libraries are imported only by the commands that train."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .commands.kohya_args import EXPORT_DESCRIPTION, IMPORT_DESCRIPTION, IMPORT_FILE_HELP, add_export_arguments


def _demo_families() -> list[str]:
    from .commands.demo import tiny_picks  # schema only: no torch

    return list(tiny_picks())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tui-lora",
        description="Set up, explain, run and watch Stable Diffusion LoRA training from the terminal.",
        epilog="With no command, the setup wizard opens.",
    )
    parser.add_argument("--version", action="version", version=f"tui-lora {__version__}")
    parser.add_argument("--theme", help="colour theme: dark, light or contrast (remembered)")
    parser.add_argument("--no-mouse", action="store_true", help="do not capture the mouse (keyboard only)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    edit = commands.add_parser("edit", help="open a run file in the wizard")
    edit.add_argument("file", help="run file (.yaml)")

    validate = commands.add_parser("validate", help="check a run file and its dataset, print the plan")
    validate.add_argument("file", help="run file (.yaml)")

    kohya = commands.add_parser("import-kohya", help=IMPORT_DESCRIPTION)
    kohya.add_argument("config", help=IMPORT_FILE_HELP)
    kohya.add_argument("-o", "--output", required=True, help="run file to write (.yaml)")
    kohya.add_argument("--force", action="store_true", help="replace the output file if it exists")

    add_export_arguments(commands.add_parser("export-kohya", help=EXPORT_DESCRIPTION))

    train = commands.add_parser("train", help="train a LoRA from a run file (headless)")
    train.add_argument("file", help="run file (.yaml)")
    train.add_argument("--resume", nargs="?", const="latest", metavar="STATE",
                       help="continue from saved state (default: the newest state of this run's output)")
    train.add_argument("--run-id", help=argparse.SUPPRESS)

    demo = commands.add_parser("demo", help="train a small LoRA on the built-in tiny model (CPU, < 2 min)")
    demo.add_argument("--dir", default=None, help="folder for the demo's dataset, run file and output (default ./tui-lora-demo)")
    demo.add_argument("--family", default="sd1", choices=_demo_families(),
                      help="which built-in tiny model to train (default sd1)")

    runs = commands.add_parser("runs", help="list runs and their status, newest first")
    runs.add_argument("--all", action="store_true", help="every run, not only the newest ten and the running ones")

    doctor = commands.add_parser("doctor", help="check a dataset for what would spoil the LoRA or stop training")
    doctor.add_argument("dir", nargs="?", help="images folder (default: folders.images of --config)")
    doctor.add_argument("--config", help="run file: its folders, buckets, batch size, captions and model tokenizer")
    doctor.add_argument("--reg", help="regularisation folder (default: the run file's, else none)")
    doctor.add_argument("--caption-extension", help="caption file extension (default: the run file's, else .txt)")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON (see docs/doctor.md)")
    doctor.add_argument("--no-cache", action="store_true", help="read every image again instead of using the cache")

    monitor = commands.add_parser("monitor", help="open the dashboard of a run (default: newest running)")
    monitor.add_argument("run", nargs="?", help="run id, id prefix or run folder")

    from .commands.queue_args import add_parser as add_queue_parser

    add_queue_parser(commands)
    describe_subcommands(commands)
    return parser


def describe_subcommands(commands: argparse._SubParsersAction) -> None:
    """Every `tui-lora X --help` (and `queue Y --help`) opens with the line its parent lists it with,
    in one place, so a command added anywhere gets its description without repeating it."""
    for choice in commands._choices_actions:  # the listed commands, with their help line
        sub = commands.choices.get(choice.dest)
        if sub is None:
            continue
        if not sub.description and choice.help:
            sub.description = choice.help[0].upper() + choice.help[1:] + "."
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                describe_subcommands(action)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tui-lora runs | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in (None, "edit"):
        from .app import run_app
        from .handoff import launch_and_watch

        return run_app(getattr(args, "file", None), args.theme, mouse=not args.no_mouse,
                       train_launcher=launch_and_watch)
    if args.command == "validate":
        from .commands.validate import validate_command

        return validate_command(args.file)
    if args.command == "import-kohya":
        from .commands.import_kohya import main_import_kohya

        return main_import_kohya(args)
    if args.command == "export-kohya":
        from .commands.export_kohya import main_export_kohya

        return main_export_kohya(args)
    if args.command == "train":
        from .commands.train import train_command

        return train_command(args.file, resume=args.resume, run_id=args.run_id)
    if args.command == "demo":
        from .commands.demo import demo_command

        return demo_command(args.dir, args.family)
    if args.command == "runs":
        from .commands.runs import runs_command

        return runs_command(show_all=args.all)
    if args.command == "doctor":
        from .commands.doctor import doctor_command

        return doctor_command(args.dir, args.config, as_json=args.json, regularization=args.reg,
                              caption_extension=args.caption_extension, use_cache=not args.no_cache)
    if args.command == "queue":
        from .commands.queue import queue_command

        return queue_command(args)
    if args.command == "monitor":
        from .dashboard import run_monitor

        if args.run is None:  # the queue is working: follow it from run to run
            from .queue_monitor import monitor_queue

            followed = monitor_queue(mouse=not args.no_mouse)
            if followed is not None:
                return followed

        return run_monitor(args.run, mouse=not args.no_mouse)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
