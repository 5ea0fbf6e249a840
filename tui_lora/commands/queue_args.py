"""The arguments of `tui-lora queue …` (argparse only, so `tui-lora --help` stays instant)."""

from __future__ import annotations


def add_parser(commands) -> None:
    queue = commands.add_parser("queue", help="line up runs that train one after another (default: list)",
                                description="Runs in the queue train one after another in a detached worker "
                                "that survives the terminal; `tui-lora monitor` follows them.")
    actions = queue.add_subparsers(dest="queue_command", metavar="ACTION")
    add = actions.add_parser("add", help="check run files and queue copies of them (starts the worker)")
    add.add_argument("files", nargs="+", metavar="run.yaml")
    add.add_argument("--front", action="store_true", help="put them before the waiting runs")
    listing = actions.add_parser("list", help="the queue: waiting, running and finished runs")
    listing.add_argument("--all", action="store_true", help="also the finished runs of earlier batches")
    remove = actions.add_parser("remove", help="take a waiting or finished run off the queue")
    remove.add_argument("id", type=int)
    move = actions.add_parser("move", help="change the order of the waiting runs")
    move.add_argument("id", type=int)
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--up", action="store_true", help="one place earlier")
    where.add_argument("--down", action="store_true", help="one place later")
    where.add_argument("--to", type=int, metavar="N", help="to place N (1 = next to start)")
    actions.add_parser("pause", help="finish the current run, start nothing new")
    actions.add_parser("resume", help="go on after a pause (starts the worker)")
    actions.add_parser("clear", help="remove every waiting and finished run (a running one stays)")
    run = actions.add_parser("run", help="start a worker now (e.g. after a reboot), optionally bound to GPUs")
    run.add_argument("--gpus", help="GPU numbers this worker owns, e.g. 0,1 (several workers on disjoint sets share the queue)")
    run.add_argument("--foreground", action="store_true", help="work in this terminal instead of in the background")
