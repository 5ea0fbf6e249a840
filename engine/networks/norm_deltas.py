"""LyCORIS' `train_norm`: learned offsets for the norm layers inside the adapted UNet blocks.

Follows LyCORIS' `lycoris/modules/norms.py` (NormModule) and the module search of
`lycoris/kohya.py`: with train_norm every GroupNorm / LayerNorm inside a block the network adapts
also gets a zero-initialised per-channel delta for its weight (`w_norm`) and bias (`b_norm`); the
layer then runs with weight + w_norm and bias + b_norm, which is exactly what ComfyUI's and
LyCORIS' loaders apply (`diff` patches at the file's strength). Text encoders keep their norms:
LyCORIS' CLIP targets (attention and MLP blocks) hold none.

The deltas are a child module of the norm (so they move with the model and show up in the
optimizer through `network_parameters`), and only the norms that carry one get a new forward:
with train_norm off nothing is touched and the step costs what it did.
"""

from __future__ import annotations

import types
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from engine.problems import Problem, ProblemError, error, warning

NORM_SUFFIXES = ("w_norm", "b_norm")
NORM_TYPES = (nn.GroupNorm, nn.LayerNorm)
_DELTA = "norm_delta"
_FIELD = "network.weights"


class NormDelta(nn.Module):
    """The learned weight and bias offsets of one norm layer (float32, zero at the start)."""

    def __init__(self, channels: int, has_bias: bool):
        super().__init__()
        self.w_norm = nn.Parameter(torch.zeros(channels))
        self.b_norm = nn.Parameter(torch.zeros(channels)) if has_bias else None


def _shifted(norm: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    delta: NormDelta = getattr(norm, _DELTA)
    weight = (norm.weight.float() + delta.w_norm.float()).to(x.dtype)
    bias = None if norm.bias is None else (norm.bias.float() + delta.b_norm.float()).to(x.dtype)
    return weight, bias


def _group_norm_forward(self: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    weight, bias = _shifted(self, x)
    return F.group_norm(x, self.num_groups, weight, bias, self.eps)


def _layer_norm_forward(self: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    weight, bias = _shifted(self, x)
    return F.layer_norm(x, self.normalized_shape, weight, bias, self.eps)


def find_norms(model: nn.Module, containers: tuple[type, ...]) -> list[str]:
    """Paths of the affine GroupNorm / LayerNorm layers inside blocks of the `containers` types."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    found: list[str] = []

    def visit(module: nn.Module, path: str, inside: bool) -> None:
        inside = inside or isinstance(module, containers)
        if inside and isinstance(module, NORM_TYPES) and getattr(module, "weight", None) is not None:
            found.append(path)
            return
        if isinstance(module, BaseTunerLayer):
            return
        for name, child in module.named_children():
            visit(child, f"{path}.{name}" if path else name, inside)

    visit(model, "", False)
    return found


def add_norm_deltas(model: nn.Module, paths: list[str]) -> list[str]:
    """Give each norm at `paths` a zero delta and the forward that applies it; returns the paths."""
    for path in paths:
        norm = model.get_submodule(path)
        delta = NormDelta(norm.weight.numel(), norm.bias is not None).to(norm.weight.device)
        norm.add_module(_DELTA, delta)
        forward = _group_norm_forward if isinstance(norm, nn.GroupNorm) else _layer_norm_forward
        norm.forward = types.MethodType(forward, norm)
    return sorted(paths)


def norm_deltas(model: nn.Module) -> dict[str, NormDelta]:
    """{norm path: its deltas} for every norm that trains (empty with train_norm off)."""
    return {path.rpartition(".")[0]: module for path, module in model.named_modules() if isinstance(module, NormDelta)}


def norm_delta_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for delta in norm_deltas(model).values() for p in delta.parameters()]


def export_norm_deltas(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """{norm path: {"w_norm": tensor, "b_norm": tensor}}, detached on the CPU."""
    out = {}
    for path, delta in norm_deltas(model).items():
        tensors = {"w_norm": delta.w_norm}
        if delta.b_norm is not None:
            tensors["b_norm"] = delta.b_norm
        out[path] = {key: value.detach().to("cpu", copy=True) for key, value in tensors.items()}
    return out


def is_norm_entry(tensors: Mapping[str, torch.Tensor]) -> bool:
    return "w_norm" in tensors


def import_norm_deltas(model: nn.Module, component: str, entries: Mapping[str, Mapping[str, torch.Tensor]],
                       resolve) -> list[Problem]:
    """Load a file's norm deltas (`entries`, all holding w_norm) into the model's; `resolve(path, known)`
    matches a file path to a model path. Everything is checked before anything is written."""
    deltas = norm_deltas(model)
    if entries and not deltas:
        raise ProblemError([error(_FIELD, f"the file trains {len(entries)} norm layer(s) of the {component} "
                                          "(LyCORIS train_norm), this run does not",
                                  "turn on network.train_norm to continue this file")])
    problems: list[Problem] = []
    matched: dict[str, Mapping[str, torch.Tensor]] = {}
    for path, tensors in entries.items():
        resolved = resolve(path, deltas)
        if resolved is None:
            problems.append(error(_FIELD, f"the file trains the norm {path}, which is not a trained norm of the "
                                          f"{component}", "the file was trained for another model or network type"))
            continue
        delta = deltas[resolved]
        for key in NORM_SUFFIXES:
            have = getattr(delta, key)
            if key in tensors and (have is None or tuple(tensors[key].shape) != tuple(have.shape)):
                problems.append(error(_FIELD, f"{path}.{key} has shape {tuple(tensors[key].shape)}, the model's "
                                              f"norm needs {None if have is None else tuple(have.shape)}",
                                      "the file was trained on another base model"))
        matched[resolved] = tensors
    if problems:
        raise ProblemError(problems)
    if deltas and not entries:
        problems.append(warning(_FIELD, f"the file has no norm deltas for the {component}; they start at zero",
                                "expected when the file was trained without train_norm"))
    with torch.no_grad():
        for path, tensors in matched.items():
            for key in NORM_SUFFIXES:
                if key in tensors:
                    getattr(deltas[path], key).copy_(tensors[key].to(torch.float32))
    return problems
