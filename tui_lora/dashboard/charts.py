"""Numbers into chart cells: bounded history, resampling to a width, block-column rows.

No Textual here: the chart widgets only colour what these functions return, so the shapes can be
tested as plain strings.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Sequence

# Eighths of a cell, bottom-up: a column of height h shows values at h*8 levels.
_LEVELS = " ▁▂▃▄▅▆▇█"


@dataclass
class BoundedSeries:
    """(x, y) points that never exceed `capacity`: when full, neighbours merge (mean of x and y).

    A run of a million steps therefore keeps at most `capacity` points, each the mean of
    `stride` consecutive values, which is exactly what a chart a few hundred cells wide needs.
    """

    capacity: int = 512
    stride: int = 1
    points: list[tuple[float, float]] = field(default_factory=list)
    _pending: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.capacity = max(2, self.capacity + self.capacity % 2)  # even, so every point has a partner

    def add(self, x: float, y: float) -> None:
        self._pending.append((x, y))
        if len(self._pending) < self.stride:
            return
        self.points.append(_mean_point(self._pending))
        self._pending = []
        if len(self.points) >= self.capacity:
            self.points = [_mean_point(self.points[i:i + 2]) for i in range(0, len(self.points), 2)]
            self.stride *= 2

    def view(self) -> list[tuple[float, float]]:
        """All points, the partly filled last bucket included."""
        return self.points + ([_mean_point(self._pending)] if self._pending else [])

    def __len__(self) -> int:
        return len(self.points) + (1 if self._pending else 0)


def _mean_point(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    return (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))


def bucket_by_x(points: Sequence[tuple[float, float]], x_start: float, x_end: float, width: int) -> list[float]:
    """One value per column for x from `x_start` to `x_end` (a step axis shared with the LR chart).

    A column holds the mean of its points; a column between points repeats its left neighbour;
    columns after the newest point stay empty (NaN), so a live chart fills from left to right.
    """
    if width <= 0:
        return []
    sums, counts = [0.0] * width, [0] * width
    span = x_end - x_start
    for x, y in points:
        column = 0 if span <= 0 else int((x - x_start) * width / span)
        column = min(width - 1, max(0, column))
        sums[column] += y
        counts[column] += 1
    filled = [index for index, count in enumerate(counts) if count]
    if not filled:
        return [math.nan] * width
    values, previous = [], math.nan
    for column in range(width):
        if counts[column]:
            previous = sums[column] / counts[column]
        values.append(previous if column <= filled[-1] else math.nan)
    return values


def interpolate(curve: Sequence[tuple[float, float]], x: float) -> float | None:
    """y at `x` on a polyline sorted by x (clamped to its ends)."""
    if not curve:
        return None
    xs = [point[0] for point in curve]
    index = bisect.bisect_left(xs, x)
    if index <= 0:
        return curve[0][1]
    if index >= len(curve):
        return curve[-1][1]
    (x0, y0), (x1, y1) = curve[index - 1], curve[index]
    if x1 == x0:
        return y1
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def sample_curve(curve: Sequence[tuple[float, float]], x_end: float, width: int) -> list[float]:
    """The curve's value at `width` evenly spaced x from 0 to `x_end`."""
    if width <= 0 or not curve:
        return []
    if width == 1:
        return [interpolate(curve, 0) or 0.0]
    return [interpolate(curve, x_end * column / (width - 1)) or 0.0 for column in range(width)]


def marker_column(x: float, x_end: float, width: int) -> int | None:
    """The column of `x` in a chart drawn by `sample_curve(…, x_end, width)`."""
    if width <= 0 or x_end <= 0:
        return None
    return min(width - 1, max(0, int(round(x / x_end * (width - 1)))))


def column_rows(values: Sequence[float], height: int, *, low: float | None = None,
                high: float | None = None) -> list[str]:
    """Rows (top first) of a block-column chart, one column per value, 8 levels per cell.

    Non-finite values draw as empty columns. A flat series draws at half height so it is visible.
    """
    if height <= 0 or not values:
        return [""] * max(height, 0)
    finite = [v for v in values if math.isfinite(v)]
    low = min(finite) if low is None and finite else (low or 0.0)
    high = max(finite) if high is None and finite else (high if high is not None else 1.0)
    span = high - low
    steps = height * 8
    levels = []
    for value in values:
        if not math.isfinite(value):
            levels.append(0)
        elif span <= 0:
            levels.append(steps // 2)
        else:
            # Never round a real value down to nothing: the lowest point keeps one eighth.
            levels.append(max(1, int(round((value - low) / span * steps))))
    rows = []
    for row in range(height):
        floor = (height - 1 - row) * 8  # levels below this row
        rows.append("".join(_LEVELS[min(8, max(0, level - floor))] for level in levels))
    return rows
