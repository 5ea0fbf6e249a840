"""Optional parts of a run that act at step and epoch boundaries (samples, for one).

An extension is any object with some of these methods; the Trainer calls each one it has:
`on_run_start(trainer)`, `on_step(trainer, step, epoch)` (after each optimizer step),
`on_epoch_end(trainer, epoch)` (epoch counts from 1), `on_finish(trainer, status)`.
Only the main process calls them.
"""

from __future__ import annotations

from ..config import RunConfig


def extensions_for(cfg: RunConfig) -> list[object]:
    """The extensions a run's settings ask for."""
    found: list[object] = []
    if cfg.sampling.prompts:
        from .sampling import SampleImages

        found.append(SampleImages(cfg))
    return found
