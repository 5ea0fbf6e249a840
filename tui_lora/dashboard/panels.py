"""The dashboard's text panels: each a small widget drawing one part of a `DashboardState`.

Panels never read files and never hold their own copy of the numbers: the screen hands them the
one state object (`show(state)`), and they draw it at whatever size they have. The chart and image
panels live in `graphics.py`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from textual.content import Content
from textual.widget import Widget

from . import formatting as fmt
from .state import DashboardState

LABEL = "$foreground-muted"
STATUS_STYLES = {
    "waiting": ("… WAITING", "$text-muted"),
    "running": ("● RUNNING", "$success bold"),
    "stopping": ("■ STOPPING…", "$warning bold"),
    "completed": ("✔ COMPLETED", "$success bold"),
    "stopped": ("■ STOPPED", "$warning bold"),
    "failed": ("✘ FAILED", "$error bold"),
    "lost": ("? LOST", "$error bold"),
}


class Panel(Widget):
    """A bordered box that redraws from the state; subclasses implement `lines`."""

    TITLE = ""
    DEFAULT_CSS = """
    Panel {
        border: round $primary 60%;
        border-title-color: $text-accent;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.border_title = self.TITLE
        self.state: DashboardState | None = None

    def show(self, state: DashboardState) -> None:
        self.state = state
        self.refresh(layout=True)

    def render(self) -> Content:
        if self.state is None:
            return Content("")
        return Content("\n").join(self.lines(self.state, max(1, self.size.width), max(1, self.size.height)))

    def lines(self, state: DashboardState, width: int, height: int) -> list[Content | str]:
        raise NotImplementedError


class RunHeader(Widget):
    """One line: what is running, where, and the status word (never colour alone)."""

    DEFAULT_CSS = """
    RunHeader { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state: DashboardState | None = None
        self.stopping = False

    def show(self, state: DashboardState, *, stopping: bool = False) -> None:
        self.state, self.stopping = state, stopping
        self.refresh()

    def render(self) -> Content:
        state = self.state
        if state is None:
            return Content("tui-lora")
        status = "stopping" if self.stopping and state.live else state.status
        word, style = STATUS_STYLES.get(status, (status.upper(), "bold"))
        parts = ["tui-lora", state.output_name or state.run_id or "run"]
        if state.device:
            precision = state.mixed_precision if state.mixed_precision not in ("", "no") else ""
            parts.append(f"{state.device} {precision}".strip())
        if state.num_processes > 1:
            parts.append(f"{state.num_processes} processes")
        left = Content(" · ".join(parts))
        room = max(0, self.size.width - len(word) - 1)
        return Content.assemble(left.truncate(room, ellipsis=True, pad=True), " ", (word, style))


class ProgressPanel(Panel):
    """`step N/M` and `epoch e/E` as text and bars (caching replaces the epoch bar), then speed and time."""

    TITLE = "Progress"

    def lines(self, state: DashboardState, width: int, height: int) -> list[Content | str]:
        if state.status == "waiting":
            return ["waiting for the engine to start…"]
        progress = state.progress
        step_label = f"step {progress.step}/{progress.total_steps or '?'}"
        step_tail = f" {progress.fraction * 100:3.0f}%" if progress.fraction is not None else ""
        caching = state.caching
        if caching is not None and caching.active:
            second_label = f"caching {caching.stage}"
            second_fraction: float | None = caching.done / caching.total
            second_tail = f" {caching.done}/{caching.total}"
        else:
            second_label = f"epoch {progress.epoch}/{progress.total_epochs or '?'}"
            inside = progress.epoch_steps_done
            per_epoch = progress.steps_per_epoch
            second_fraction = inside / per_epoch if inside is not None and per_epoch else None
            second_tail = f" {inside}/{progress.steps_per_epoch}" if inside is not None else ""
        label_width = max(len(step_label), len(second_label)) + 1
        tail_width = max(len(step_tail), len(second_tail))
        bar_width = max(4, width - label_width - tail_width)
        facts = [fmt.rate(progress.it_per_s), f"ETA {fmt.duration(progress.eta_s)}",
                 f"elapsed {fmt.duration(progress.elapsed_s)}"]
        if state.global_batch is not None:
            facts.append(f"batch {state.batch_size}×{state.num_processes}×{state.grad_accumulation}"
                         f"={state.global_batch}")
        return [
            Content.assemble(step_label.ljust(label_width), (fmt.bar(progress.fraction, bar_width), "$primary"),
                             step_tail.rjust(tail_width)),
            Content.assemble(second_label.ljust(label_width), (fmt.bar(second_fraction, bar_width), "$secondary"),
                             second_tail.rjust(tail_width)),
            Content(" · ".join(facts)),
        ]


class MemoryPanel(Panel):
    """Allocated/reserved/peak against the device total (RAM on CPU); total and GPU util in the title."""

    TITLE = "Memory"

    def show(self, state: DashboardState) -> None:
        memory = state.memory
        kind = "RAM" if memory.on_cpu or memory.allocated is None else "VRAM"
        title = f"Memory · {kind} {fmt.size(memory.total)}" if memory.total else "Memory"
        if memory.gpu_util is not None:
            title += f" · GPU {memory.gpu_util:.0f}%"
        if state.vram_estimate and kind == "VRAM":
            title += f" · est. peak {fmt.size(state.vram_estimate)}"  # compare with the peak row
        self.border_title = title
        super().show(state)

    def lines(self, state: DashboardState, width: int, height: int) -> list[Content | str]:
        memory = state.memory
        if memory.allocated is None and memory.rss is None:
            return [Content.styled("no readings yet", LABEL)]
        if memory.on_cpu or memory.allocated is None:
            rows = [("RAM (rss)", memory.rss)]
        else:
            rows = [("allocated", memory.allocated), ("reserved", memory.reserved), ("peak", memory.peak)]
        lines: list[Content | str] = []
        bar_width = max(4, width - 21)
        for label, value in rows:
            fraction = value / memory.total if value is not None and memory.total else None
            style = "$error" if fraction is not None and fraction > 0.95 else "$primary"
            lines.append(Content.assemble((f"{label:<10}", LABEL), f"{fmt.size(value):>10} ",
                                          (fmt.bar(fraction, bar_width), style)))
        return lines


class CheckpointPanel(Panel):
    TITLE = "Checkpoint"

    def lines(self, state: DashboardState, width: int, height: int) -> list[Content | str]:
        checkpoint = state.checkpoint
        if checkpoint is None:
            return [Content.styled("none saved yet (c saves one now)" if state.live else "none saved", LABEL)]
        where = [f"step {checkpoint.step}" if checkpoint.step is not None else "",
                 f"epoch {checkpoint.epoch}" if checkpoint.epoch is not None else "", checkpoint.kind]
        return [
            Content(fmt.file_name(checkpoint.path)),
            Content.styled(" · ".join(part for part in [fmt.size(checkpoint.bytes), *where] if part), LABEL),
            Content.styled(f"{state.checkpoints_saved} saved in {fmt.short_path(_parent(checkpoint.path))}", LABEL),
        ]


class LogPanel(Panel):
    TITLE = "Log"
    LEVEL_STYLES = {"warning": "$warning", "error": "$error", "info": ""}

    def lines(self, state: DashboardState, width: int, height: int) -> list[Content | str]:
        rows: list[Content | str] = []
        for line in state.log:
            stamp = fmt.duration(line.time) if line.time is not None else ""
            prefix = f"{stamp:>7} "
            wrapped = textwrap.wrap(line.text, max(8, width - len(prefix))) or [""]
            for index, text in enumerate(wrapped):
                rows.append(Content.assemble((prefix if index == 0 else " " * len(prefix), LABEL),
                                             (text, self.LEVEL_STYLES.get(line.level, ""))))
        return rows[-height:] if rows else [Content.styled("no messages yet", LABEL)]


class SummaryPanel(Panel):
    """How the run ended: the output files, or the error and its hint."""

    TITLE = "Result"

    def show(self, state: DashboardState) -> None:
        if state.outcome is not None:
            self.border_title = f"Result: {state.outcome.status}"
            self.set_class(state.outcome.status in ("failed", "lost"), "-bad")
            self.set_class(state.outcome.status == "stopped", "-stopped")
        super().show(state)

    def lines(self, state: DashboardState, width: int, height: int) -> list[Content | str]:
        outcome = state.outcome
        if outcome is None:
            return []
        word, style = STATUS_STYLES.get(outcome.status, (outcome.status, "bold"))
        headline = f"{word.split(' ', 1)[0]} {outcome.status} at step {outcome.step}"
        if state.progress.elapsed_s is not None:
            headline += f" after {fmt.duration(state.progress.elapsed_s)}"
        lines: list[Content | str] = [Content.styled(headline, style)]
        if outcome.message and outcome.status != "failed":
            lines += _labelled("note", outcome.message, width)
        if state.error is not None and outcome.status in ("failed", "lost"):
            lines += _labelled("error", state.error.message, width, "$error")
            if state.error.hint:
                lines += _labelled("hint", state.error.hint, width)
            if state.error.traceback_path:
                lines += _labelled("details", fmt.short_path(state.error.traceback_path), width, path=True)
        elif outcome.status == "failed" and outcome.message:
            lines += _labelled("error", outcome.message, width, "$error")
        for path in outcome.outputs:
            lines += _labelled("output", fmt.short_path(path), width, path=True)
        if not outcome.outputs and state.checkpoint is not None and outcome.status != "completed":
            lines += _labelled("last save", fmt.short_path(state.checkpoint.path), width, path=True)
        return lines


def _labelled(label: str, text: str, width: int, style: str = "", *, path: bool = False) -> list[Content]:
    """`label  text`, the text wrapped under itself (a path breaks after a `/`)."""
    indent = 10
    room = max(8, width - indent)
    if path:
        chunks = _wrap_path(text, room)
    else:
        chunks = textwrap.wrap(text, room, break_long_words=True, break_on_hyphens=False) or [""]
    return [Content.assemble(((label if i == 0 else "").ljust(indent), LABEL), (chunk, style))
            for i, chunk in enumerate(chunks)]


def _wrap_path(path: str, width: int) -> list[str]:
    """Lines of at most `width` cells, breaking after path separators where possible."""
    lines, line = [], ""
    for part in path.replace("/", "/\0").split("\0"):
        while len(part) > width:  # a single name longer than the line: cut it
            if line:
                lines.append(line)
                line = ""
            lines.append(part[:width])
            part = part[width:]
        if len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return [*lines, line] if line or not lines else lines


def _parent(path: str) -> str:
    return str(Path(path).parent) if path else ""
