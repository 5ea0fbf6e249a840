"""Memory figures for the `step` event: VRAM from torch.cuda, RAM from psutil on CPU, and the GPU
load from NVML. The layout is engine/event_types.py's: the load goes beside `memory`, not in it."""

from __future__ import annotations

import torch

from ..event_types import MemoryFields

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

    def read(self) -> MemoryFields:
        if self.device.type == "cuda":
            index = self.device.index or 0
            free, total = torch.cuda.mem_get_info(index)
            return MemoryFields("cuda", allocated=torch.cuda.memory_allocated(index),
                                reserved=torch.cuda.memory_reserved(index),
                                peak=torch.cuda.max_memory_allocated(index), total=total)
        import psutil

        process = psutil.Process()
        return MemoryFields("cpu", rss=process.memory_info().rss, total=psutil.virtual_memory().total)

    def gpu_util(self) -> float | None:
        """Percent of the last sample period the GPU was busy; None when NVML cannot tell."""
        if self._nvml_handle is None:
            return None
        try:
            return float(pynvml.nvmlDeviceGetUtilizationRates(self._nvml_handle).gpu)
        except Exception:  # noqa: BLE001 - the driver may refuse a query; the load is a bonus
            return None
