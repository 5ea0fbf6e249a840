"""Parallel image loading: worker threads that decode and resize images ahead of the training loop."""

from __future__ import annotations

from ..schema import Setting

LOADING_SETTINGS = [
    Setting(
        "training.max_data_loader_n_workers", "int", 0, "Image loading workers",
        "Threads that decode and resize images ahead of training; 0 = load in the training thread.",
        "Without cached latents every step opens, decodes and resizes its images before the model can "
        "use them. With workers, that happens in background threads for the next batches while the "
        "current one trains, and for the images of the latent-caching pass. The images and the "
        "training are exactly the same with or without workers; only the waiting changes. 2–8 suits "
        "most machines; more than the CPU cores does not help.",
        "advanced", kohya="max_data_loader_n_workers", minimum=0, maximum=64, tier="expected",
    ),
    Setting(
        "training.persistent_data_loader_workers", "bool", False, "Keep loading workers",
        "Keep the loading workers between epochs instead of starting new ones each epoch.",
        "Normally the loading workers are stopped at the end of each epoch and new ones start with the "
        "next. Keeping them saves that restart; it matters most with many short epochs.",
        "advanced", kohya="persistent_data_loader_workers", tier="expected",
        applies=lambda v: None if v.get("training.max_data_loader_n_workers") else "only with loading workers",
    ),
]
