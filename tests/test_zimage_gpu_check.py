"""benchmarks/gpu_check.py's Z-Image-Turbo entries (bf16 and fp8 base), CPU side: the settings they
train with, and a dry run of both (small configs, same builder) through the real engine."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

from engine.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check_zimage", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zimage_entries_train_real_size_zimage_at_1024_px_with_the_usual_memory_settings(gpu_check):
    assert gpu_check.MODELS["zimage"][1] == gpu_check.MODELS["zimage-fp8"][1] == 1024
    cfg = RunConfig.from_values({**gpu_check.ZIMAGE_SETTINGS, "model.quick_pick": "custom", "model.path": "/models/z",
                                 "training.mixed_precision": "bf16", "training.fp8_base": True})
    assert (cfg.model.family, cfg.network.rank, cfg.optimizer.name) == ("zimage", 16, "AdamW8bit")
    assert cfg.training.gradient_checkpointing and cfg.training.cache_text_encoder_outputs


@pytest.mark.slow
def test_dry_run_trains_both_zimage_entries_with_the_embedders_kept_out_of_fp8(gpu_check):
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", "--only", "zimage,zimage-fp8"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "2 entries measured, 0 failed" in out
    turned = re.search(r"fp8: zimage-fp8: (\d+) frozen linears stored in float8_e4m3fn", out)
    assert turned, out[-3000:]
    transformer, _, _ = gpu_check.small_zimage_configs()
    n, refiners = transformer["n_layers"], transformer["n_refiner_layers"]
    # 8 linears per main and noise-refiner block (attention, feed-forward, adaLN), 7 per context refiner,
    # the x-embedder and the final layer's 2; the timestep (2) and caption (1) embedders stay in bf16.
    # The 7 LoRA-wrapped linears of each block count again: peft's wrapper shows its base layer's weight.
    stored = 8 * (n + refiners) + 7 * refiners + 1 + 2
    wrapped = 7 * (n + 2 * refiners)
    assert int(turned.group(1)) == stored + wrapped
