"""The review screen's memory verdict: "peak ≈ X GiB — fits this N GiB GPU", the largest lines,
and, when it does not fit, numbered changes the screen applies with one key (1–5)."""

from __future__ import annotations

from typing import Any, Mapping

from textual.content import Content
from textual.widgets import Static

from engine.config import SETTINGS
from engine.vram import GIB, Fix, estimate_vram, planned_gpu_bytes, ways_to_fit
from engine.vram.report import verdict

SHOWN_FIXES = 5
_SHOWN_LINES = 3


def vram_content(values: Mapping[str, Any], buckets: list[tuple[int, int]] | None,
                 gpu: tuple[int | None, str]) -> tuple[Content, list[Fix]]:
    """The panel's text and the fixes it offers (empty when the run fits or the size is unknown)."""
    gpu_bytes, source = gpu
    if gpu_bytes is None and not source:  # no GPU found and none planned: the engine will use the CPU
        return cpu_content(values, buckets), []
    title = ("GPU memory", "bold $accent")
    estimate = estimate_vram(values, buckets=buckets)
    if estimate is None:
        return Content.assemble(title, "\n  ", ("known once the built-in model is built (first run)", "dim")), []
    fits = gpu_bytes is None or estimate.fits(gpu_bytes)
    parts: list = [title, "\n  ", (verdict(estimate, gpu_bytes), "bold" if fits else "bold $error")]
    fixes: list[Fix] = []
    if not fits:
        fixes = ways_to_fit(values, set(SETTINGS.keys()), gpu_bytes=gpu_bytes)[:SHOWN_FIXES]
    if not fixes:  # the breakdown's largest lines, when there is room (fixes matter more)
        largest = sorted(estimate.lines, key=lambda line: line.bytes, reverse=True)[:_SHOWN_LINES]
        for line in largest:
            parts += ["\n  ", (f"  {line.name:<26} {line.bytes / GIB:5.1f} GiB", "dim")]
    else:
        parts += ["\n  Ways to fit (press the number to apply):"]
    for index, fix in enumerate(fixes, 1):
        parts += ["\n  ", (f"{index}", "bold $accent"), f" {fix.label}: −{fix.saving_bytes / GIB:.1f} GiB"]
    return Content.assemble(*parts), fixes


def cpu_content(values: Mapping[str, Any], buckets: list[tuple[int, int]] | None) -> Content:
    """A machine without a GPU: say the run uses the CPU, and what a GPU would need (the run file is
    often written here and trained on a rented card)."""
    estimate = estimate_vram(values, buckets=buckets)
    parts: list = [("Device", "bold $accent"), "\n  ",
                   ("No GPU found on this machine: the run will train on the CPU.", "bold"), "\n  ",
                   ("Fine for the built-in tiny models; a real model takes hours per epoch. "
                    "Planning for a GPU elsewhere? Set hardware.vram_gb to check the fit.", "dim")]
    if estimate is not None:
        parts += ["\n  ", f"On a GPU: {verdict(estimate, None).split(' (')[0]}"]
        for line in sorted(estimate.lines, key=lambda line: line.bytes, reverse=True)[:_SHOWN_LINES]:
            parts += ["\n  ", (f"  {line.name:<26} {line.bytes / GIB:5.1f} GiB", "dim")]
    return Content.assemble(*parts)


class VramPanel(Static):
    """Shows the estimate for the values it is given; keeps the fixes it offered for the screen."""

    DEFAULT_CSS = "VramPanel { height: auto; margin-bottom: 1; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fixes: list[Fix] = []

    def show(self, values: Mapping[str, Any], buckets: list[tuple[int, int]] | None = None) -> None:
        try:
            content, self.fixes = vram_content(values, buckets, planned_gpu_bytes(values))
        except (KeyError, TypeError, ValueError) as exc:  # an odd custom config: say so, never crash
            content, self.fixes = Content(f"GPU memory: no estimate ({exc})"), []
        self.update(content)
