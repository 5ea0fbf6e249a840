"""Small builders shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path


def write_small_concepts(root: Path) -> Path:
    """Two concepts with one captioned image each: 64×64 red and 96×64 blue, 2 repeats."""
    from PIL import Image

    for folder, colour, size in (("2_red thing", (200, 40, 40), (64, 64)), ("2_blue thing", (40, 40, 200), (96, 64))):
        target = root / folder
        target.mkdir(parents=True)
        image = Image.new("RGB", size, colour)
        for x in range(0, size[0], 8):
            image.putpixel((x, x % size[1]), (255, 255, 255))
        image.save(target / "img.png")
        (target / "img.txt").write_text(f"{folder.split('_')[1]}, simple")
    return root


class LogRecords(logging.Handler):
    """Collects log messages (diffusers/peft report unused LoRA keys through logging)."""

    def __init__(self, level: int = logging.DEBUG):
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


UNUSED_KEY_WORDS = re.compile(r"unexpected|not used|unused|not loaded", re.IGNORECASE)


def load_lora_noting_complaints(pipe, path) -> list[str]:
    """`pipe.load_lora_weights(path)`; returns every log line or warning that reports keys left unused."""
    records = LogRecords()
    loggers = [logging.getLogger(name) for name in ("diffusers", "peft", "transformers")]
    for logger in loggers:
        logger.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipe.load_lora_weights(str(path))
    finally:
        for logger in loggers:
            logger.removeHandler(records)
    return [m for m in records.messages + [str(w.message) for w in caught] if UNUSED_KEY_WORDS.search(m)]


def load_text(tmp_path, text: str):
    """Load a run file written from (dedented) YAML text."""
    import textwrap

    from engine.config import load_run_file

    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(text))
    return load_run_file(path)


def errors_of(tmp_path, text: str) -> list[str]:
    """'field: message' of each error loading the YAML text gives."""
    import pytest

    from engine.problems import ProblemError

    with pytest.raises(ProblemError) as info:
        load_text(tmp_path, text)
    return [f"{p.field}: {p.message}" for p in info.value.errors]


def small_run(root: Path, quick_pick: str, **changes):
    """A few steps on a built-in tiny model at 64 px from `root/images`; (result, events).
    `changes` use `__` for the dots of setting keys."""
    from engine.config import RunConfig
    from engine.train.entry import run_config

    values = {"model.quick_pick": quick_pick, "folders.images": str(root / "images"),
              "folders.output": str(root / "out"), "folders.output_name": "lora", "network.rank": 4,
              "training.batch_size": 2, "training.seed": 3, "training.cpu_threads_per_process": 1, "buckets.step": 32,
              "training.max_resolution": [64, 64], "optimizer.name": "AdamW", "optimizer.text_encoder_lr": 0.0,
              "optimizer.scheduler": "constant", "optimizer.warmup_percent": 0.0, "overwrite": True}
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    events: list[dict] = []
    result = run_config(RunConfig.from_values(values), on_event=events.append)
    assert result.status == "completed", (result.message, result.hint)
    return result, events
