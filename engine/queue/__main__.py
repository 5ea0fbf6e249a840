"""`python -m engine.queue work [--gpus 0,1]`: a queue worker in the foreground (the CLI starts it detached)."""

from __future__ import annotations

import argparse
import sys

from .devices import check_gpu_ids, parse_gpu_list
from .worker import Worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.queue")
    commands = parser.add_subparsers(dest="command", required=True)
    work = commands.add_parser("work", help="drain the queue, one run at a time")
    work.add_argument("--gpus", help="GPU numbers this worker owns, e.g. 0,1 (default: all GPUs, or the CPU)")
    args = parser.parse_args(argv)
    gpus = None
    if args.gpus:
        try:
            gpus = parse_gpu_list(args.gpus)
        except ValueError as exc:
            parser.error(str(exc))
        problem = check_gpu_ids(gpus)
        if problem:
            parser.error(problem)
    return Worker(gpus).run()


if __name__ == "__main__":
    sys.exit(main())
