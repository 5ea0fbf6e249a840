"""Progress on a console: a live line on a terminal, plain periodic lines in a log or pipe.

The live line is redrawn in place with `\r`, which only works while it fits on one row: it is cut
to the terminal's width (read again for every line, so it follows a resize) by dropping the least
important fields first.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


# Loggers of dependencies whose warnings a user cannot act on (bitsandbytes says at import that an
# optional CPU kernel package is missing, and works without it). Errors still get through.
NOISY_LOGGERS = ("bitsandbytes",)


def quiet_dependencies() -> None:
    """Keep dependencies' notices off the console before they are imported; our output is unaffected."""
    import logging

    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def step_fields(event: dict) -> list[tuple[int, str]]:
    """(importance, text) of a step event's parts in reading order; 0 is kept longest."""
    fields = [(0, f"step {event['step']}/{event['total_steps']}"),
              (4, f"epoch {event['epoch']}/{event['total_epochs']}"),
              (3, f"loss {event['loss']:.4f}")]
    if event.get("avg_loss") is not None:
        fields.append((5, f"(avg {event['avg_loss']:.4f})"))
    lrs = event.get("lr") or {}
    if lrs:
        fields.append((6, "lr " + " ".join(f"{name} {value:.2e}" for name, value in lrs.items())))
    rate = event.get("it_per_s")
    if rate:
        fields.append((2, f"{rate:.2f} it/s" if rate >= 1 else f"{1 / rate:.2f} s/it"))
        fields.append((1, f"ETA {_clock(event.get('eta_s'))}"))
    return fields


def step_line(event: dict, width: int | None = None) -> str:
    """The step's progress in one line of at most `width` characters (None: everything)."""
    fields = step_fields(event)
    line = _join(fields)
    while width is not None and len(line) > width and len(fields) > 1:
        fields.remove(max(fields, key=lambda field: field[0]))  # the least important goes first
        line = _join(fields)
    return line if width is None else line[:width]


def _join(fields: list[tuple[int, str]]) -> str:
    return "  ".join(text for _, text in fields)


class ConsoleReporter:
    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None, every_s: float = 10.0):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.every_s = every_s
        self._last_print = 0.0
        self._line_open = False

    def _width(self) -> int | None:
        """Columns the live line may use: one less than the terminal's, so it never wraps."""
        try:
            return max(20, os.get_terminal_size(self.stream.fileno()).columns - 1)
        except (OSError, ValueError, AttributeError):
            return None

    def _print(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "step":
            now = time.monotonic()
            if self.live:
                self.stream.write("\r\x1b[2K" + step_line(event, self._width()))
                self.stream.flush()
                self._line_open = True
            elif now - self._last_print >= self.every_s or event["step"] in (1, event["total_steps"]):
                self._last_print = now
                self._print(step_line(event))
        elif kind == "run_started":
            # two lines, each within 80 columns for usual names (one line was 99-104 and wrapped)
            self._print(f"training {event.get('output_name')}: {event.get('total_steps')} steps = "
                        f"{event.get('total_epochs')} epoch(s) × {event.get('steps_per_epoch')} steps")
            self._print(f"  on {event.get('device')}, precision {event.get('mixed_precision')}, seed {event.get('seed')}")
        elif kind == "phase":
            if event.get("name") != "saving":  # "saved …" follows at once
                self._print(f"{event.get('label') or event.get('name')}…")
        elif kind == "caching":
            if event.get("done") == event.get("total"):
                self._print(f"cached {event.get('total')} latents")
        elif kind == "epoch_end":
            self._print(f"epoch {event['epoch']}/{event['total_epochs']} done, average loss {event['avg_loss']:.4f}")
        elif kind == "checkpoint":
            done = event.get("epoch")  # epochs completed, as sd-scripts' ss_epoch
            epochs = f", {done} epoch{'' if done == 1 else 's'} done" if isinstance(done, int) else ""
            self._print(f"saved {event['path']} ({event.get('kind')}, step {event.get('step')}{epochs})")
        elif kind == "sample":
            self._print(f"samples: {', '.join(event.get('paths', []))}")
        elif kind == "warning":
            self._print(f"warning: {event.get('field') + ': ' if event.get('field') else ''}{event.get('message')}")
        elif kind == "log":
            self._print(event.get("message", ""))
        elif kind == "error":
            self._print(f"error: {event.get('message')}" + (f" ({event['hint']})" if event.get("hint") else ""))
        elif kind == "run_finished":
            self._print(f"run {event.get('status')} at step {event.get('step')}")
