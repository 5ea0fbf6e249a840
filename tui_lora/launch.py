"""Starting a training run from the app, detached from the terminal.

The engine runs as `python -m engine train <file> --run-id <id>` in its own process session
(`start_new_session`), so closing the terminal or an SSH hang-up does not reach it. Its output
goes to a log file in the run folder; the dashboard follows the run's event file. Arguments are
passed as a list, never through a shell.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.runs import RunDir, new_run_id, record_process


@dataclass
class LaunchedRun:
    run: RunDir
    pid: int


def launch_training(run_file: str | os.PathLike, output_dir: str | os.PathLike) -> LaunchedRun:
    run_id = new_run_id()
    run = RunDir(Path(output_dir).resolve() / ".runs" / run_id)
    run.path.mkdir(parents=True, exist_ok=True)
    log = open(run.path / "console.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "train", str(Path(run_file).resolve()), "--run-id", run_id],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            # Same folder as the app: relative paths in the run file mean what they meant in the wizard.
            cwd=os.getcwd(), env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        log.close()
    # The engine writes its own pid file when it registers; write ours first (with the process's
    # start time, which proves the pid later) so the dashboard can tell "starting" from "lost".
    record_process(run, process.pid)
    return LaunchedRun(run, process.pid)


def start_detached(command: list[str], log_path: str | os.PathLike, *, cwd: str | os.PathLike | None = None) -> int:
    """Start `command` in its own process session, as `launch_training` starts a run (an SSH
    hang-up does not reach it), with its output appended to `log_path`; returns its pid."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=cwd or os.getcwd(),
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        log.close()
    return process.pid
