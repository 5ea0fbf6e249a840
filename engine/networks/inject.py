"""Add a LoRA-family adapter to one model component with peft, on the layers Kohya's scripts train.

Targets follow sd-scripts' `networks/lora.py`: every Linear and Conv2d inside the UNet's
Transformer2DModel blocks (attention projections, proj_in/proj_out, feed-forward) and inside the
text encoder's CLIPAttention / CLIPMLP blocks. LoCon, LoHa and LoKr also take every Linear and
Conv2d inside ResnetBlock2D, Downsample2D and Upsample2D (conv1, conv2, conv_shortcut,
time_emb_proj, the samplers' conv) — never conv_in, conv_out or the time embedding, which sit
outside those blocks. Layers are found by the class of the block that holds them, so models of any
width (SD1, SD2, SDXL, tiny test models) get the same set.

Convolutions with a kernel wider than 1x1 take conv_rank/conv_alpha; 1x1 convolutions count as
linear layers and take rank/alpha, as in Kohya. peft's scaling lora_alpha / r equals Kohya's
alpha / rank.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import torch
from torch import nn

from engine.networks import COMPONENTS, NETWORK_TYPES
from engine.networks.dylora import make_dynamic
from engine.networks.norm_deltas import add_norm_deltas, find_norms, norm_delta_parameters
from engine.networks.peft_layers import ADAPTER_NAME, adapter_layers
from engine.networks.regularizers import install_dropouts
from engine.problems import ProblemError, error

Component = Literal["unet", "text_encoder", "text_encoder_2"]

def apply_network(
    model: nn.Module,
    *,
    component: str,
    network_type: str,
    rank: int,
    alpha: float,
    conv_rank: int = 0,
    conv_alpha: float = 0.0,
    dropout: float = 0.0,
    rank_dropout: float = 0.0,
    module_dropout: float = 0.0,
    use_tucker: bool = False,
    lokr_factor: int = -1,
    lokr_decompose_both: bool = False,
    lokr_full_matrix: bool = False,
    rank_dropout_scale: bool = False,
    dylora_unit: int = 1,
    train_norm: bool = False,
    dtype: torch.dtype | None = torch.float32,
    targets: list[str] | None = None,
) -> list[str]:
    """Inject the adapter in place, freeze the base weights and return the adapted module paths.

    conv_rank 0 leaves wide convolutions out (Kohya's meaning of conv_dim 0). `use_tucker` selects
    LyCORIS' Tucker (CP) form for wide convolutions in loha/lokr. The lokr_* options and
    rank_dropout_scale are LyCORIS' LoKr `factor`, `decompose_both`, `full_matrix` and
    `rank_dropout_scale` (see engine.config.settings_lycoris). dylora is a LoRA on lora's layers
    trained as sd-scripts' DyLoRA (engine.networks.dylora) in steps of `dylora_unit` ranks.
    `train_norm` (LyCORIS' option, engine.networks.norm_deltas) also trains the norm layers inside the
    adapted blocks of a denoiser. Adapter weights are kept in
    `dtype` (float32 by default) whatever the base model's dtype; None keeps peft's choice.
    """
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {COMPONENTS}, got {component!r}")
    _check_settings(network_type, rank, alpha, conv_rank, conv_alpha, dropout, rank_dropout, module_dropout)
    if lokr_factor == 0 or lokr_factor < -1 or int(lokr_factor) != lokr_factor:
        raise ProblemError([error("network.lokr_factor", f"{lokr_factor} is not a LoKr factor",
                                  "use -1 (automatic) or a whole number ≥ 1")])
    if train_norm:
        _check_train_norm(component, network_type, targets)
    if adapter_layers(model):
        raise ValueError(f"the {component} already carries a network; apply_network runs once per model")

    if network_type == "dylora":
        _check_dylora(rank, dylora_unit, dropout, rank_dropout, module_dropout)
        conv_rank = 0  # sd-scripts' DyLoRA trains lora's layers; tui-lora has no conv DyLoRA
    # a family may name its layers itself (FLUX.1: sd-scripts' list); otherwise they are found by block
    targets = {path: False for path in targets} if targets is not None else select_targets(model, component, network_type)
    wide_convs = [path for path, wide in targets.items() if wide]
    if conv_rank <= 0:
        targets = {path: wide for path, wide in targets.items() if not wide}
        wide_convs = []
    if not targets:
        raise ProblemError(
            [
                error(
                    "network.type",
                    f"found no layers to adapt in the {component} ({type(model).__name__})",
                    "the model must be a diffusers UNet2DConditionModel or a transformers CLIP text encoder",
                )
            ]
        )

    if network_type == "lokr" and lokr_full_matrix:
        # peft keeps a LoKr factor full once the rank reaches half its size (as LyCORIS did before
        # its full_matrix switch): a rank of the widest layer size makes every factor full.
        widest = max(max(_layer_sizes(model.get_submodule(path))) for path in targets)
        rank = conv_rank = max(rank, conv_rank, widest)
        alpha = conv_alpha = float(rank)
    config = _peft_config(
        network_type,
        sorted(targets),
        wide_convs,
        rank=rank,
        alpha=alpha,
        conv_rank=conv_rank,
        conv_alpha=conv_alpha,
        lokr_factor=int(lokr_factor),
        lokr_decompose_both=lokr_decompose_both,
        rank_dropout=rank_dropout,
        module_dropout=module_dropout,
        use_tucker=use_tucker,
    )
    from peft import inject_adapter_in_model

    inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    layers = adapter_layers(model)
    if network_type == "loha":
        for layer in layers.values():
            _init_loha_like_lycoris(layer)
    if network_type == "lokr":
        for layer in layers.values():
            _full_lokr_at_scale_one(layer)
    if network_type == "dylora":
        make_dynamic(model, int(dylora_unit))
    if train_norm:
        norms = find_norms(model, _container_types(component, network_type))
        if not norms:
            raise ProblemError([error("network.train_norm", f"the {component} has no norm layers inside the blocks "
                                      "the network adapts", "turn network.train_norm off")])
        add_norm_deltas(model, norms)

    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in network_parameters(model):
        if dtype is not None:
            parameter.data = parameter.data.to(dtype)
        parameter.requires_grad_(True)

    install_dropouts(model, dropout=dropout, rank_dropout=rank_dropout, module_dropout=module_dropout,
                     rank_dropout_scale=rank_dropout_scale)
    return sorted(layers)


def select_targets(model: nn.Module, component: str, network_type: str) -> dict[str, bool]:
    """Module paths to adapt, each mapped to True when it is a convolution wider than 1x1.

    Works on an adapted model too: a peft layer counts as the layer it wraps.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    containers = _container_types(component, network_type)
    targets: dict[str, bool] = {}

    def visit(module: nn.Module, path: str, inside: bool) -> None:
        inside = inside or isinstance(module, containers)
        layer = module.get_base_layer() if isinstance(module, BaseTunerLayer) else module
        if inside and isinstance(layer, (nn.Linear, nn.Conv2d)):
            targets[path] = isinstance(layer, nn.Conv2d) and tuple(layer.kernel_size) != (1, 1)
        if isinstance(module, BaseTunerLayer):
            return  # its children are the adapter's own layers
        for name, child in module.named_children():
            visit(child, f"{path}.{name}" if path else name, inside)

    visit(model, "", False)
    return targets


def network_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable adapter parameters of a model, in a stable order (for the optimizer)."""
    parameters: list[nn.Parameter] = []
    for layer in adapter_layers(model).values():
        for attribute in layer.adapter_layer_names:
            holder = getattr(layer, attribute, None)
            if holder is None or ADAPTER_NAME not in holder:
                continue
            entry = holder[ADAPTER_NAME]
            if isinstance(entry, nn.Parameter):
                parameters.append(entry)
            else:
                parameters.extend(entry.parameters())
    return parameters + norm_delta_parameters(model)


def _container_types(component: str, network_type: str) -> tuple[type, ...]:
    if component == "unet":
        from diffusers.models.downsampling import Downsample2D
        from diffusers.models.resnet import ResnetBlock2D
        from diffusers.models.transformers.transformer_2d import Transformer2DModel
        from diffusers.models.upsampling import Upsample2D

        if network_type in ("lora", "dylora"):
            return (Transformer2DModel,)
        return (Transformer2DModel, ResnetBlock2D, Downsample2D, Upsample2D)
    # CLIPSdpaAttention / CLIPFlashAttention2 of older transformers subclass CLIPAttention.
    from transformers.models.clip.modeling_clip import CLIPMLP, CLIPAttention

    return (CLIPAttention, CLIPMLP)


def _peft_config(
    network_type: str,
    targets: list[str],
    wide_convs: list[str],
    *,
    rank: int,
    alpha: float,
    conv_rank: int,
    conv_alpha: float,
    rank_dropout: float,
    module_dropout: float,
    use_tucker: bool,
    lokr_factor: int = -1,
    lokr_decompose_both: bool = False,
):
    # One alternation pattern keeps peft's per-layer pattern lookup to a single regex.
    rank_pattern: dict[str, int] = {}
    alpha_pattern: dict[str, float] = {}
    if wide_convs:
        pattern = "|".join(re.escape(path) for path in wide_convs)
        rank_pattern[pattern] = int(conv_rank)
        alpha_pattern[pattern] = float(conv_alpha)
    common = dict(target_modules=targets, rank_pattern=rank_pattern, alpha_pattern=alpha_pattern)
    if network_type in ("lora", "locon", "dylora"):
        from peft import LoraConfig

        # lora_dropout stays 0: peft drops the layer's input; Kohya's dropout acts on lora_down's output.
        return LoraConfig(
            r=int(rank), lora_alpha=float(alpha), lora_dropout=0.0, init_lora_weights=True, bias="none", **common
        )
    if network_type == "loha":
        from peft import LoHaConfig

        return LoHaConfig(
            r=int(rank),
            alpha=float(alpha),
            rank_dropout=float(rank_dropout),
            module_dropout=float(module_dropout),
            use_effective_conv2d=use_tucker,
            init_weights=True,
            **common,
        )
    from peft import LoKrConfig

    return LoKrConfig(
        r=int(rank),
        alpha=float(alpha),
        rank_dropout=float(rank_dropout),
        module_dropout=float(module_dropout),
        rank_dropout_scale=False,  # install_dropouts sets the run's choice
        use_effective_conv2d=use_tucker,
        decompose_both=lokr_decompose_both,
        decompose_factor=lokr_factor,
        init_weights="lycoris",
        **common,
    )


def _layer_sizes(layer: nn.Module) -> tuple[int, int]:
    if isinstance(layer, nn.Conv2d):
        return layer.in_channels, layer.out_channels
    return layer.in_features, layer.out_features


def _full_lokr_at_scale_one(layer: nn.Module) -> None:
    """LyCORIS' LokrModule applies a LoKr with both factors full at scale 1 (it sets alpha to the
    rank there), whatever alpha says; peft would scale it by alpha / r."""
    if ADAPTER_NAME in layer.lokr_w1 and ADAPTER_NAME in layer.lokr_w2:
        layer.alpha[ADAPTER_NAME] = float(layer.r[ADAPTER_NAME])
        layer.scaling[ADAPTER_NAME] = 1.0


@torch.no_grad()
def _init_loha_like_lycoris(layer: nn.Module) -> None:
    """LyCORIS' LoHa start values (peft's are far smaller), so LoHa learning rates carry over."""
    if ADAPTER_NAME in layer.hada_t1:
        nn.init.normal_(layer.hada_t1[ADAPTER_NAME], std=0.1)
        nn.init.normal_(layer.hada_t2[ADAPTER_NAME], std=0.1)
    nn.init.normal_(layer.hada_w1_a[ADAPTER_NAME], std=0.1)
    nn.init.normal_(layer.hada_w1_b[ADAPTER_NAME], std=1.0)
    nn.init.zeros_(layer.hada_w2_a[ADAPTER_NAME])
    nn.init.normal_(layer.hada_w2_b[ADAPTER_NAME], std=1.0)


def _check_train_norm(component: str, network_type: str, targets: list[str] | None) -> None:
    """LyCORIS trains norms for its own network types, in the denoiser's blocks found by class."""
    why = None
    if network_type not in ("locon", "loha", "lokr"):
        why = (f"{network_type} files hold no norm layers (LyCORIS' train_norm)", "use locon, loha or lokr, or turn it off")
    elif component != "unet":
        why = ("only the UNet's norm layers train (the text encoders' adapted blocks hold none)",
               "turn it off for text encoders")
    elif targets is not None:
        why = ("this model family's LoRA layout has no norm keys", "turn network.train_norm off")
    if why:
        raise ProblemError([error("network.train_norm", why[0], why[1])])


