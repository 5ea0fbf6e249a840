"""Kohya's network regularisers on peft adapters: network, rank and module dropout, and max-norm.

The dropouts act only while the adapted model is in training mode.

- lora / locon: a forward hook on peft's `lora_A` (Kohya's lora_down) works on the down
  projection's output, as sd-scripts does: module dropout skips the whole adapter for that forward,
  network dropout is ordinary dropout on that output, rank dropout zeroes whole ranks per sample and
  scales the kept ones by 1/(1-p). peft's own `lora_dropout` (on the layer's input) stays unused.
- loha / lokr: there is no down projection. Rank and module dropout follow LyCORIS' get_weight:
  rank dropout zeroes whole output rows of ΔW and, with rank_dropout_scale only, divides the kept
  rows by the kept fraction (peft's LoKr option; peft's LoHa always rescales, so LoHa's drop is
  ours); module dropout skips the adapter. Network dropout, which LyCORIS leaves unimplemented
  outside its bypass mode, is dropout on the adapter's added output ΔW·x, like LyCORIS' bypass mode.

Max-norm follows sd-scripts' apply_max_norm_regularization: the Frobenius norm of each module's
ΔW (scale included) is capped at max_norm by scaling the module's factors down.
"""

from __future__ import annotations

import types
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from engine.networks.peft_layers import ADAPTER_NAME, adapter_layers, layer_kind


