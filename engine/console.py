"""Progress on a console: a live line on a terminal, plain periodic lines in a log or pipe."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def step_line(event: dict) -> str:
    rate = event.get("it_per_s")
    lrs = event.get("lr") or {}
    lr_text = " ".join(f"{name} {value:.2e}" for name, value in lrs.items())
    return (f"step {event['step']}/{event['total_steps']}  epoch {event['epoch']}/{event['total_epochs']}  "
            f"loss {event['loss']:.4f} (avg {event['avg_loss']:.4f})  lr {lr_text}  "
            f"{rate:.2f} it/s  ETA {_clock(event.get('eta_s'))}" if rate else
            f"step {event['step']}/{event['total_steps']}  epoch {event['epoch']}/{event['total_epochs']}  loss {event['loss']:.4f}")


class ConsoleReporter:
    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None, every_s: float = 10.0):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.every_s = every_s
        self._last_print = 0.0
        self._line_open = False

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
                self.stream.write("\r\x1b[2K" + step_line(event))
                self.stream.flush()
                self._line_open = True
            elif now - self._last_print >= self.every_s or event["step"] in (1, event["total_steps"]):
                self._last_print = now
                self._print(step_line(event))
        elif kind == "run_started":
            self._print(f"training {event.get('output_name')}: {event.get('total_steps')} steps, "
                        f"{event.get('total_epochs')} epoch(s), {event.get('steps_per_epoch')} steps per epoch, "
                        f"device {event.get('device')}, precision {event.get('mixed_precision')}, seed {event.get('seed')}")
        elif kind == "caching":
            if event.get("done") == event.get("total"):
                self._print(f"cached {event.get('total')} latents")
        elif kind == "epoch_end":
            self._print(f"epoch {event['epoch']}/{event['total_epochs']} done, average loss {event['avg_loss']:.4f}")
        elif kind == "checkpoint":
            self._print(f"saved {event['path']} ({event.get('kind')})")
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
