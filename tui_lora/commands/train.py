"""`tui-lora train run.yaml`: headless training in the foreground."""

from __future__ import annotations


def train_command(file: str, *, resume: str | None = None, run_id: str | None = None) -> int:
    from engine.runner import train_main

    return train_main(file, resume=resume, run_id=run_id)
