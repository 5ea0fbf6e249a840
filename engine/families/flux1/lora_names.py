"""FLUX.1 LoRA naming: diffusers `FluxTransformer2DModel` modules <-> Kohya (sd-scripts/BFL) keys.

sd-scripts trains Flux LoRAs on Black Forest Labs' own model code, so its files name the BFL
modules: `lora_unet_double_blocks_<i>_img_attn_qkv`, `..._single_blocks_<i>_linear1`, ... Where
diffusers has separate layers, BFL has one fused layer:

* a double block's `img_attn.qkv` is diffusers' `attn.to_q/to_k/to_v` (image stream), and
  `txt_attn.qkv` is `attn.add_q_proj/add_k_proj/add_v_proj` (text stream);
* a single block's `linear1` is `attn.to_q/to_k/to_v` and `proj_mlp` side by side.

A LoRA trained on the separate diffusers layers (each with its own down/up of rank r) is written as
one LoRA on the fused layer the way sd-scripts' `split_qkv` writes it: the downs stacked along the
rank (n·r rows) and the ups placed block-diagonally (each part's up in its own rows and rank
columns, zeros elsewhere), so the fused layer's output is exactly the parts' outputs side by side.

Alpha: every reader (sd-scripts, ComfyUI, diffusers) scales a module by `alpha / rows of its
down`. A fused module has n·r rows, so we store `alpha · n` to keep each part's trained scale
`alpha / r`. (sd-scripts' `split_qkv` stores alpha unchanged, so its own files read back at 1/n
strength on those layers; we do not copy that.)

Reading accepts both fused forms: block-diagonal ups (split back into the parts, rank n·r → r) and
the plain form sd-scripts writes by default (one LoRA on the fused layer: every part gets the
same down and its rows of the up, which is exact). The part widths come from the tensors (q, k
and v are as wide as the layer's input; the MLP takes the rest), never from FLUX.1's real sizes,
so tiny test models read back too.

CLIP-L (the first text encoder) uses `lora_te1_` + the CLIP path, as sd-scripts writes it; T5 is
never trained.

diffusers 0.42 pitfalls met here: its Kohya-Flux converter splits `linear1` at FLUX.1's real widths
(3072×3 + 12288), so a tiny model's `linear1` fails its size assertion; and it recognises the
converted CLIP keys only when some `out_proj` is among them (a file with CLIP q/k/v alone fails
with "Could not automatically infer state dict type"), so CLIP LoRAs should include out_proj.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from engine.lorafile.names import UnknownKeyError, clip_kohya_path, split_underscored

UNET_PREFIX = "lora_unet_"
CLIP_PREFIX = "lora_te1_"

# BFL module (after the block prefix) -> the diffusers modules it fuses, in output order.
DOUBLE_BLOCK: dict[str, tuple[str, ...]] = {
    "img_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "img_attn_proj": ("attn.to_out.0",),
    "img_mlp_0": ("ff.net.0.proj",),
    "img_mlp_2": ("ff.net.2",),
    "img_mod_lin": ("norm1.linear",),
    "txt_attn_qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "txt_attn_proj": ("attn.to_add_out",),
    "txt_mlp_0": ("ff_context.net.0.proj",),
    "txt_mlp_2": ("ff_context.net.2",),
    "txt_mod_lin": ("norm1_context.linear",),
}
SINGLE_BLOCK: dict[str, tuple[str, ...]] = {
    "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"),
    "linear2": ("proj_out",),
    "modulation_lin": ("norm.linear",),
}
_BLOCKS = {  # BFL block list -> (diffusers block list, its table)
    "double_blocks": ("transformer_blocks", DOUBLE_BLOCK),
    "single_blocks": ("single_transformer_blocks", SINGLE_BLOCK),
}
_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")
_KOHYA_NAME = re.compile(r"lora_unet_(double_blocks|single_blocks)_(\d+)_(\w+)")


@dataclass(frozen=True)
class LoraWeights:
    """One module's LoRA: `down` (rank × in), `up` (out × rank), `alpha` (scale = alpha / rank)."""

    down: Any
    up: Any
    alpha: float

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    def delta(self) -> Any:
        """The weight change this LoRA adds: up @ down × alpha / rank."""
        return (self.up.float() @ self.down.float()) * (self.alpha / self.rank)


