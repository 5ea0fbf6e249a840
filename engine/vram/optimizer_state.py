"""Bytes of optimizer state each optimizer keeps per trained tensor (LoRA parameters are fp32).

Measured from the libraries' own `state` dicts after a step (see tests/test_vram.py):
- AdamW: exp_avg + exp_avg_sq (2×fp32) and a scalar step tensor.
- 8-bit (bitsandbytes): one byte per number per moment plus an fp32 absmax per 256-number block;
  tensors under 4096 numbers keep fp32 moments (bitsandbytes' min_8bit_size).
- Adafactor (no momentum): factored second moment, a row and a column vector per ≥2-D tensor
  (rows = all but the last dimension, columns = all but the second-to-last), plus an RMS scalar.
- Lion / SGD with momentum: one fp32 buffer. D-Adaptation: three (DAdaptLion two). Prodigy: four,
  but its copy of the start values is a single zero for a tensor that starts all zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Shape = tuple[int, ...]

_FULL_STATES = {
    "AdamW": 2, "Lion": 1, "SGDNesterov": 1,
    "DAdaptation": 3, "DAdaptAdamPreprint": 3, "DAdaptAdam": 3, "DAdaptLion": 2, "DAdaptSGD": 3,
    "DAdaptAdaGrad": 3, "Prodigy": 4,
}
_EIGHT_BIT_STATES = {"AdamW8bit": 2, "PagedAdamW8bit": 2, "Lion8bit": 1}
MIN_8BIT_SIZE = 4096
BLOCK = 256


def tensor_state_bytes(name: str, shape: Shape, starts_at_zero: bool = False, param_bytes: int = 4) -> int:
    """State bytes of one tensor; torch optimizers keep state like the parameter (2 bytes with full_bf16),
    bitsandbytes' 8-bit ones 8-bit moments (or fp32 for small tensors) whatever the parameter is."""
    if param_bytes != 4 and name not in _EIGHT_BIT_STATES:
        return tensor_state_bytes(name, shape, starts_at_zero) * param_bytes // 4
    numbers = math.prod(shape)
    if name in _EIGHT_BIT_STATES:
        moments = _EIGHT_BIT_STATES[name]
        if numbers < MIN_8BIT_SIZE:
            return moments * 4 * numbers
        return moments * (numbers + 4 * math.ceil(numbers / BLOCK))
    if name == "Adafactor":
        if len(shape) < 2:
            return 4 * numbers + 4
        rows = math.prod(shape[:-1])
        cols = math.prod(shape[:-2]) * shape[-1]
        return 4 * (rows + cols) + 4
    if name == "Prodigy" and starts_at_zero:
        return 3 * 4 * numbers + 4  # its copy of the start values is one zero for an all-zero tensor
    states = _FULL_STATES.get(name, 2)
    return states * 4 * numbers + (4 if name == "AdamW" else 0)


def optimizer_state_bytes(name: str, tensors: Iterable[tuple[Shape, bool]], param_bytes: int = 4) -> int:
    """State bytes over (shape, starts at zero) of every trained tensor."""
    tensors = list(tensors)
    shapes = [shape for shape, _ in tensors]
    total = sum(tensor_state_bytes(name, shape, zero, param_bytes) for shape, zero in tensors)
    if name in _EIGHT_BIT_STATES and any(math.prod(shape) >= MIN_8BIT_SIZE for shape in shapes):
        total += _EIGHT_BIT_STATES[name] * 256 * 4  # the shared quantisation maps
    return total


def is_eight_bit(name: str) -> bool:
    return name in _EIGHT_BIT_STATES
