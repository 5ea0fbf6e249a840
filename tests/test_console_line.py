"""The headless progress line in a real terminal: it fits the width (and follows a resize), and
`train` prints nothing from dependencies a user cannot act on."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from engine.console import ConsoleReporter, step_line

ROOT = Path(__file__).resolve().parents[1]
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def step_event(step: int) -> dict:
    return {"type": "step", "step": step, "total_steps": 12000, "epoch": 3, "total_epochs": 100, "loss": 0.123456,
            "avg_loss": 0.130001, "lr": {"unet": 1e-4, "text_encoder": 5e-5}, "it_per_s": 6.52, "eta_s": 3723.0}


def set_width(fd: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))


def read_all(fd: int, timeout: float = 0.5) -> str:
    chunks = []
    while select.select([fd], [], [], timeout)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        timeout = 0.1
    return b"".join(chunks).decode("utf-8", "replace")


def drawn_lines(output: str) -> list[str]:
    """What each `\\r`/`\\n`-separated write leaves on a row (escapes removed)."""
    return [ESCAPES.sub("", part) for part in re.split(r"[\r\n]", output) if ESCAPES.sub("", part)]


def test_step_line_drops_the_least_important_fields_first():
    full = step_line(step_event(5))
    assert full.startswith("step 5/12000") and "lr unet" in full and "ETA 1:02:03" in full
    narrow = step_line(step_event(5), 40)
    assert len(narrow) <= 40
    assert "step 5/12000" in narrow and "ETA 1:02:03" in narrow and "6.52 it/s" in narrow  # kept longest
    assert "lr" not in narrow and "avg" not in narrow  # dropped first


def test_live_line_in_a_pty_never_exceeds_the_width_and_follows_a_resize():
    master, slave = pty.openpty()
    try:
        set_width(slave, 80)
        with open(slave, "w", encoding="utf-8", closefd=False) as stream:
            reporter = ConsoleReporter(stream, live=True)
            for step in range(1, 4):
                reporter(step_event(step))
            at_80 = read_all(master)
            set_width(slave, 50)
            for step in range(4, 7):
                reporter(step_event(step))
            at_50 = read_all(master)
    finally:
        os.close(master)
        os.close(slave)
    assert len(drawn_lines(at_80)) == 3 and all(len(line) < 80 for line in drawn_lines(at_80))
    assert "lr unet" not in at_80 and "ETA" in at_80  # 103 characters do not fit: the lr went first
    assert len(drawn_lines(at_50)) == 3 and all(len(line) < 50 for line in drawn_lines(at_50)), drawn_lines(at_50)
    assert all(line.startswith("step ") and "ETA" in line for line in drawn_lines(at_50))


@pytest.mark.slow
def test_train_in_an_80_column_terminal_keeps_one_progress_row_and_no_dependency_noise(tmp_path, tiny_config):
    from engine.config import save_run_file

    cfg = tiny_config(training__epochs=2, folders__output=str(tmp_path / "out"),
                      optimizer__name="AdamW8bit")  # imports bitsandbytes, the noisy one
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    master, slave = pty.openpty()
    set_width(slave, 80)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "screen-256color"}
    process = subprocess.Popen([sys.executable, "-m", "tui_lora.cli", "train", str(run_file)], stdin=slave,
                               stdout=slave, stderr=slave, env=env, cwd=str(tmp_path))
    os.close(slave)
    output, deadline = [], time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline:
        output.append(read_all(master, 0.5))
    output.append(read_all(master, 0.5))
    os.close(master)
    process.kill()
    text = "".join(output)
    assert process.returncode == 0, text[-2000:]
    lines = drawn_lines(text)
    assert any(line.startswith("step ") for line in lines), text[-2000:]
    assert all(len(line) < 80 for line in lines if line.startswith("step ")), [line for line in lines if len(line) >= 80]
    assert "kernels-community" not in text and "gemm_4bit" not in text, text
    assert "loading the model…" in text  # the long phases are named on the console too