def default_targets(num_double: int, num_single: int) -> list[str]:
    """The diffusers module paths sd-scripts trains by default: every linear of every block."""
    paths = [f"transformer_blocks.{i}.{part}" for i in range(num_double)
             for parts in DOUBLE_BLOCK.values() for part in parts]
    paths += [f"single_transformer_blocks.{i}.{part}" for i in range(num_single)
              for parts in SINGLE_BLOCK.values() for part in parts]
    return paths


def kohya_groups(paths: Mapping[str, Any] | list[str]) -> dict[str, tuple[str, ...]]:
    """Kohya name -> the diffusers transformer paths it fuses, for the blocks `paths` touch."""
    groups: dict[str, tuple[str, ...]] = {}
    for path in paths:
        block_list, index, rest = _split_block_path(path)
        bfl_list, table = next((bfl, table) for bfl, (ours, table) in _BLOCKS.items() if ours == block_list)
        bfl_name = next((name for name, parts in table.items() if rest in parts), None)
        if bfl_name is None:
            raise UnknownKeyError(f"'{path}' is not a module sd-scripts' Flux LoRA can hold")
        prefix = f"{block_list}.{index}."
        groups[f"{UNET_PREFIX}{bfl_list}_{index}_{bfl_name}"] = tuple(prefix + part for part in table[bfl_name])
    return groups


def _split_block_path(path: str) -> tuple[str, int, str]:
    head, _, rest = path.partition(".")
    index, _, rest = rest.partition(".")
    if head not in ("transformer_blocks", "single_transformer_blocks") or not index.isdigit() or not rest:
        raise UnknownKeyError(f"'{path}' is not inside a Flux double or single block")
    return head, int(index), rest


def fuse(parts: list[LoraWeights]) -> LoraWeights:
    """One LoRA on a fused layer equal to `parts` side by side (stacked downs, block-diagonal ups)."""
    import torch

    if len(parts) == 1:
        return parts[0]
    ranks = {part.rank for part in parts}
    alphas = {float(part.alpha) for part in parts}
    if len(ranks) != 1 or len(alphas) != 1:
        raise ValueError(f"fused Flux layers need one rank and alpha for all parts; got ranks {sorted(ranks)}, "
                         f"alphas {sorted(alphas)}")
    rank = ranks.pop()
    down = torch.cat([part.down for part in parts], dim=0)
    up = torch.zeros(sum(part.up.shape[0] for part in parts), rank * len(parts), dtype=parts[0].up.dtype)
    row = 0
    for j, part in enumerate(parts):
        up[row:row + part.up.shape[0], j * rank:(j + 1) * rank] = part.up
        row += part.up.shape[0]
    return LoraWeights(down, up, alphas.pop() * len(parts))


def split(fused: LoraWeights, widths: list[int]) -> list[LoraWeights]:
    """The parts of a fused LoRA whose outputs are `widths` rows (inverse of `fuse`; plain form too)."""
    count = len(widths)
    if count == 1:
        return [fused]
    if sum(widths) != fused.up.shape[0]:
        raise ValueError(f"a fused LoRA with {fused.up.shape[0]} output rows cannot split into {widths}")
    starts = [sum(widths[:j]) for j in range(count)]
    rank = fused.rank // count
    if fused.rank % count == 0 and _block_diagonal(fused.up, starts, widths, rank):
        return [LoraWeights(fused.down[j * rank:(j + 1) * rank],
                            fused.up[start:start + width, j * rank:(j + 1) * rank],
                            fused.alpha / count)
                for j, (start, width) in enumerate(zip(starts, widths))]
    # One LoRA over the whole fused layer: each part shares the down and keeps its rows of the up.
    return [LoraWeights(fused.down, fused.up[start:start + width], fused.alpha)
            for start, width in zip(starts, widths)]


def _block_diagonal(up: Any, starts: list[int], widths: list[int], rank: int) -> bool:
    for j, (start, width) in enumerate(zip(starts, widths)):
        rows = up[start:start + width]
        outside = [rows[:, :j * rank], rows[:, (j + 1) * rank:]]
        if any(block.numel() and bool(block.any()) for block in outside):
            return False
    return True


def part_widths(kohya_name: str, fused: LoraWeights) -> list[int]:
    """Output rows of each fused part, from the tensors: q, k, v are as wide as the layer's input."""
    count = len(_table_entry(kohya_name)[1])
    if count == 1:
        return [int(fused.up.shape[0])]
    inner = int(fused.down.shape[1])
    if kohya_name.endswith("_linear1"):
        return [inner] * 3 + [int(fused.up.shape[0]) - 3 * inner]
    return [inner] * count


