"""DyLoRA on peft LoRA layers, as sd-scripts' networks/dylora.py (DyLoRAModule.forward) trains it.

A DyLoRA is an ordinary LoRA whose ranks are trained in nested order, so its first k ranks work
as a smaller LoRA too. Each training forward of the model draws, for every layer, b from
0..rank-1 rounded down to a multiple of `unit` (sd-scripts draws in each layer's forward, which
every model forward calls once; drawing at the model's forward keeps gradient checkpointing's
recomputation on the same draw); only ranks b..b+unit-1 take gradients (the others are frozen for that
forward, so the optimizer leaves them alone entirely), the full-rank output is used, and the
adapter's output is multiplied by sqrt(rank / (b + unit)). In eval mode (samples, saving) the
layer is the plain LoRA the file holds.

peft keeps lora_A / lora_B as one Linear or Conv2d each; freezing part of a tensor is not
possible, so each is replaced by a `RankChunks` module holding one parameter per unit of ranks
(sd-scripts keeps one parameter per rank). `weight` gives the joined tensor, so exporting reads
it like peft's; loading goes through `load_weight`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.networks.peft_layers import ADAPTER_NAME, adapter_layers


class RankDraw:
    """The draw one adapted layer shares between its down (A) and up (B) projections."""

    def __init__(self, rank: int, unit: int):
        self.rank, self.unit = rank, unit
        self.factor = 1.0
        self.chunks: list[RankChunks] = []

    def draw(self) -> None:
        # Drawn on the CPU generator: seeded with the run, no device synchronisation.
        b = int(torch.randint(0, self.rank, ()))
        b -= b % self.unit
        for chunks in self.chunks:
            for index, parameter in enumerate(chunks.parts):
                parameter.requires_grad_(index == b // self.unit)
        self.factor = math.sqrt(self.rank / (b + self.unit))


class RankChunks(nn.Module):
    """lora_A (dim 0 = rank) or lora_B (dim 1 = rank) split into unit-sized trainable parts."""

    def __init__(self, original: nn.Module, rank_dim: int, unit: int, draw: RankDraw, *, scales: bool):
        super().__init__()
        weight = original.weight.detach()
        self.rank_dim = rank_dim
        self.parts = nn.ParameterList(nn.Parameter(part.clone()) for part in weight.split(unit, dim=rank_dim))
        self.conv = None
        if isinstance(original, nn.Conv2d):
            self.conv = dict(stride=original.stride, padding=original.padding, dilation=original.dilation,
                             groups=original.groups)
        self.draw_state = draw
        self.scales = scales  # the up projection applies the draw's factor
        draw.chunks.append(self)

    @property
    def weight(self) -> torch.Tensor:
        return torch.cat(tuple(self.parts), dim=self.rank_dim)

    @torch.no_grad()
    def load_weight(self, tensor: torch.Tensor) -> None:
        tensor = tensor.reshape(self.weight.shape)
        for part, piece in zip(self.parts, tensor.split(self.parts[0].shape[self.rank_dim], dim=self.rank_dim)):
            part.copy_(piece.to(part.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        out = F.conv2d(x, weight, **self.conv) if self.conv is not None else F.linear(x, weight)
        if self.training and self.scales:
            out = out * self.draw_state.factor
        return out


def make_dynamic(model: nn.Module, unit: int) -> int:
    """Turn every peft LoRA layer of `model` into a DyLoRA layer; returns how many were changed."""
    layers = adapter_layers(model)
    draws: list[RankDraw] = []
    for layer in layers.values():
        rank = int(layer.r[ADAPTER_NAME])
        if rank % unit:
            raise ValueError(f"rank {rank} is not a multiple of the DyLoRA unit {unit}")
        draw = RankDraw(rank, unit)
        down, up = layer.lora_A[ADAPTER_NAME], layer.lora_B[ADAPTER_NAME]
        layer.lora_A[ADAPTER_NAME] = RankChunks(down, 0, unit, draw, scales=False)
        layer.lora_B[ADAPTER_NAME] = RankChunks(up, 1, unit, draw, scales=True)
        draws.append(draw)
    model.register_forward_pre_hook(_DrawEachTrainingForward(draws))
    return len(layers)


class _DrawEachTrainingForward:
    def __init__(self, draws: list[RankDraw]):
        self.draws = draws

    def __call__(self, module: nn.Module, args) -> None:
        if module.training and torch.is_grad_enabled():
            for draw in self.draws:
                draw.draw()
