"""The GPU's memory size without torch: NVML (nvidia-ml-py) when present, else the setting."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

GIB = 1024 ** 3


@lru_cache(maxsize=8)  # a GPU's size does not change while the program runs
def gpu_memory_bytes(index: int = 0) -> int | None:
    """Total memory of GPU `index` from NVML; None without NVML or a GPU. Imported lazily."""
    try:
        import pynvml  # type: ignore
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            return int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no driver, no device: NVML cannot tell
        return None


def planned_gpu_bytes(values: Mapping[str, Any]) -> tuple[int | None, str]:
    """(bytes, where the figure came from): this machine's GPU through NVML, else hardware.vram_gb."""
    ids = values.get("hardware.gpu_ids") or [0]
    found = gpu_memory_bytes(int(ids[0]))
    if found:
        return found, "this GPU"
    planned = values.get("hardware.vram_gb")
    if planned:
        return int(float(planned) * GIB), "hardware.vram_gb"
    return None, ""