def _table_entry(kohya_name: str) -> tuple[str, tuple[str, ...], int]:
    match = _KOHYA_NAME.fullmatch(kohya_name)
    if match is None:
        raise UnknownKeyError(f"'{kohya_name}' is not a Flux double/single block module name")
    bfl_list, index, bfl_name = match.group(1), int(match.group(2)), match.group(3)
    block_list, table = _BLOCKS[bfl_list]
    if bfl_name not in table:
        raise UnknownKeyError(f"'{bfl_name}' in '{kohya_name}' is not a layer of a Flux {bfl_list[:-1]}")
    return block_list, table[bfl_name], index


# ----------------------------------------------------------------------------- state dicts


def to_kohya(transformer: Mapping[str, LoraWeights], clip: Mapping[str, LoraWeights] | None = None) -> dict[str, Any]:
    """The Kohya-format state dict for LoRAs on diffusers transformer paths and CLIP-L paths.

    Every part of a fused layer must be present (a fused LoRA cannot leave a part out).
    """
    import torch

    out: dict[str, Any] = {}
    for name, paths in kohya_groups(list(transformer)).items():
        missing = [path for path in paths if path not in transformer]
        if missing:
            raise ValueError(f"{name} fuses {', '.join(paths)}; LoRA weights are missing for {', '.join(missing)}")
        _put(out, name, fuse([transformer[path] for path in paths]), torch)
    for path, weights in (clip or {}).items():
        _put(out, CLIP_PREFIX + clip_kohya_path(path).replace(".", "_"), weights, torch)
    return out


def _put(out: dict[str, Any], name: str, weights: LoraWeights, torch: Any) -> None:
    out[f"{name}.lora_down.weight"] = weights.down.contiguous()
    out[f"{name}.lora_up.weight"] = weights.up.contiguous()
    out[f"{name}.alpha"] = torch.tensor(float(weights.alpha))


def from_kohya(state: Mapping[str, Any]) -> tuple[dict[str, LoraWeights], dict[str, LoraWeights]]:
    """(transformer LoRAs, CLIP-L LoRAs) by diffusers path, from a Kohya Flux state dict.

    Unknown prefixes, T5 (`lora_te2_`) keys and a down without its up raise `UnknownKeyError`/`ValueError`.
    """
    odd = sorted(key for key in state if not key.endswith(_SUFFIXES))
    if odd:
        raise UnknownKeyError(f"'{odd[0]}' is not a plain LoRA tensor (expected {', '.join(_SUFFIXES)}); "
                              "LyCORIS/DoRA parts cannot be read as a Flux LoRA")
    names = {key.split(".", 1)[0] for key in state}
    transformer: dict[str, LoraWeights] = {}
    clip: dict[str, LoraWeights] = {}
    for name in sorted(names):
        down, up = state.get(f"{name}.lora_down.weight"), state.get(f"{name}.lora_up.weight")
        if down is None or up is None:
            raise ValueError(f"'{name}' needs both lora_down.weight and lora_up.weight")
        alpha = state.get(f"{name}.alpha")
        weights = LoraWeights(down, up, float(alpha) if alpha is not None else float(down.shape[0]))
        if name.startswith(UNET_PREFIX):
            block_list, parts, index = _table_entry(name)
            for part, piece in zip(parts, split(weights, part_widths(name, weights))):
                transformer[f"{block_list}.{index}.{part}"] = piece
        elif name.startswith(CLIP_PREFIX):
            clip[split_underscored(name[len(CLIP_PREFIX):])] = weights
        elif name.startswith("lora_te2_"):
            raise UnknownKeyError(f"'{name}' is a T5-XXL LoRA module; T5 is kept frozen and such files are not read")
        else:
            raise UnknownKeyError(f"'{name}' is neither a Flux transformer (lora_unet_) nor a CLIP-L (lora_te1_) "
                                  "LoRA module")
    return transformer, clip


def loras_from_peft(model: Any, adapter: str = "default") -> dict[str, LoraWeights]:
    """Every peft LoRA layer of `model` as `LoraWeights` by module path (alpha = peft's scaling × rank)."""
    found: dict[str, LoraWeights] = {}
    for path, module in model.named_modules():
        lora_a, lora_b = getattr(module, "lora_A", None), getattr(module, "lora_B", None)
        if lora_a is None or lora_b is None or adapter not in lora_a:
            continue
        down = lora_a[adapter].weight.detach().cpu()
        found[path] = LoraWeights(down, lora_b[adapter].weight.detach().cpu(), float(module.scaling[adapter]) * down.shape[0])
    return found