def _check_dylora(rank: int, unit: int, dropout: float, rank_dropout: float, module_dropout: float) -> None:
    problems = []
    if int(unit) != unit or unit < 1 or rank % unit:
        problems.append(error("network.dylora_unit", f"the rank ({rank}) must be a multiple of the DyLoRA unit ({unit})",
                              "pick a unit that divides the rank, such as 1"))
    if dropout or rank_dropout or module_dropout:
        problems.append(error("network.dropout", "DyLoRA trains without dropouts (sd-scripts' DyLoRA has none)",
                              "set network.dropout, rank_dropout and module_dropout to 0"))
    if problems:
        raise ProblemError(problems)


def _check_settings(
    network_type: str,
    rank: int,
    alpha: float,
    conv_rank: int,
    conv_alpha: float,
    dropout: float,
    rank_dropout: float,
    module_dropout: float,
) -> None:
    problems = []
    if network_type not in NETWORK_TYPES:
        choices = ", ".join(NETWORK_TYPES)
        problems.append(error("network.type", f"unknown network type {network_type!r}", f"use one of {choices}"))
    if int(rank) != rank or rank < 1:
        problems.append(error("network.rank", f"rank must be a whole number ≥ 1, got {rank}"))
    if not (alpha > 0 and math.isfinite(alpha)):
        problems.append(error("network.alpha", f"alpha must be a number > 0, got {alpha}", "alpha = rank: scale 1"))
    if network_type != "lora" and conv_rank > 0:
        if int(conv_rank) != conv_rank:
            problems.append(error("network.conv_rank", f"conv_rank must be a whole number, got {conv_rank}"))
        if not (conv_alpha > 0 and math.isfinite(conv_alpha)):
            problems.append(error("network.conv_alpha", f"conv_alpha must be a number > 0, got {conv_alpha}"))
    for field, value in (
        ("network.dropout", dropout),
        ("network.rank_dropout", rank_dropout),
        ("network.module_dropout", module_dropout),
    ):
        if not 0.0 <= value < 1.0:
            problems.append(error(field, f"must be at least 0 and below 1, got {value}"))
    if problems:
        raise ProblemError(problems)
