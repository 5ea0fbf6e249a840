"""Panels that draw pictures in cells: the loss chart, the LR schedule with its marker, the sample.

Textual's only plot widget is the one-row `Sparkline`; these panels draw multi-row block columns
(eight levels per cell, readable in any font and in monochrome) from `charts.py`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from textual.content import Content

import tui_lora.dashboard.formatting as fmt  # not `from . import`: that reads the package, whose __init__ opens the screen
from .charts import bucket_by_x, column_rows, marker_column, sample_curve
from .panels import LABEL, Panel
from .reducer import DashboardState
from .thumbnail import half_block_cells

if TYPE_CHECKING:
    from PIL.Image import Image

CHART = "$primary"
FUTURE = "$primary 40%"
MARKER = "$accent bold"


class LossPanel(Panel):
    TITLE = "Loss"

    def lines(self, state: DashboardState, width: int, height: int) -> list[Content | str]:
        loss = state.loss
        text: list[Content | str] = [
            Content.assemble(("now ", LABEL), fmt.loss(loss.current), ("  ema ", LABEL), fmt.loss(loss.smoothed)),
            Content.assemble(("avg ", LABEL), fmt.loss(loss.average), ("  min ", LABEL), fmt.loss(loss.minimum)),
        ]
        if state.max_norm:
            norm = state.max_norm
            text.append(Content.styled(f"max-norm: {norm.get('keys_scaled', 0):.0f} scaled, "
                                       f"mean {norm.get('mean', 0):.2f}, max {norm.get('max', 0):.2f}", LABEL))
        rows = column_rows(_on_step_axis(loss.history.view(), state, width), max(0, height - len(text)))
        return text + [Content.styled(row, CHART) for row in rows]


class LrPanel(Panel):
    TITLE = "Learning rate"
    MAX_GROUP_LINES = 2

    def lines(self, state: DashboardState, width: int, height: int) -> list[Content | str]:
        lr = state.lr
        groups = lr.groups
        if not groups:
            return [Content.styled("no schedule yet", LABEL)]
        text: list[Content | str] = []
        for group in groups[:self.MAX_GROUP_LINES]:
            value = lr.current.get(group, lr.scheduled(group, state.progress.step))
            text.append(Content.assemble((f"{group} ", LABEL), fmt.learning_rate(value)))
        if len(groups) > self.MAX_GROUP_LINES:
            text[-1] = Content.assemble(text[-1], (f"  +{len(groups) - self.MAX_GROUP_LINES} more", LABEL))
        chart_height = max(0, height - len(text))
        shown = groups[0]
        total = state.progress.total_steps or 0
        if lr.curves.get(shown) and total:
            values = sample_curve(lr.curves[shown], total, width)
            marker = marker_column(state.progress.step, total, width)
        else:  # no schedule from the engine: chart what was seen so far, marker at the newest value
            seen = lr.history.get(shown)
            values = _on_step_axis(seen.view(), state, width) if seen else []
            finite = [index for index, value in enumerate(values) if math.isfinite(value)]
            marker = finite[-1] if finite else None
        rows = column_rows(values, chart_height, low=0.0)
        return text + [_marked_row(row, marker) for row in rows]


def _on_step_axis(points: list[tuple[float, float]], state: DashboardState, width: int) -> list[float]:
    """Columns over the run's steps (first point to total steps), or over what was seen if no total."""
    if not points:
        return []
    x_end = max(float(state.progress.total_steps or 0), points[-1][0])
    return bucket_by_x(points, points[0][0], x_end, width)


def _marked_row(row: str, marker: int | None) -> Content:
    """The schedule up to the current step bright, the rest dim, the current column as a marker."""
    if marker is None or marker >= len(row):
        return Content.styled(row, CHART)
    cell = row[marker] if row[marker] != " " else "┆"
    return Content.assemble((row[:marker], CHART), (cell, MARKER), (row[marker + 1:], FUTURE))


class SamplePanel(Panel):
    """The newest sample image in half-block cells; the image arrives from the tail worker."""

    TITLE = "Sample"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.image_path: str | None = None
        self.image: "Image | None" = None
        self._cells_cache: tuple[tuple[int, int, int], list[Content]] | None = None

    def set_image(self, path: str, image: "Image | None") -> None:
        self.image_path, self.image, self._cells_cache = path, image, None
        self.refresh()

    def lines(self, state: DashboardState, width: int, height: int) -> list[Content | str]:
        sample = state.sample
        if sample is None:
            return [Content.styled("no samples yet", LABEL)]
        count = len(sample.paths)
        head = f"step {sample.step} · {count} image{'s' if count != 1 else ''}" if sample.step is not None \
            else f"{count} images"
        text: list[Content | str] = [Content(head)]
        if sample.prompts:
            text.append(Content.styled(sample.prompts[0], LABEL))
        rows = height - len(text)
        if rows <= 0:
            return text
        if not sample.paths:
            return text
        if self.image_path != sample.paths[0]:
            return text + [Content.styled("loading…", LABEL)]
        if self.image is None:
            return text + [Content.styled(f"cannot read {fmt.file_name(self.image_path)}", "$warning")]
        return text + self._cells(width, rows)

    def _cells(self, width: int, rows: int) -> list[Content]:
        key = (id(self.image), width, rows)
        if self._cells_cache is None or self._cells_cache[0] != key:
            cells = half_block_cells(self.image, width, rows)
            pad = " " * max(0, (width - (len(cells[0]) if cells else 0)) // 2)
            lines = [Content.assemble(pad, *((("▀", f"{_hex(top)} on {_hex(bottom)}")) for top, bottom in row))
                     for row in cells]
            self._cells_cache = (key, lines)
        return self._cells_cache[1]


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])
