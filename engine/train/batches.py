"""Which images go into which batch, epoch by epoch.

An epoch shows each training image `repeats` times (plus the balanced regularisation draws the scan
chose). Draws are grouped by bucket so a batch never mixes sizes, shuffled with a generator seeded
from (seed, epoch) so an interrupted run can rebuild the same order on resume, and split between
processes by position (process r takes batches r, r+N, ...).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..dataset.scan import ImageItem


@dataclass(frozen=True)
class Draw:
    item_index: int  # index into DatasetSummary.items
    flip: bool


def epoch_batches(items: list[ImageItem], *, batch_size: int, seed: int, epoch: int, flip: bool | None,
                  num_processes: int = 1, process_index: int = 0) -> list[list[Draw]]:
    """`flip` None: each image flips when its folder's options say so; True / False: all or none."""
    rng = random.Random(seed * 1_000_003 + epoch)
    by_bucket: dict[tuple[int, int], list[Draw]] = {}
    for index, item in enumerate(items):
        flips = item.options.flip if flip is None else flip
        for _ in range(item.repeats):
            draw = Draw(index, flips and rng.random() < 0.5)
            by_bucket.setdefault(tuple(item.bucket), []).append(draw)
    batches: list[list[Draw]] = []
    for bucket in sorted(by_bucket):
        draws = by_bucket[bucket]
        rng.shuffle(draws)
        batches.extend(draws[i:i + batch_size] for i in range(0, len(draws), batch_size))
    rng.shuffle(batches)
    if num_processes > 1:
        # Every process must take the same number of steps: pad by reusing the first batches.
        remainder = len(batches) % num_processes
        if remainder:
            batches += batches[: num_processes - remainder]
        batches = batches[process_index::num_processes]
    return batches
