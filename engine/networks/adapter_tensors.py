"""Trained adapter tensors in and out, in the neutral structure the LoRA file writer names.

The structure is `{module path: {suffix: tensor}}`: the path is the adapted module's dotted path in
the component as `named_modules()` gives it (`down_blocks.0.attentions.0.proj_in`; for CLIP text
encoders under transformers ≥ 5.6 `encoder.layers.0.self_attn.q_proj`, earlier
`text_model.encoder…`), the suffixes are Kohya's / LyCORIS' own:

- lora / locon: `lora_down.weight` [r, in] or [r, in, kh, kw], `lora_up.weight` [out, r] or
  [out, r, 1, 1], `alpha` (0-d). ΔW = up @ down · alpha / r.
- loha: `hada_w1_a` [out, r], `hada_w1_b` [r, in·kh·kw], `hada_w2_a`, `hada_w2_b` (Tucker form:
  `hada_w1_a` [r, out], `hada_w1_b` [r, in], `hada_t1`/`hada_t2` [r, r, kh, kw]) and `alpha`.
  ΔW = (w1_a @ w1_b) ⊙ (w2_a @ w2_b) · alpha / r with r = hada_w1_b.shape[0].
- lokr: `lokr_w1` or `lokr_w1_a`/`lokr_w1_b`, `lokr_w2` or `lokr_w2_a`/`lokr_w2_b` (+ `lokr_t2`) and
  `alpha`. ΔW = kron(w1, w2) · alpha / r with r from the last decomposed factor; when both factors
  are full matrices the loaders use scale 1, so the scale is folded into `lokr_w1` and alpha = r.

These are the formulas ComfyUI (comfy/weight_adapter) and AUTOMATIC1111 (extensions-builtin/Lora)
apply; peft's LoHa/LoKr tensors already have LyCORIS' orientation and alpha / r scaling.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import torch
from torch import nn

from engine.networks.inject import select_targets
from engine.networks.norm_deltas import export_norm_deltas, import_norm_deltas, is_norm_entry
from engine.networks.peft_layers import ADAPTER_NAME, adapter_layers, layer_kind
from engine.problems import Problem, ProblemError, error, warning

TensorsByModule = dict[str, dict[str, torch.Tensor]]

_LOHA_KEYS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2")
_LOKR_KEYS = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")
_FIELD = "network.weights"


def export_network(model: nn.Module, component: str) -> TensorsByModule:
    """Every adapter of the component as detached CPU tensors under Kohya's suffixes."""
    layers = adapter_layers(model)
    if not layers:
        raise ValueError(f"the {component} carries no network to export")
    return {
        path: {key: _to_cpu(value) for key, value in _layer_tensors(layer).items()} for path, layer in layers.items()
    } | export_norm_deltas(model)


def import_network(
    model: nn.Module,
    component: str,
    tensors_by_module: Mapping[str, Mapping[str, torch.Tensor]],
    *,
    strict: bool = True,
) -> list[Problem]:
    """Load tensors (as export_network gives them) into an already adapted model.

    The file's alpha replaces the layer's, so the model reproduces the file exactly. Everything is
    checked before anything is written; errors raise ProblemError (field network.weights). With
    strict=False, modules missing on either side become warnings (returned) and are skipped.
    """
    layers = adapter_layers(model)
    if not layers:
        raise ValueError(f"the {component} carries no network to load weights into")
    norm_entries = {path: tensors for path, tensors in tensors_by_module.items() if is_norm_entry(tensors)}
    tensors_by_module = {path: tensors for path, tensors in tensors_by_module.items() if path not in norm_entries}
    matched: dict[str, tuple[nn.Module, Mapping[str, torch.Tensor]]] = {}
    unknown: list[str] = []
    for path, tensors in tensors_by_module.items():
        resolved = _resolve_path(path, layers)
        if resolved is None:
            unknown.append(path)
        else:
            matched[resolved] = (layers[resolved], tensors)
    missing = sorted(set(layers) - set(matched))

    problems: list[Problem] = []
    report = error if strict else warning
    if unknown:
        problems.append(
            report(
                _FIELD,
                f"{len(unknown)} module(s) in the weights have no adapter in the {component}: {_first(unknown)}",
                "the file was trained for another model family or with another network type",
            )
        )
    if missing:
        problems.append(
            report(
                _FIELD,
                f"{len(missing)} adapter(s) of the {component} have no weights in the file: {_first(missing)}",
                "pick the network type the file was trained with (dim_from_weights reads it from the file)",
            )
        )
    for path, (layer, tensors) in matched.items():
        problems.extend(_check_module(component, path, layer, tensors))
    if any(problem.is_error for problem in problems):
        raise ProblemError(problems)
    problems.extend(import_norm_deltas(model, component, norm_entries, _resolve_path))

    with torch.no_grad():
        for layer, tensors in matched.values():
            _load_layer(layer, tensors)
    return problems


