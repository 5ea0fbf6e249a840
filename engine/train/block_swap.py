"""`training.blocks_to_swap`: the frozen weights of the last N blocks live off the GPU, each brought in
just before it runs and sent back after (sd-scripts' `library/custom_offloading_utils.py` design).

Generic: it takes a list of block modules in the order they run (the family says which:
`ModelFamily.swappable_blocks`). With n blocks and s swapped, a forward pass starts with blocks
[0, n−s) on the device and [n−s, n) off it. After block i < s runs, it goes off and block i + n − s comes
in, so the window slides down the stack and the pass ends with [s, n) on the device: exactly the blocks
the backward pass needs first. The backward pass walks up again: after block j ≥ n − s has its
gradients, it goes off and block j − (n − s) comes in, which restores the starting layout for the next
step. Only frozen weights move; the LoRA's own parameters (and their optimizer state) never leave.

Every move goes through a `Transfer`. `DeviceTransfer` copies on a side CUDA stream so a copy runs
beside the computation, and makes the compute stream wait for a block's copy just before the block
runs. On a CPU run the device is the CPU and the copies are free, but the same schedule runs; tests
inject a transfer that really takes the weights away (`tests/test_memory_savers.py`), so a block that
runs while it is off would fail, and the loss must match a run without swapping exactly.

A block's backward is over when the gradients of its inputs are complete (gradient hooks on the
inputs it was called with). Safety net besides the schedule: every block checks it is on the device in a
forward pre-hook and in a backward pre-hook (loading it at once if a prefetch was missed), and a pre-hook on the whole denoiser
puts every block back to the starting layout before each forward pass. Forward hooks that fire during
the backward pass (gradient checkpointing re-running a block) never send anything away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


def _in_backward() -> bool:
    return torch._C._current_graph_task_id() != -1


class DeviceTransfer:
    """Moves a block's frozen weights between the compute device and the offload device (CPU)."""

    def __init__(self, device: torch.device, offload: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.offload = torch.device(offload)
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.moves = 0
        self.bytes_moved = 0

    def _copy(self, params: list[nn.Parameter], target: torch.device) -> Any:
        for param in params:
            self.moves += 1
            self.bytes_moved += param.numel() * param.element_size()
        if not self.cuda:
            for param in params:
                param.data = param.data.to(target)
            return None
        compute = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(compute)  # the block's last use must be done before its weights move
        with torch.cuda.stream(self.stream):
            for param in params:
                old = param.data
                pinned = target.type == "cpu"
                param.data = old.to(target, non_blocking=True) if not pinned else \
                    torch.empty(old.shape, dtype=old.dtype, pin_memory=True).copy_(old, non_blocking=True)
                if old.is_cuda:
                    old.record_stream(self.stream)
        event = torch.cuda.Event()
        event.record(self.stream)
        return event

    def to_device(self, params: list[nn.Parameter]) -> Any:
        return self._copy(params, self.device)

    def to_offload(self, params: list[nn.Parameter]) -> Any:
        return self._copy(params, self.offload)

    def wait(self, handle: Any) -> None:
        if handle is not None:
            torch.cuda.current_stream(self.device).wait_event(handle)

    def place(self, params: list[nn.Parameter], on_device: bool) -> None:
        """Synchronous placement (set-up and the safety net)."""
        target = self.device if on_device else self.offload
        for param in params:
            param.data = param.data.to(target)
            self.moves += 1
            self.bytes_moved += param.numel() * param.element_size()


@dataclass
class _Block:
    module: nn.Module
    params: list[nn.Parameter]
    on_device: bool = True
    pending: Any = None  # the transfer's handle of a copy to the device in flight


@dataclass
class BlockSwap:
    """Swaps the frozen weights of the last `count` of `blocks` (0 < count < len(blocks))."""

    blocks: list[nn.Module]
    count: int
    transfer: Any
    log: list[tuple[str, int]] = field(default_factory=list)  # ("in"/"out", block index): the order of moves

    def __post_init__(self):
        n = len(self.blocks)
        if not 0 < self.count < n:
            raise ValueError(f"can swap 1 to {n - 1} of {n} blocks, not {self.count}")
        self.state = [_Block(b, [p for p in b.parameters() if not p.requires_grad]) for b in self.blocks]
        self.handles = []
        for index, block in enumerate(self.blocks):
            self.handles.append(block.register_forward_pre_hook(self._before_forward(index), with_kwargs=True))
            self.handles.append(block.register_forward_hook(self._after_forward(index)))
            self.handles.append(block.register_full_backward_pre_hook(self._before_backward(index)))

    @property
    def resident(self) -> int:
        return len(self.blocks) - self.count

    def swapped_parameters(self) -> set[int]:
        """ids of the weights that start off the device (the set-up places everything else)."""
        return {id(p) for state in self.state[self.resident:] for p in state.params}

    def on_device(self) -> list[bool]:
        return [state.on_device for state in self.state]

    # -- moves ----------------------------------------------------------------------------------
    def _bring(self, index: int) -> None:
        state = self.state[index]
        if not state.on_device:
            state.pending = self.transfer.to_device(state.params)
            state.on_device = True
            self.log.append(("in", index))

    def _send(self, index: int) -> None:
        state = self.state[index]
        if state.on_device:
            self._ready(index)
            self.transfer.to_offload(state.params)
            state.on_device = False
            self.log.append(("out", index))

    def _ready(self, index: int) -> None:
        """Block `index` is on the device and its copy has landed (loads it now if it was missed)."""
        state = self.state[index]
        if not state.on_device:
            self.transfer.place(state.params, on_device=True)
            state.on_device = True
            self.log.append(("late", index))
        if state.pending is not None:
            self.transfer.wait(state.pending)
            state.pending = None

    def reset(self) -> None:
        """The starting layout: [0, n−s) on the device, [n−s, n) off."""
        for index in range(len(self.blocks)):
            if index < self.resident:
                self._bring(index)
                self._ready(index)
            else:
                self._send(index)

    # -- hooks ----------------------------------------------------------------------------------
    def _before_forward(self, index: int):
        def hook(module, args, kwargs):
            self._ready(index)
            if index >= self.resident and torch.is_grad_enabled() and not _in_backward():
                self._watch_inputs(index, [*args, *kwargs.values()])
        return hook

    def _watch_inputs(self, index: int, inputs: list[Any]) -> None:
        """Call `_after_backward` once the gradients of the block's inputs are complete. (A module's full
        backward hook sees positional inputs only, and diffusers calls blocks with keywords.) What is
        left of the block's backward then only reaches its LoRA parameters, never its frozen weights."""
        tensors = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
        remaining = [len(tensors)]

        def one_done(grad):
            remaining[0] -= 1
            if remaining[0] == 0:
                self._after_backward(index)
        for tensor in tensors:
            tensor.register_hook(one_done)

    def _after_forward(self, index: int):
        def hook(module, args, output):
            if _in_backward() or index >= self.count:
                return  # a block re-run by checkpointing stays for its backward
            self._send(index)
            self._bring(index + self.resident)
        return hook

    def _before_backward(self, index: int):
        def hook(module, grad_output):
            self._ready(index)
        return hook

    def _after_backward(self, index: int) -> None:
        self._send(index)
        self._bring(index - self.resident)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


class DenoiserSwap:
    """Every swapped block list of one denoiser, reset before each of its forward passes."""

    def __init__(self, denoiser: nn.Module, groups: dict[str, list[nn.Module]], split: dict[str, int], transfer: Any):
        self.transfer = transfer
        self.swaps = {name: BlockSwap(groups[name], count, transfer) for name, count in split.items() if count}
        self.handle = denoiser.register_forward_pre_hook(lambda module, args: self._start())

    def _start(self) -> None:
        if not _in_backward():
            for swap in self.swaps.values():
                swap.reset()

    def place(self, denoiser: nn.Module, device: torch.device) -> int:
        """Put the denoiser on `device` except the swapped blocks' frozen weights; returns bytes kept off."""
        off = set().union(*(swap.swapped_parameters() for swap in self.swaps.values()))
        kept_off = 0
        for param in denoiser.parameters():
            if id(param) in off:
                param.data = param.data.to(self.transfer.offload)
                kept_off += param.numel() * param.element_size()
            else:
                param.data = param.data.to(device)
        for module in denoiser.modules():
            for name, buffer in list(module.named_buffers(recurse=False)):
                module._buffers[name] = buffer.to(device)
        for swap in self.swaps.values():
            for index, state in enumerate(swap.state):
                state.on_device = index < swap.resident
        return kept_off


def make_transfer(device: torch.device) -> DeviceTransfer:
    """The transfer a run uses (tests replace it with one that really takes the weights away)."""
    return DeviceTransfer(device)
