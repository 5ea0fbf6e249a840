"""`training.cpu_offload_checkpointing`: what gradient checkpointing keeps, parked off the GPU.

With checkpointing, a block keeps only its input for the backward pass (it re-runs itself there).
Those inputs are saved tensors of the denoiser's forward pass; a saved-tensor hook around that pass
copies each one to the offload device (the CPU, pinned) as it is saved and back when the backward
pass unpacks it. Weights are never moved (they are on the device anyway), and a block re-run inside
the backward pass saves through checkpointing's own hooks, not these. On a CPU run the copies are
free, but the hooks run and count what they moved (`packed_bytes`), which the tests compare with the
estimate's term.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _is_weight(tensor: torch.Tensor) -> bool:
    return isinstance(tensor, nn.Parameter) or isinstance(getattr(tensor, "_base", None), nn.Parameter)


class SavedTensorOffload:
    """Saved-tensor hooks around every forward pass of one module while gradients are on."""

    def __init__(self, device: torch.device, offload: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.offload = torch.device(offload)
        self.packed_bytes = 0  # moved off during the last forward pass
        self.packed = 0
        self._contexts: list[Any] = []
        self.handles: list[Any] = []

    def _pack(self, tensor: torch.Tensor) -> Any:
        if _is_weight(tensor) or tensor.device != self.device:
            return tensor
        self.packed += 1
        self.packed_bytes += tensor.numel() * tensor.element_size()
        if self.offload.type == "cpu" and self.device.type == "cuda":
            parked = torch.empty(tensor.shape, dtype=tensor.dtype, layout=tensor.layout, pin_memory=True)
            parked.copy_(tensor, non_blocking=True)
        else:
            parked = tensor.to(self.offload)
        return (tensor.device, parked)

    def _unpack(self, packed: Any) -> torch.Tensor:
        if isinstance(packed, torch.Tensor):
            return packed
        device, parked = packed
        return parked.to(device, non_blocking=True)

    def attach(self, module: nn.Module) -> None:
        self.handles.append(module.register_forward_pre_hook(self._enter))
        self.handles.append(module.register_forward_hook(self._exit, always_call=True))

    def _enter(self, module, args) -> None:
        if torch.is_grad_enabled():
            self.packed_bytes = self.packed = 0
            context = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
            context.__enter__()
            self._contexts.append(context)
        else:
            self._contexts.append(None)

    def _exit(self, module, args, output) -> None:
        context = self._contexts.pop() if self._contexts else None
        if context is not None:
            context.__exit__(None, None, None)