def infer_rank_alpha(
    tensors_by_module: Mapping[str, Mapping[str, torch.Tensor]], model: nn.Module | None = None
) -> tuple[int, float, int, float, str]:
    """(rank, alpha, conv_rank, conv_alpha, network_type) that rebuild the structure of the weights.

    rank/alpha come from linear layers and 1x1 convolutions, conv_rank/conv_alpha from wider
    convolutions; each is the most common value (ties: the larger). conv_rank and conv_alpha are 0
    when the weights hold no wide convolution. Modules of several components may be merged in one
    mapping under any distinct keys. LoHa/LoKr store wide convolutions as 2-D factors unless in
    Tucker form; pass the component `model` so those are recognised by the layer they adapt (without
    it they count as linear).
    """
    linear: list[tuple[int, float]] = []
    wide: list[tuple[int, float]] = []
    # LoKr modules with both factors full show no rank; LyCORIS stores alpha = its rank there.
    full_linear: list[tuple[int, float]] = []
    full_wide: list[tuple[int, float]] = []
    kinds: set[str] = set()
    # train_norm's norm deltas say nothing about the network's shape
    tensors_by_module = {path: tensors for path, tensors in tensors_by_module.items() if not is_norm_entry(tensors)}
    for path, tensors in tensors_by_module.items():
        kind = _tensors_kind(tensors)
        if kind is None:
            continue
        kinds.add(kind)
        rank = _tensors_rank(kind, tensors)
        alpha = float(tensors["alpha"].item()) if "alpha" in tensors else None
        is_wide = _tensors_wide(kind, tensors) or _model_layer_is_wide(model, path)
        if rank is None:
            rank = max(1, int(round(alpha))) if alpha else 1
            (full_wide if is_wide else full_linear).append((rank, float(rank)))
        else:
            (wide if is_wide else linear).append((rank, alpha if alpha is not None else float(rank)))
    linear, wide = linear or full_linear, wide or full_wide
    if not kinds:
        raise ProblemError([error(_FIELD, "the weights hold no LoRA, LoHa or LoKr modules")])
    if len(kinds) > 1:
        raise ProblemError([error(_FIELD, f"the weights mix network types: {', '.join(sorted(kinds))}")])
    kind = kinds.pop()
    if kind == "lora":
        kind = "locon" if wide or _has_non_attention_layers(model, tensors_by_module) else "lora"
    rank, alpha = _most_common(linear) if linear else _most_common(wide)
    conv_rank, conv_alpha = _most_common(wide) if wide else (0, 0.0)
    return rank, alpha, conv_rank, conv_alpha, kind


# ---- per-layer tensors -------------------------------------------------------------------------


def _layer_tensors(layer: nn.Module) -> dict[str, torch.Tensor]:
    """The layer's tensors under Kohya/LyCORIS suffixes, ΔW-equivalent under the loaders' formulas."""
    kind = layer_kind(layer)
    if kind == "lora":
        return {
            "lora_down.weight": layer.lora_A[ADAPTER_NAME].weight,
            "lora_up.weight": layer.lora_B[ADAPTER_NAME].weight,
            "alpha": torch.tensor(float(layer.lora_alpha[ADAPTER_NAME])),
        }
    names = _LOHA_KEYS if kind == "loha" else _LOKR_KEYS
    tensors = {name: getattr(layer, name)[ADAPTER_NAME] for name in names if ADAPTER_NAME in getattr(layer, name)}
    alpha = float(layer.alpha[ADAPTER_NAME])
    if kind == "lokr" and "lokr_w1" in tensors and "lokr_w2" in tensors:
        # Loaders ignore alpha when neither factor is decomposed: fold peft's scale into w1.
        tensors["lokr_w1"] = tensors["lokr_w1"] * layer.scaling[ADAPTER_NAME]
        alpha = float(layer.r[ADAPTER_NAME])
    tensors["alpha"] = torch.tensor(alpha)
    return tensors


def _check_module(component: str, path: str, layer: nn.Module, tensors: Mapping[str, torch.Tensor]) -> list[Problem]:
    expected = _layer_tensors(layer)
    expected.pop("alpha")
    given = {key: value for key, value in tensors.items() if key != "alpha"}
    where = f"{component} module {path}"
    hint = "train with the rank and network type of the file, or turn on network.dim_from_weights"
    if set(given) != set(expected):
        return [
            error(
                _FIELD,
                f"{where}: the file has {', '.join(sorted(given))}; the network needs {', '.join(sorted(expected))}",
                hint,
            )
        ]
    problems = []
    for key, value in given.items():
        if _squeeze_trailing(value.shape) != _squeeze_trailing(expected[key].shape):
            shapes = f"{key} has shape {list(value.shape)}, the network needs {list(expected[key].shape)}"
            problems.append(error(_FIELD, f"{where}: {shapes}", hint))
    return problems


