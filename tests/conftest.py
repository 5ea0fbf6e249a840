"""Shared fixtures: isolated user folders, the tiny model cache, a generated dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One cache of built-in models per test process (built on first use, then reused)."""
    shared = os.environ.get("TUI_LORA_TEST_CACHE")
    return Path(shared) if shared else tmp_path_factory.mktemp("tui-lora-cache")


@pytest.fixture(autouse=True)
def isolated_user_dirs(monkeypatch, tmp_path, model_cache):
    """Runs, recent files and caches never touch the real home folder."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    monkeypatch.setenv("TUI_LORA_CACHE", str(model_cache))
    import sys

    torch = sys.modules.get("torch")  # only when a test already uses it: UI tests stay light
    if torch is not None:
        torch.set_num_threads(1)


@pytest.fixture
def synthetic_data(tmp_path) -> tuple[Path, Path]:
    from engine.dataset.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path / "data", seed=0, size=64)


@pytest.fixture
def small_data(tmp_path) -> Path:
    """Two concepts, one image each (two sizes), 2 repeats: 4 draws per epoch."""
    from tests.helpers import write_small_concepts

    return write_small_concepts(tmp_path / "small")


@pytest.fixture
def tiny_config(tmp_path, synthetic_data, small_data):
    """Build a RunConfig for the tiny SD1 model on the synthetic dataset, with overrides."""
    from engine.config import RunConfig

    images, reg = synthetic_data

    def make(**overrides):
        values = {
            "model.quick_pick": "builtin-tiny-sd1",
            "folders.images": str(small_data),
            "folders.output": str(tmp_path / "out"),
            "folders.output_name": "test_lora",
            "network.rank": 4,
            "network.alpha": 2.0,
            "training.batch_size": 2,
            "training.epochs": 1,
            "training.seed": 7,
            "training.cpu_threads_per_process": 1,
            "buckets.step": 32,
            "optimizer.name": "AdamW",
            "optimizer.learning_rate": 1e-3,
            "optimizer.text_encoder_lr": 1e-3,
            "optimizer.scheduler": "constant",
            "optimizer.warmup_percent": 0.0,
            "training.save_precision": "float",
        }
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        if values.get("folders.images") == "synthetic":
            values["folders.images"] = str(images)
        if values.get("folders.regularization") == "synthetic":
            values["folders.regularization"] = str(reg)
        return RunConfig.from_values(values)

    return make
