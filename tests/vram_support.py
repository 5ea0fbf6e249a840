"""Measuring what the memory model predicts: bytes autograd saves in a real forward pass."""

from __future__ import annotations

import torch


def storage_bytes(tensor: torch.Tensor) -> tuple[int, int]:
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


def saved_activation_bytes(module: torch.nn.Module, run, *, checkpointing: bool) -> int:
    """Distinct storage bytes packed for backward while `run()` does the forward pass.

    Parameters are left out (they exist anyway); with checkpointing the inputs each checkpointed
    unit keeps for its re-run count too (torch keeps them outside the saved-tensor hooks).
    """
    skip = {storage_bytes(p)[0] for p in module.parameters()}
    seen: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> None:
        pointer, size = storage_bytes(tensor)
        if pointer not in skip:
            seen[pointer] = size

    def pack(tensor):
        keep(tensor)
        return tensor

    if checkpointing:
        def checkpoint(unit, *args):
            for arg in args:
                if isinstance(arg, torch.Tensor):
                    keep(arg)
            return torch.utils.checkpoint.checkpoint(unit.__call__, *args, use_reentrant=False)

        module.enable_gradient_checkpointing(checkpoint)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = run()
    del output
    return sum(seen.values())