def _load_layer(layer: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    kind = layer_kind(layer)
    rank = int(layer.r[ADAPTER_NAME])
    if kind == "lora":
        for key, module in (("lora_down.weight", layer.lora_A[ADAPTER_NAME]), ("lora_up.weight", layer.lora_B[ADAPTER_NAME])):
            if hasattr(module, "load_weight"):  # a DyLoRA projection: its weight is joined from parts
                module.load_weight(tensors[key])
            else:
                module.weight.copy_(tensors[key].reshape(module.weight.shape).to(module.weight.dtype))
    else:
        names = _LOHA_KEYS if kind == "loha" else _LOKR_KEYS
        targets = {name: getattr(layer, name)[ADAPTER_NAME] for name in names if ADAPTER_NAME in getattr(layer, name)}
        for key, parameter in targets.items():
            parameter.copy_(tensors[key].reshape(parameter.shape).to(parameter.dtype))

    # The file's scale: alpha over the rank its loaders read (missing alpha means scale 1).
    file_rank = _tensors_rank(kind, tensors)
    if file_rank is None:
        scale = 1.0
    elif "alpha" in tensors:
        scale = float(tensors["alpha"].item()) / file_rank
    else:
        scale = 1.0
    if kind == "lora":
        layer.lora_alpha[ADAPTER_NAME] = scale * rank
    else:
        layer.alpha[ADAPTER_NAME] = scale * rank
    layer.scaling[ADAPTER_NAME] = scale


# ---- reading a tensor structure ----------------------------------------------------------------


def _tensors_kind(tensors: Mapping[str, torch.Tensor]) -> str | None:
    if "lora_down.weight" in tensors:
        return "lora"
    if "hada_w1_a" in tensors:
        return "loha"
    if any(key in tensors for key in _LOKR_KEYS):
        return "lokr"
    return None


def _tensors_rank(kind: str, tensors: Mapping[str, torch.Tensor]) -> int | None:
    """The rank the loaders divide alpha by (None: LoKr with both factors full, scale 1)."""
    if kind == "lora":
        return int(tensors["lora_down.weight"].shape[0])
    if kind == "loha":
        return int(tensors["hada_w1_b"].shape[0])
    if "lokr_w2_b" in tensors:
        return int(tensors["lokr_w2_b"].shape[0])
    if "lokr_w1_b" in tensors:
        return int(tensors["lokr_w1_b"].shape[0])
    return None


def _tensors_wide(kind: str, tensors: Mapping[str, torch.Tensor]) -> bool:
    """True when the shapes alone show a convolution wider than 1x1."""
    if kind == "lora":
        down = tensors["lora_down.weight"]
        return down.ndim == 4 and tuple(down.shape[2:]) != (1, 1)
    core = tensors.get("hada_t1") if kind == "loha" else tensors.get("lokr_t2", tensors.get("lokr_w2"))
    return core is not None and core.ndim == 4 and tuple(core.shape[2:]) != (1, 1)


def _model_layer_is_wide(model: nn.Module | None, path: str) -> bool:
    layer = _find_module(model, path)
    if layer is None:
        return False
    if hasattr(layer, "get_base_layer"):
        layer = layer.get_base_layer()
    return isinstance(layer, nn.Conv2d) and tuple(layer.kernel_size) != (1, 1)


def _has_non_attention_layers(model: nn.Module | None, tensors_by_module: Mapping[str, object]) -> bool:
    """LoCon without wide convolutions (conv rank 0) still adapts the ResNet blocks' linear layers."""
    if model is None:
        return False
    attention = select_targets(model, "unet", "lora")
    everything = select_targets(model, "unet", "locon")
    outside = set(everything) - set(attention)
    return any(_resolve_path(path, outside) in outside for path in tensors_by_module)


def _find_module(model: nn.Module | None, path: str) -> nn.Module | None:
    if model is None:
        return None
    for candidate in _path_variants(path):
        try:
            return model.get_submodule(candidate)
        except AttributeError:
            continue
    return None


def _resolve_path(path: str, known: Mapping[str, object] | set[str]) -> str | None:
    for candidate in _path_variants(path):
        if candidate in known:
            return candidate
    return None


def _path_variants(path: str) -> list[str]:
    # CLIPTextModel lost its `text_model.` level in transformers 5.6; accept weights from either side.
    if path.startswith("text_model."):
        return [path, path[len("text_model.") :]]
    return [path, f"text_model.{path}"]


def _most_common(values: list[tuple[int, float]]) -> tuple[int, float]:
    counts = Counter(values)
    return max(counts, key=lambda value: (counts[value], value))


def _squeeze_trailing(shape: torch.Size) -> tuple[int, ...]:
    dims = list(shape)
    while len(dims) > 2 and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def _first(paths: list[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _to_cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu", copy=True).contiguous()
