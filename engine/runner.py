"""The headless train command shared by `tui-lora train` and `python -m engine train`.

With `hardware.num_processes` > 1 and not already inside accelerate, it re-launches itself through
`accelerate launch --multi_gpu` (on CPU that gives the gloo-based multi-process mode).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from .config import load_run_file
from .console import ConsoleReporter, quiet_dependencies
from .problems import ProblemError
from .refusal import record_refusal


def _inside_accelerate() -> bool:
    return "LOCAL_RANK" in os.environ or "ACCELERATE_PROCESS_ID" in os.environ


def free_port() -> int:
    """A port nothing listens on now: two runs on one machine must not share accelerate's default 29500."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_command(file: str, processes: int, gpu_ids: list[int], resume: str | None, run_id: str | None) -> list[str]:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--dynamo_backend", "no", "--mixed_precision", "no",
               "--main_process_port", str(free_port())]
    if gpu_ids:
        command += ["--gpu_ids", ",".join(str(i) for i in gpu_ids)]
    command += ["-m", "engine", "train", file]
    if resume:
        command += ["--resume", resume]
    if run_id:
        command += ["--run-id", run_id]
    return command


def train_main(file: str, *, resume: str | None = None, run_id: str | None = None) -> int:
    quiet_dependencies()
    try:
        cfg, warnings = load_run_file(file)
    except ProblemError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{file}: not valid, nothing was started", file=sys.stderr)
        return 2
    if cfg.hardware.num_processes > 1 and not _inside_accelerate():
        _build_builtin_model_before_the_ranks(cfg.model.path)
        command = launch_command(file, cfg.hardware.num_processes, cfg.hardware.gpu_ids, resume, run_id)
        # Argument list, no shell: paths from the run file are never interpreted.
        return subprocess.call(command)
    from .train.control import RunControl
    from .train.entry import run_config

    rank = int(os.environ.get("RANK", "0") or 0)
    reporter = ConsoleReporter() if rank == 0 else None
    # This process is the run: a second stop ends it at once, a hang-up moves the console to the log.
    control = RunControl(owns_process=True)
    if reporter is not None:
        control.on_hangup.append(lambda: setattr(reporter, "live", False))
    try:
        # the file read above is used as it is: parsing it again would delay the run's registration
        result = run_config(cfg, warnings=warnings, config_path=str(file), on_event=_never_fails(reporter),
                            resume=resume, run_id=run_id, control=control)
    except ProblemError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print("nothing was started: fix the errors above", file=sys.stderr)
        if rank == 0:  # a dashboard opened by the app's launcher shows the same words, not "lost"
            record_refusal(cfg.folders.output, run_id or os.environ.get("TUI_LORA_RUN_ID"), exc.problems)
        return 2
    except KeyboardInterrupt:  # before the run's own signal handlers were in place
        print("interrupted before the run started", file=sys.stderr)
        return 130
    if rank == 0:
        if result.status == "completed":
            print(f"done: {result.outputs[-1] if result.outputs else 'no file written'}")
        elif result.status == "stopped":
            message = result.message or "stopped"
            if result.outputs and "saved" not in message:
                message += f"; saved {result.outputs[-1]}"
            print(message, file=sys.stderr)
        else:
            print(f"failed: {result.message}" + (f" ({result.hint})" if result.hint else ""), file=sys.stderr)
    elif result.status == "failed":  # the main rank reports the run; this says why this rank left it
        print(f"rank {rank} failed: {result.message}", file=sys.stderr)
    return result.exit_code


def _build_builtin_model_before_the_ranks(model_path: str) -> None:
    """Once the process group is up, transformers writes saved weights on rank 0 only, so the other
    ranks could not build a built-in model themselves: it is built here, before they start."""
    from .families.builtin import builtin_names, ensure_builtin_model

    if model_path.strip() in builtin_names():
        ensure_builtin_model(model_path.strip())


def _never_fails(reporter):
    """Console output must never end a run: a terminal that hung up refuses writes until the
    output moves to the run's log."""
    if reporter is None:
        return None

    def report(event: dict) -> None:
        try:
            reporter(event)
        except (OSError, ValueError):
            pass

    return report
