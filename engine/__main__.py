"""`python -m engine train run.yaml [--resume [STATE]]`: the engine without the app.

This is also the entry `accelerate launch -m engine train ...` runs on every process.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train")
    train.add_argument("file")
    train.add_argument("--resume", nargs="?", const="latest")
    train.add_argument("--run-id")
    args = parser.parse_args(argv)
    from .runner import train_main

    return train_main(args.file, resume=args.resume, run_id=args.run_id)


if __name__ == "__main__":
    sys.exit(main())
