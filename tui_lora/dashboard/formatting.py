"""Short human-readable forms of the numbers the app shows: dashboard, Review screen, `validate` (no Textual, no I/O)."""

from __future__ import annotations

import math
import os
from pathlib import Path

_BAR_FULL = "━"
_BAR_HALF = "╸"  # a half cell at the end of the filled part
_BAR_EMPTY = "─"


def duration(seconds: float | None) -> str:
    """`0:05`, `12:34`, `1:02:03`; `--:--` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def epochs_done(epochs: int | None) -> str:
    """A save's epoch as sd-scripts records it (`ss_epoch`: epochs completed), in words that cannot
    be mistaken for the epoch in progress: `0 epochs done`, `1 epoch done`."""
    if epochs is None:
        return ""
    return f"{epochs} epoch{'' if epochs == 1 else 's'} done"


def size(num_bytes: float | None) -> str:
    """Binary units, one decimal: `512 B`, `18.2 MiB`, `23.6 GiB`."""
    if num_bytes is None:
        return "?"
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - unreachable, GiB stops the loop


def learning_rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return f"{value:.2e}"


def loss(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)  # "nan" / "inf": worth showing as is
    return f"{value:.4f}"


def rate(it_per_s: float | None) -> str:
    """Iterations per second, or seconds per iteration when slower than one a second."""
    if not it_per_s or not math.isfinite(it_per_s) or it_per_s <= 0:
        return "- it/s"
    if it_per_s < 1:
        return f"{1 / it_per_s:.2f} s/it"
    return f"{it_per_s:.2f} it/s"


def bar(fraction: float | None, width: int) -> str:
    """A text progress bar of exactly `width` cells (half-cell resolution)."""
    if width <= 0:
        return ""
    fraction = 0.0 if fraction is None or not math.isfinite(fraction) else min(max(fraction, 0.0), 1.0)
    halves = int(round(fraction * width * 2))
    full, half = divmod(halves, 2)
    text = _BAR_FULL * full + (_BAR_HALF if half else "")
    return text + _BAR_EMPTY * (width - len(text))


def short_path(path: str | os.PathLike | None) -> str:
    """The path with the home folder written as `~`."""
    if not path:
        return ""
    text = str(path)
    home = str(Path.home())
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home):]
    return text


def file_name(path: str | os.PathLike | None) -> str:
    return Path(path).name if path else ""
