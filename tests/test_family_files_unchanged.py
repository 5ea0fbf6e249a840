"""Each family's tiny run writes the same LoRA file as before the families moved into their packages.

The hashes in tests/data/family_lora_hashes.json were recorded on main before the restructuring (issue
22): a fixed seed, two steps on each family's built-in tiny model, the text encoder trained too. A hash
covers every tensor (name, dtype, shape, bytes) and the metadata minus the keys that hold a clock time.
Re-recorded once, deliberately, after issue 24's memory-saver settings added their `ss_*` keys
(ss_full_bf16, ss_full_fp16, ss_blocks_to_swap, ss_cpu_offload_checkpointing): the tensors were
unchanged. Re-record only for a deliberate format change: `TUI_LORA_RECORD_HASHES=1 pytest tests/test_family_files_unchanged.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.helpers import small_run, write_small_concepts

HASHES = Path(__file__).parent / "data" / "family_lora_hashes.json"
CLOCK_KEYS = ("modelspec.date", "ss_training_started_at", "ss_training_finished_at")
PICKS = ("builtin-tiny-sd1", "builtin-tiny-sd2-v", "builtin-tiny-sdxl", "builtin-tiny-flux1", "builtin-tiny-sd35",
         "builtin-tiny-zimage")


def lora_digest(path: Path) -> str:
    """sha256 over the tensors and the metadata that does not hold a clock time."""
    from safetensors import safe_open

    digest = hashlib.sha256()
    with safe_open(str(path), "pt") as handle:
        metadata = {k: v for k, v in (handle.metadata() or {}).items() if k not in CLOCK_KEYS}
        for name in sorted(handle.keys()):
            tensor = handle.get_tensor(name).contiguous()
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    digest.update(json.dumps(metadata, sort_keys=True).encode())
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("pick", PICKS)
def test_the_tiny_run_of_each_family_writes_the_recorded_lora_file(tmp_path, pick):
    import torch

    torch.set_num_threads(1)  # the same reduction order as when the hashes were recorded
    write_small_concepts(tmp_path / "images")
    small_run(tmp_path, "custom", model__path=pick, training__max_train_steps=2, optimizer__text_encoder_lr=1e-4)
    written = sorted((tmp_path / "out").rglob("*.safetensors"))
    assert len(written) == 1, written
    digest = lora_digest(written[0])
    recorded = json.loads(HASHES.read_text()) if HASHES.exists() else {}
    if os.environ.get("TUI_LORA_RECORD_HASHES"):
        recorded[pick] = digest
        HASHES.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    assert recorded.get(pick) == digest, f"{pick}: the LoRA file differs from the one recorded on main"
