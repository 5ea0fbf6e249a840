"""Aspect-ratio buckets, computed the way Kohya's sd-scripts BucketManager does.

Images of different shapes train at different resolutions ("buckets") of roughly the same pixel
area, so nothing is squashed and little is cropped. The numbers here must match sd-scripts so that
steps per epoch, `ss_bucket_info` and the images themselves agree with what users know from Kohya:

- enumeration: the square of the largest multiple of `step` below sqrt(area), plus, for each width
  from `min_side` to `max_side` in `step`s, the tallest height on the `step` grid whose area stays
  within the target (capped at `max_side`), and its transpose; heights below `min_side` are dropped;
- selection: the bucket whose aspect ratio is nearest the image's (first in sorted order on a tie),
  then the image is scaled to cover that bucket and the overflow is cropped;
- `no_upscale`: buckets come from each image's own size (shrunk to the target area when larger,
  never enlarged), floored to the step; `min_side`/`max_side` do not apply, as in sd-scripts.

Plain Python (no numpy/torch): `tui-lora validate` imports this and must stay fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from engine.problems import Problem, error

Size = tuple[int, int]  # (width, height) in pixels, the order Kohya and our YAML use


@dataclass(frozen=True)
class BucketSettings:
    """What decides the buckets; mirrors the `buckets.*` and `training.max_resolution` settings."""

    max_resolution: Size = (512, 512)  # its area W*H is the training area
    enabled: bool = True
    min_side: int = 256
    max_side: int = 1024
    step: int = 64
    no_upscale: bool = False

    def __post_init__(self) -> None:
        # YAML gives lists; keep a hashable (W, H) tuple.
        object.__setattr__(self, "max_resolution", (int(self.max_resolution[0]), int(self.max_resolution[1])))

    @property
    def max_area(self) -> int:
        return self.max_resolution[0] * self.max_resolution[1]


@dataclass(frozen=True)
class BucketChoice:
    """Where one image goes: its bucket, the size it is resized to before cropping, and how far the
    bucket's aspect ratio is from the image's (bucket W/H minus image W/H)."""

    bucket: Size
    resized_size: Size
    aspect_error: float


def bucket_limit_problems(resolution: tuple[int, int], *, enabled: bool, min_side: int, max_side: int, step: int,
                          no_upscale: bool) -> list[Problem]:
    """Settings under which sd-scripts would refuse to start, as problems naming the setting: the one
    rule for bucket limits, applied by `validate` (config/rules.py) and by the scan alike."""
    problems: list[Problem] = []
    width, height = resolution
    if width < 1 or height < 1:
        problems.append(error("training.max_resolution", f"must be positive, got {width}x{height}"))
    if step < 1:
        problems.append(error("buckets.step", f"must be at least 1, got {step}"))
    if not enabled or no_upscale or problems:
        return problems
    if min_side < 1:
        problems.append(error("buckets.min_resolution", f"must be at least 1, got {min_side}"))
    if max_side < min_side:
        problems.append(error("buckets.max_resolution", f"{max_side} is smaller than buckets.min_resolution {min_side}",
                              "raise buckets.max_resolution or lower buckets.min_resolution"))
    if min(width, height) < min_side:
        problems.append(error("buckets.min_resolution", f"{min_side} is larger than the shorter side of "
                              f"training.max_resolution ({width}x{height})",
                              "lower buckets.min_resolution to at most the training resolution"))
    if max(width, height) > max_side:
        problems.append(error("buckets.max_resolution", f"{max_side} is smaller than the longer side of "
                              f"training.max_resolution ({width}x{height})",
                              "raise buckets.max_resolution to at least the training resolution"))
    return problems


def check_bucket_settings(settings: BucketSettings) -> list[Problem]:
    """Settings under which sd-scripts would refuse to start (the rule `validate` applies too)."""
    return bucket_limit_problems(settings.max_resolution, enabled=settings.enabled, min_side=settings.min_side,
                                 max_side=settings.max_side, step=settings.step, no_upscale=settings.no_upscale)


def make_bucket_resolutions(max_resolution: Size, min_side: int, max_side: int, step: int) -> list[Size]:
    """All bucket sizes for a training area, sorted by (width, height)."""
    max_area = max_resolution[0] * max_resolution[1]
    square = int(math.sqrt(max_area) // step) * step
    resolutions = {(square, square)}
    width = min_side
    while width <= max_side:
        height = min(max_side, (max_area // width) // step * step)
        if height >= min_side:
            resolutions.add((width, height))
            resolutions.add((height, width))
        width += step
    return sorted(resolutions)


def round_to_step(value: float, step: int) -> int:
    """Round half up to an integer, then floor to the step grid (sd-scripts' round_to_steps)."""
    rounded = int(value + 0.5)
    return rounded - rounded % step


def cover_size(image_size: Size, bucket: Size) -> Size:
    """The size an image is scaled to so it covers the bucket: the side that is relatively shorter
    matches the bucket exactly, the other overflows and is cropped."""
    image_width, image_height = image_size
    image_ratio = image_width / image_height
    if image_ratio > bucket[0] / bucket[1]:  # wider than the bucket: match heights
        scale = bucket[1] / image_height
    else:
        scale = bucket[0] / image_width
    return int(image_width * scale + 0.5), int(image_height * scale + 0.5)


class BucketPicker:
    """Chooses buckets for images under one set of settings; deterministic and stateless."""

    def __init__(self, settings: BucketSettings):
        self.settings = settings
        if not settings.enabled:
            # One fixed bucket: every image is scaled to cover the training resolution and cropped.
            self.resolutions: list[Size] = [settings.max_resolution]
        elif settings.no_upscale:
            self.resolutions = []  # derived from each image
        else:
            self.resolutions = make_bucket_resolutions(
                settings.max_resolution, settings.min_side, settings.max_side, settings.step
            )
        self._resolution_set = set(self.resolutions)
        self._ratios = [w / h for w, h in self.resolutions]

    def select(self, width: int, height: int) -> BucketChoice:
        """The bucket for an image of this (orientation-corrected) size."""
        if width < 1 or height < 1:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if self.settings.enabled and self.settings.no_upscale:
            return self._select_without_upscale(width, height)
        ratio = width / height
        bucket = (width, height)
        if bucket not in self._resolution_set:
            errors = [abs(r - ratio) for r in self._ratios]
            bucket = self.resolutions[errors.index(min(errors))]
        return BucketChoice(bucket, cover_size((width, height), bucket), bucket[0] / bucket[1] - ratio)

    def _select_without_upscale(self, width: int, height: int) -> BucketChoice:
        step = self.settings.step
        max_area = self.settings.max_area
        ratio = width / height
        if width * height > max_area:
            # Shrink to the target area keeping the ratio, then snap one side to the grid: whichever
            # snapping keeps the ratio closer.
            resized_width = math.sqrt(max_area * ratio)
            resized_height = max_area / resized_width
            width_snapped = round_to_step(resized_width, step)
            height_for_width = round_to_step(width_snapped / ratio, step)
            height_snapped = round_to_step(resized_height, step)
            width_for_height = round_to_step(height_snapped * ratio, step)
            ratio_if_width = width_snapped / height_for_width if height_for_width else math.inf
            ratio_if_height = width_for_height / height_snapped if height_snapped else math.inf
            if abs(ratio_if_width - ratio) < abs(ratio_if_height - ratio):
                resized = (width_snapped, int(width_snapped / ratio + 0.5))
            else:
                resized = (int(height_snapped * ratio + 0.5), height_snapped)
        else:
            resized = (width, height)
        bucket = (resized[0] - resized[0] % step, resized[1] - resized[1] % step)
        aspect_error = (bucket[0] / bucket[1] - ratio) if bucket[1] else math.inf
        return BucketChoice(bucket, resized, aspect_error)


def batches_per_epoch(bucket_counts: Mapping[Size, int], batch_size: int) -> int:
    """Batches in one epoch: a batch never mixes buckets, so each bucket rounds up on its own."""
    return sum(math.ceil(count / max(1, batch_size)) for count in bucket_counts.values())


def steps_per_epoch(batches: int, gradient_accumulation_steps: int = 1, num_processes: int = 1) -> int:
    """Optimizer steps per epoch as sd-scripts' train_network.py counts them:
    ceil(batches / num_processes / gradient_accumulation_steps)."""
    return math.ceil(batches / max(1, num_processes) / max(1, gradient_accumulation_steps))