class LoraDownDropout:
    """Forward hook for peft's lora_A: Kohya's module, network and rank dropout on its output."""

    def __init__(self, dropout: float, rank_dropout: float, module_dropout: float):
        self.dropout = dropout
        self.rank_dropout = rank_dropout
        self.module_dropout = module_dropout

    def __call__(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if not module.training:
            return None
        # Drawn on the CPU so the decision costs no device synchronisation.
        if self.module_dropout and torch.rand(()) < self.module_dropout:
            return torch.zeros_like(output)
        if self.dropout:
            output = F.dropout(output, p=self.dropout, training=True)
        if self.rank_dropout:
            output = output * self._rank_mask(module, output)
        return output

    def _rank_mask(self, module: nn.Module, output: torch.Tensor) -> torch.Tensor:
        batch = output.shape[0]
        if isinstance(module, nn.Conv2d):  # [B, r, H, W]
            rank = output.shape[1]
            shape = (batch, rank) + (1,) * (output.ndim - 2)
        else:  # [B, ..., r]
            rank = output.shape[-1]
            shape = (batch,) + (1,) * (output.ndim - 2) + (rank,)
        keep = torch.rand((batch, rank), device=output.device) > self.rank_dropout
        # Kohya rescales by the nominal keep rate, treating the step as if the rank were smaller.
        return (keep.to(output.dtype) / (1.0 - self.rank_dropout)).reshape(shape)


def install_dropouts(model: nn.Module, *, dropout: float, rank_dropout: float, module_dropout: float,
                     rank_dropout_scale: bool = False) -> int:
    """Set up the three dropouts on every adapter of `model`; returns the number of adapters.

    Called by apply_network; call it once per model.
    """
    layers = adapter_layers(model)
    for layer in layers.values():
        if layer_kind(layer) == "lora":
            if dropout or rank_dropout or module_dropout:
                hook = LoraDownDropout(dropout, rank_dropout, module_dropout)
                layer.lora_A[ADAPTER_NAME].register_forward_hook(hook)
            continue
        layer.rank_dropout[ADAPTER_NAME] = rank_dropout
        layer.module_dropout[ADAPTER_NAME] = module_dropout
        if layer_kind(layer) == "lokr":
            layer.rank_dropout_scale[ADAPTER_NAME] = rank_dropout_scale
        elif rank_dropout:
            layer.rank_dropout_scale = rank_dropout_scale
            layer.get_delta_weight = types.MethodType(_loha_delta_with_rank_dropout, layer)
        if dropout:
            layer.network_dropout = dropout
            # A bound method (not a closure) so copy.deepcopy rebinds it to the copied layer.
            layer._get_delta_activations = types.MethodType(_delta_with_dropout, layer)
    return len(layers)


def _delta_with_dropout(layer: nn.Module, adapter_name: str, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    delta = type(layer)._get_delta_activations(layer, adapter_name, x, *args, **kwargs)
    return F.dropout(delta, p=layer.network_dropout, training=layer.training)


def _loha_delta_with_rank_dropout(layer: nn.Module, adapter_name: str, *, apply_rank_dropout: bool = False) -> torch.Tensor:
    weight = type(layer).get_delta_weight(layer, adapter_name, apply_rank_dropout=False)
    if not apply_rank_dropout:
        return weight
    drop = (torch.rand(weight.size(0)) > layer.rank_dropout[adapter_name]).to(weight.dtype)
    if layer.rank_dropout_scale:
        drop = drop / drop.mean().clamp_min(1e-12)  # every row dropped: a zero change, not 0/0
    return weight * drop.view(-1, *[1] * (weight.ndim - 1)).to(weight.device)


@torch.no_grad()
def apply_max_norm(models: nn.Module | Iterable[nn.Module], max_norm: float) -> tuple[int, float, float]:
    """Cap each adapter's ΔW norm at max_norm; returns (keys_scaled, mean_norm, max_norm_seen).

    The norms reported are those after scaling, as sd-scripts reports them. Cheap enough for every
    step: LoRA norms come from r×r Gram matrices and LoKr norms from its two Kronecker factors;
    only LoHa builds its ΔW (as its own forward does anyway). One host synchronisation per call.
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    if isinstance(models, nn.Module):
        models = [models]
    norms: list[torch.Tensor] = []
    factors: list[list[torch.Tensor]] = []
    for model in models:
        for layer in adapter_layers(model).values():
            norm, layer_factors = _norm_and_factors(layer)
            norms.append(norm.float())
            factors.append(layer_factors)
    if not norms:
        return 0, 0.0, 0.0
    norm = _gather_on_cpu(norms)
    # Kohya's clamp(min=max_norm/2) only guards zero norms. A norm left a rounding error above the
    # cap by the previous step's scaling is not over it, so it is not counted again.
    over = norm > max_norm * (1 + 1e-6)
    ratio = torch.where(over, max_norm / norm, torch.ones_like(norm))
    for index in torch.nonzero(over).flatten().tolist():
        share = float(ratio[index]) ** (1.0 / len(factors[index]))
        for factor in factors[index]:
            factor.mul_(share)
    scaled = norm * ratio
    return int(over.sum()), float(scaled.mean()), float(scaled.max())


def _gather_on_cpu(values: list[torch.Tensor]) -> torch.Tensor:
    """Stack 0-d tensors to one CPU tensor with one transfer per device."""
    gathered = torch.empty(len(values))
    by_device: dict[torch.device, list[int]] = {}
    for index, value in enumerate(values):
        by_device.setdefault(value.device, []).append(index)
    for indices in by_device.values():
        gathered[indices] = torch.stack([values[i] for i in indices]).cpu()
    return gathered


def _norm_and_factors(layer: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """ΔW's Frobenius norm and the tensors whose product forms ΔW (each enters it linearly)."""
    kind = layer_kind(layer)
    if kind == "lora":
        down = layer.lora_A[ADAPTER_NAME].weight
        up = layer.lora_B[ADAPTER_NAME].weight
        return _product_norm(up.flatten(1), down.flatten(1)) * layer.scaling[ADAPTER_NAME], [down, up]
    if kind == "loha":
        names = ["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"]
        if ADAPTER_NAME in layer.hada_t1:
            names += ["hada_t1", "hada_t2"]
        delta = layer.get_delta_weight(ADAPTER_NAME)
        return delta.float().norm(), [getattr(layer, name)[ADAPTER_NAME] for name in names]
    # ‖w1 ⊗ w2‖ = ‖w1‖·‖w2‖, so LoKr never needs its full ΔW.
    w1_factors = _present(layer, ["lokr_w1"]) or _present(layer, ["lokr_w1_a", "lokr_w1_b"])
    w2_factors = _present(layer, ["lokr_w2"]) or _present(layer, ["lokr_w2_a", "lokr_w2_b", "lokr_t2"])
    w1_norm = w1_factors[0].float().norm() if len(w1_factors) == 1 else _product_norm(*w1_factors)
    if len(w2_factors) == 1:
        w2_norm = w2_factors[0].float().norm()
    elif len(w2_factors) == 2:
        w2_norm = _product_norm(*w2_factors)
    else:
        from peft.tuners.lokr.layer import make_weight_cp

        w2_a, w2_b, t2 = w2_factors
        w2_norm = make_weight_cp(t2.float(), w2_a.float(), w2_b.float()).norm()
    return w1_norm * w2_norm * abs(layer.scaling[ADAPTER_NAME]), w1_factors + w2_factors


def _present(layer: nn.Module, names: list[str]) -> list[torch.Tensor]:
    return [getattr(layer, name)[ADAPTER_NAME] for name in names if ADAPTER_NAME in getattr(layer, name)]


def _product_norm(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """‖left @ right‖ from the two r×r Gram matrices, without forming the product."""
    left, right = left.float(), right.float()
    squared = ((left.T @ left) * (right @ right.T)).sum()
    return squared.clamp(min=0).sqrt()
