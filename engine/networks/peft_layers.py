"""Which layers of a model carry the run's peft adapter, and of which kind.

The lookups every part of `engine.networks` shares (inject adds the adapter, dylora and the
regularizers change its layers, adapter_tensors reads them out); they sit below all of those so
none of them imports another to find the adapter.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

# peft supports several named adapters per layer; a run trains exactly one.
ADAPTER_NAME = "default"


def adapter_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The peft layers that carry our adapter, by their path in the model (the adapted module's path)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    found = {}
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer) and ADAPTER_NAME in _adapter_names(module):
            found[name] = module
    return found


def layer_kind(layer: nn.Module) -> Literal["lora", "loha", "lokr"]:
    """Which adapter family a peft layer belongs to (locon layers are lora layers on convolutions,
    DyLoRA layers are lora layers trained in rank steps)."""
    from peft.tuners.loha import LoHaLayer
    from peft.tuners.lokr import LoKrLayer
    from peft.tuners.lora import LoraLayer

    if isinstance(layer, LoraLayer):
        return "lora"
    if isinstance(layer, LoHaLayer):
        return "loha"
    if isinstance(layer, LoKrLayer):
        return "lokr"
    raise TypeError(f"not a LoRA, LoHa or LoKr layer: {type(layer).__name__}")


def _adapter_names(layer: nn.Module) -> set[str]:
    names: set[str] = set()
    for attribute in layer.adapter_layer_names:
        holder = getattr(layer, attribute, None)
        if holder is not None:
            names.update(holder.keys())
    return names
