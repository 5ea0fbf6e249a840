"""`tui-lora validate` on a Z-Image run file: the real-size VRAM estimate with its breakdown, torch-free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_validate_prints_the_z_image_turbo_estimate_with_its_breakdown_without_torch(tmp_path):
    from engine.dataset.synthetic import make_synthetic_dataset

    images, _ = make_synthetic_dataset(tmp_path / "data")
    run_file = tmp_path / "zimage.yaml"
    run_file.write_text(f"folders: {{images: {images}, output: {tmp_path / 'out'}}}\n"
                        "model: {quick_pick: z-image-turbo}\n"
                        "training: {mixed_precision: bf16, gradient_checkpointing: true, fp8_base: true}\n")
    code = ("import json, sys; from tui_lora.cli import main; main(['validate', sys.argv[1]]); "
            "print(json.dumps([m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]))")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", code, str(run_file)], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=300)
    out, err = result.stdout, result.stderr
    assert json.loads(out.strip().splitlines()[-1]) == []  # the estimate needs no training library
    # the hub model is not cached here (offline): only that may be an error
    assert [line.split(":")[1].strip() for line in err.splitlines() if line.startswith("error:")] == ["model.path"]
    assert "estimated peak VRAM:" in out
    lines = {line.strip().split("  ")[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "6,155M parameters in fp8" in lines["transformer weights"]  # Z-Image's 6B single-stream transformer
    assert "4,022M parameters in bf16" in lines["text encoder 1 weights"]  # Qwen3-4B
    assert "activations" in lines and "allocator overhead" in lines
    assert "Tongyi-MAI/Z-Image-Turbo configs" in out
