"""How many GPUs this machine has, without torch (the queue's CLI and worker stay light).

NVML (nvidia-ml-py, the `gpu-stats` extra) when installed, else the NVIDIA driver's
`/proc/driver/nvidia/gpus/` folder. Ids are the ones nvidia-smi shows. `TUI_LORA_FAKE_GPU_COUNT`
replaces the answer: tests use it to let CPU processes stand in for GPUs.
"""

from __future__ import annotations

import os
from pathlib import Path

FAKE_COUNT_ENV = "TUI_LORA_FAKE_GPU_COUNT"


def gpu_count() -> int:
    fake = os.environ.get(FAKE_COUNT_ENV, "").strip()
    if fake:
        return max(0, int(fake))
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - not installed, no driver: ask the driver's folder instead
        pass
    try:
        return sum(1 for _ in Path("/proc/driver/nvidia/gpus").iterdir())
    except OSError:
        return 0


def parse_gpu_list(text: str) -> list[int]:
    """`0,1` → [0, 1]; raises ValueError with a sentence for anything else."""
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise ValueError(f"'{text}' is not a list of GPU numbers (e.g. 0,1)")
        ids.append(int(part))
    if len(set(ids)) != len(ids):
        raise ValueError(f"'{text}' names a GPU twice")
    return ids


def check_gpu_ids(ids: list[int]) -> str | None:
    """Why these ids cannot be used here, or None."""
    count = gpu_count()
    if count == 0:
        return "no NVIDIA GPU was found on this machine; leave out --gpus to train on the CPU"
    missing = [i for i in ids if i >= count]
    if missing:
        return f"GPU {', '.join(map(str, missing))} does not exist: this machine has {count} (0–{count - 1})"
    return None
