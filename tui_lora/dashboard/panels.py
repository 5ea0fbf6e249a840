"""The dashboard's text panels: each a small widget drawing one part of a `DashboardState`.

Panels never read files and never hold their own copy of the numbers: the screen hands them the
one state object (`show(state)`), and they draw it at whatever size they have. The chart and image
panels live in `graphics.py`.

Over SSH every byte counts: `show` compares the new lines with the ones on screen and repaints only
the cells that changed (a ticking clock costs a few bytes, not a frame).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from textual.content import Content
from textual.geometry import Region
from textual.widget import Widget

import tui_lora.dashboard.formatting as fmt  # not `from . import`: that reads the package, whose __init__ opens the screen
from .reducer import DashboardState, current_activity, elapsed_now

LABEL = "$foreground-muted"
STATUS_STYLES = {
    "waiting": ("… WAITING", "$text-muted"),
    "running": ("● RUNNING", "$success bold"),
    "stopping": ("■ STOPPING… s again: abort", "$warning bold"),
    "aborting": ("■ ABORTING…", "$error bold"),
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

    AUTO_HEIGHT = False  # True when the panel's height follows its lines (a layout pass on change)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.border_title = self.TITLE
        self.state: DashboardState | None = None
        self._drawn: list[Content] | None = None  # the lines on screen
        self._drawn_size: tuple[int, int] | None = None

    def show(self, state: DashboardState) -> None:
        self.state = state
        size = self._content_size()
        lines = self._lines_for(state, size)
        before, before_size = self._drawn, self._drawn_size
        self._drawn, self._drawn_size = lines, size
        if self.AUTO_HEIGHT and (before is None or len(before) != len(lines)):
            self.refresh(layout=True)
        elif before is None or before_size != size:
            self.refresh()
        else:
            regions = changed_regions(before, lines, size[0])
            if regions:
                self.refresh(*regions)

    def set_title(self, title: str) -> None:
        """Change the border title only when it differs (setting it repaints the border)."""
        if self.border_title != title:
            self.border_title = title

    def render(self) -> Content:
        if self.state is None:
            return Content("")
        size = self._content_size()
        if self._drawn is None or self._drawn_size != size:  # resized since the last show()
            self._drawn, self._drawn_size = self._lines_for(self.state, size), size
        return Content("\n").join(self._drawn)

    def _content_size(self) -> tuple[int, int]:
        return max(1, self.size.width), max(1, self.size.height)

    def _lines_for(self, state: DashboardState, size: tuple[int, int]) -> list[Content]:
        width, height = size
        lines = [line if isinstance(line, Content) else Content(line) for line in self.lines(state, width, height)]
        return lines if self.AUTO_HEIGHT else lines[:height]

    def lines(self, state: DashboardState, width: int, height: int) -> list[Content | str]:
        raise NotImplementedError


def changed_regions(before: list[Content], after: list[Content], width: int) -> list[Region]:
    """One region per changed line (content coordinates), from its first to its last changed cell.

    One per line, not one per changed run: Textual repaints a region from the widget's left edge
    to the region's end, so two regions on a line would send its start twice.
    """
    regions = []
    for row in range(max(len(before), len(after))):
        old = before[row] if row < len(before) else Content("")
        new = after[row] if row < len(after) else Content("")
        if old.is_same(new):
            continue
        span = _changed_span(old, new, width)
        if span is not None:
            regions.append(Region(span[0], row, span[1] - span[0], 1))
    return regions


def _changed_span(old: Content, new: Content, width: int) -> tuple[int, int] | None:
    """[start, end) of the cells that differ, lines padded to `width`; the whole line if unsure."""
    old_cells, new_cells = _cells(old, width), _cells(new, width)
    if old_cells is None or new_cells is None:
        return 0, width
    changed = [column for column in range(width) if old_cells[column] != new_cells[column]]
    return (changed[0], changed[-1] + 1) if changed else None


def _cells(line: Content, width: int) -> list[tuple[str, tuple]] | None:
    """(character, styles) per cell, padded to `width`; None when a character is not one cell wide."""
    text = line.plain
    if line.cell_length != len(text):
        return None
    styles: list[tuple] = [()] * len(text)
    for span in line.spans:
        for index in range(max(0, span.start), min(len(text), span.end)):
            styles[index] = (*styles[index], str(span.style))
    cells = list(zip(text, styles))[:width]
    if len(text) > width:  # the widget ends a too-long line with an ellipsis: the last cell may change
        cells[-1] = ("…", (text[width - 1:],))
    return cells + [(" ", ())] * (width - len(cells))


class RunHeader(Widget):
    """One line: what is running, where, and the status word (never colour alone)."""

    DEFAULT_CSS = """
    RunHeader { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state: DashboardState | None = None
        self.stopping = self.aborting = False
        self.note = ""  # e.g. "queue 2/5" when the run came from the queue
        self._drawn: Content | None = None

    def show(self, state: DashboardState, *, stopping: bool = False, aborting: bool = False) -> None:
        self.state, self.stopping, self.aborting = state, stopping, aborting
        line = self.render()
        if self._drawn is None or not self._drawn.is_same(line):
            self._drawn = line
            self.refresh()

    def render(self) -> Content:
        state = self.state
        if state is None:
            return Content("tui-lora")
        status = state.status
        if state.live and (self.stopping or self.aborting):
            status = "aborting" if self.aborting else "stopping"
        word, style = STATUS_STYLES.get(status, (status.upper(), "bold"))
        parts = ["tui-lora", state.output_name or state.run_id or "run"]
        if state.device:
            precision = state.mixed_precision if state.mixed_precision not in ("", "no") else ""
            parts.append(f"{state.device} {precision}".strip())
        if state.num_processes > 1:
            parts.append(f"{state.num_processes} processes")
        if self.note:
            parts.insert(2, self.note)
        left = Content(" · ".join(parts))
        room = max(0, self.size.width - len(word) - 1)
        return Content.assemble(left.truncate(room, ellipsis=True, pad=True), " ", (word, style))


class ProgressPanel(Panel):
    """`step N/M` and `epoch e/E` as text and bars (caching replaces the epoch bar), then speed and time."""

    TITLE = "Progress"

    def lines(self, state: DashboardState, width: int, height: int) -> list[Content | str]:
        activity = current_activity(state)
        if state.status == "waiting" or (state.started_at is None and state.live):  # no plan yet: no bars
            doing = f"{activity[0]} for {fmt.duration(activity[1])}" if activity else "waiting for the engine to start…"
            return [doing, Content.styled(f"elapsed {fmt.duration(elapsed_now(state))}", LABEL)]
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
            if inside is not None and per_epoch and progress.total_steps:
                # a run cut short by max_train_steps ends inside its last epoch: that epoch's bar
                # counts the steps it will run, so a finished run is never shown at 10/25
                per_epoch = max(inside, min(per_epoch, progress.total_steps - (progress.step - inside)))
            second_fraction = inside / per_epoch if inside is not None and per_epoch else None
            second_tail = f" {inside}/{per_epoch}" if inside is not None else ""
        label_width = max(len(step_label), len(second_label)) + 1
        tail_width = max(len(step_tail), len(second_tail))
        bar_width = max(4, width - label_width - tail_width)
        facts = [fmt.rate(progress.it_per_s), f"ETA {fmt.duration(progress.eta_s)}",
                 f"elapsed {fmt.duration(elapsed_now(state))}"]
        if activity is not None:  # the engine is busy and quiet: say with what, and for how long
            facts = [f"{activity[0]} for {fmt.duration(activity[1])}", facts[2], facts[0], facts[1]]
        elif state.global_batch is not None:
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
        self.set_title(title)
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
        when = [f"step {checkpoint.step}" if checkpoint.step is not None else "", fmt.epochs_done(checkpoint.epoch)]
        what = [fmt.size(checkpoint.bytes), checkpoint.kind,
                f"{state.checkpoints_saved} saved in {fmt.short_path(_parent(checkpoint.path))}"]
        return [
            Content(fmt.file_name(checkpoint.path)),
            Content.styled(" · ".join(part for part in when if part), LABEL),
            Content.styled(" · ".join(part for part in what if part), LABEL),
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
    """How the run ended: the LoRA's absolute path and what to do with it, or the error and its hint."""

    TITLE = "Result"
    AUTO_HEIGHT = True

    def show(self, state: DashboardState) -> None:
        if state.outcome is not None:
            self.set_title(f"Result: {state.outcome.status}")
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
                lines += _labelled("details", absolute_path(state.error.traceback_path, ""), width, path=True)
        elif outcome.status == "failed" and outcome.message:
            lines += _labelled("error", outcome.message, width, "$error")
        lora = absolute_path(outcome.outputs[-1], state.output_dir) if outcome.outputs else ""
        if not lora and state.checkpoint is not None and outcome.status != "completed":
            lines += _labelled("last save", absolute_path(state.checkpoint.path, state.output_dir), width, path=True)
        if lora:
            lines += _labelled("LoRA", lora, width, "bold", path=True)
            if len(outcome.outputs) > 1:
                lines += _labelled("also", f"{len(outcome.outputs) - 1} intermediate save(s) in the same folder",
                                   width, LABEL)
            lines += _labelled("next", NEXT_STEPS, width, LABEL)
        return lines


NEXT_STEPS = ("copy the LoRA into your image tool's LoRA folder (A1111/Forge: models/Lora, ComfyUI: "
              "models/loras); `tui-lora runs` lists your runs")


def absolute_path(path: str, output_dir: str) -> str:
    """The path as the user can copy it: relative ones are made absolute (outputs live in output_dir)."""
    if not path or Path(path).is_absolute():
        return path
    if output_dir:
        return str(Path(output_dir) / Path(path).name)
    return str(Path(path).resolve())


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
