"""Torch-free peak-VRAM estimate of a run, computed from the model's configs and the settings.

`estimate_vram(values)` gives named lines (weights, LoRA, gradients, optimizer state, activations,
backward memory, CUDA context, allocator overhead); `ways_to_fit` ranks setting changes by the
memory each saves; `gpu_memory_bytes` reads the GPU's size from NVML when it is there.
Family knowledge (reference configs, layer walks) is keyed by family name: sd1, sd2, sd2-v, sdxl, flux1.
"""

from .estimate import GIB, Line, VramEstimate, estimate_vram
from .fixes import Fix, plan_to_fit, ways_to_fit
from .gpu import gpu_memory_bytes, planned_gpu_bytes

__all__ = ["GIB", "Fix", "Line", "VramEstimate", "estimate_vram", "gpu_memory_bytes", "planned_gpu_bytes",
           "plan_to_fit", "ways_to_fit"]
