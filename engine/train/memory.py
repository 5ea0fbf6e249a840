"""Memory figures for the `step` event: VRAM from torch.cuda, RAM from psutil on CPU."""

from __future__ import annotations

from typing import Any

import torch

try:  # GPU utilisation is a bonus: nvidia-ml-py is optional
    import pynvml  # type: ignore
except ImportError:  # pragma: no cover - depends on the machine
    pynvml = None


class MemoryProbe:
    def __init__(self, device: torch.device):
        self.device = device
        self._nvml_handle = None
        if device.type == "cuda" and pynvml is not None:
            try:
                pynvml.nvmlInit()
                self._nvml_handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
            except Exception:  # noqa: BLE001 - no NVML on this machine
                self._nvml_handle = None

    def read(self) -> dict[str, Any]:
        if self.device.type == "cuda":
            index = self.device.index or 0
            free, total = torch.cuda.mem_get_info(index)
            stats = {
                "device": "cuda",
                "allocated": torch.cuda.memory_allocated(index),
                "reserved": torch.cuda.memory_reserved(index),
                "peak": torch.cuda.max_memory_allocated(index),
                "total": total,
            }
            if self._nvml_handle is not None:
                try:
                    stats["gpu_util"] = pynvml.nvmlDeviceGetUtilizationRates(self._nvml_handle).gpu
                except Exception:  # noqa: BLE001
                    pass
            return stats
        import psutil

        process = psutil.Process()
        return {"device": "cpu", "rss": process.memory_info().rss, "total": psutil.virtual_memory().total}
