"""The one rule for aspect-ratio bucket limits against the training resolution: `validate` (the
run-file rules) and the dataset scan both apply it, so a run file that validates is one the scan
takes. Torch-free, and below engine.dataset (which calls it through check_bucket_settings).
"""

from __future__ import annotations

from ..problems import Problem, error


def bucket_limit_problems(resolution: tuple[int, int], *, enabled: bool, min_side: int, max_side: int, step: int,
                          no_upscale: bool) -> list[Problem]:
    """Settings under which sd-scripts would refuse to start, as problems naming the setting."""
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
