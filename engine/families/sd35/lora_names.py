"""SD 3.5 LoRA naming: diffusers `SD3Transformer2DModel` modules <-> sd-scripts' `networks/lora_sd3.py` keys.

sd-scripts trains SD3 LoRAs on Stability AI's own MMDiT code, so its files name SAI's modules, and
ComfyUI and Forge (whose SD3 models keep SAI's layout) answer to the same names:
`lora_unet_joint_blocks_<i>_<half>_<layer>`, where `<half>` is `x_block` (the image stream) or
`context_block` (the text stream) and `<layer>` is one of the Linear layers sd-scripts puts a LoRA
on (`attn_qkv`, `attn_proj`, `mlp_fc1`, `mlp_fc2`, `adaLN_modulation_1`, and on SD 3.5 Medium's
MMDiT-X blocks `attn2_qkv`, `attn2_proj`). Two places differ from diffusers' layout:

* SAI fuses q, k and v into one `qkv` layer where diffusers has three. A LoRA trained on the three
  (rank r each) is written as one LoRA on the fused layer: downs stacked (3r rows), ups placed
  block-diagonally, alpha × 3 so every reader's `alpha / rows of down` keeps each part's trained
  scale. Reading accepts that form and the plain one sd-scripts writes (one shared down).
* The last block's text half only modulates (it is "pre-only"); SAI orders its two modulation
  vectors shift, scale and diffusers scale, shift, so the up's two row halves are swapped.

CLIP-L and CLIP-G use `lora_te1_` and `lora_te2_` + the CLIP path, as sd-scripts writes them; T5-XXL
(`lora_te3_`) is never trained here. The same LoRAs can also be named in diffusers' own (peft)
form, which `StableDiffusion3Pipeline.load_lora_weights` reads: diffusers 0.42 has no converter for
sd-scripts' SD3 names, so a file meant for diffusers must be written that way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from engine.lorafile.names import UnknownKeyError, clip_kohya_path, split_underscored

UNET_PREFIX = "lora_unet_"
CLIP_PREFIXES = {"text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}  # CLIP-L, CLIP-G
T5_PREFIX = "lora_te3_"
DIFFUSERS_PREFIXES = {"unet": "transformer", "text_encoder": "text_encoder", "text_encoder_2": "text_encoder_2"}

# SAI layer (after `joint_blocks_<i>_`) -> the diffusers block modules it holds, in output order.
BLOCK: dict[str, tuple[str, ...]] = {
    "x_block_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "x_block_attn_proj": ("attn.to_out.0",),
    "x_block_attn2_qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"),
    "x_block_attn2_proj": ("attn2.to_out.0",),
    "x_block_mlp_fc1": ("ff.net.0.proj",),
    "x_block_mlp_fc2": ("ff.net.2",),
    "x_block_adaLN_modulation_1": ("norm1.linear",),
    "context_block_attn_qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "context_block_attn_proj": ("attn.to_add_out",),
    "context_block_mlp_fc1": ("ff_context.net.0.proj",),
    "context_block_mlp_fc2": ("ff_context.net.2",),
    "context_block_adaLN_modulation_1": ("norm1_context.linear",),
}
_PART_TO_LAYER = {part: name for name, parts in BLOCK.items() for part in parts}
_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")
_KOHYA_NAME = re.compile(r"lora_unet_joint_blocks_(\d+)_(\w+)")
_SWAPPED = "context_block_adaLN_modulation_1"  # swapped halves, in the last block only


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


def default_targets(denoiser: Any) -> list[str]:
    """The diffusers paths sd-scripts trains by default: every Linear of every joint block's two halves."""
    import torch

    return [path for path, module in denoiser.named_modules()
            if isinstance(module, torch.nn.Linear) and path.startswith("transformer_blocks.")
            and path.split(".", 2)[2] in _PART_TO_LAYER]


def kohya_groups(paths: list[str] | Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Kohya name -> the diffusers transformer paths it holds, for the blocks `paths` touch."""
    groups: dict[str, tuple[str, ...]] = {}
    for path in paths:
        index, part = _split_block_path(path)
        layer = _PART_TO_LAYER.get(part)
        if layer is None:
            raise UnknownKeyError(f"'{path}' is not a layer sd-scripts' SD3 LoRA can hold")
        groups[f"{UNET_PREFIX}joint_blocks_{index}_{layer}"] = tuple(f"transformer_blocks.{index}.{p}" for p in BLOCK[layer])
    return groups


def _split_block_path(path: str) -> tuple[int, str]:
    head, _, rest = path.partition(".")
    index, _, part = rest.partition(".")
    if head != "transformer_blocks" or not index.isdigit() or not part:
        raise UnknownKeyError(f"'{path}' is not inside an SD3 joint block (transformer_blocks.<i>.…)")
    return int(index), part


def fuse(parts: list[LoraWeights]) -> LoraWeights:
    """One LoRA on a fused layer equal to `parts` side by side (stacked downs, block-diagonal ups)."""
    import torch

    if len(parts) == 1:
        return parts[0]
    ranks, alphas = {p.rank for p in parts}, {float(p.alpha) for p in parts}
    if len(ranks) != 1 or len(alphas) != 1:
        raise ValueError(f"a fused qkv layer needs one rank and alpha for q, k and v; got ranks {sorted(ranks)}, "
                         f"alphas {sorted(alphas)}")
    rank = ranks.pop()
    up = torch.zeros(sum(p.up.shape[0] for p in parts), rank * len(parts), dtype=parts[0].up.dtype)
    row = 0
    for j, part in enumerate(parts):
        up[row:row + part.up.shape[0], j * rank:(j + 1) * rank] = part.up
        row += part.up.shape[0]
    return LoraWeights(torch.cat([p.down for p in parts], dim=0), up, alphas.pop() * len(parts))


def split(fused: LoraWeights, count: int) -> list[LoraWeights]:
    """The `count` equal parts of a fused LoRA (inverse of `fuse`; the plain shared-down form too)."""
    if count == 1:
        return [fused]
    rows = int(fused.up.shape[0])
    if rows % count:
        raise ValueError(f"a fused qkv LoRA with {rows} output rows cannot split into {count} equal parts")
    width, rank = rows // count, fused.rank // count
    if fused.rank % count == 0 and _block_diagonal(fused.up, width, rank, count):
        return [LoraWeights(fused.down[j * rank:(j + 1) * rank], fused.up[j * width:(j + 1) * width, j * rank:(j + 1) * rank],
                            fused.alpha / count) for j in range(count)]
    return [LoraWeights(fused.down, fused.up[j * width:(j + 1) * width], fused.alpha) for j in range(count)]


def _block_diagonal(up: Any, width: int, rank: int, count: int) -> bool:
    for j in range(count):
        rows = up[j * width:(j + 1) * width]
        outside = [rows[:, :j * rank], rows[:, (j + 1) * rank:]]
        if any(block.numel() and bool(block.any()) for block in outside):
            return False
    return True


def swap_halves(weights: LoraWeights) -> LoraWeights:
    """The same LoRA with its output's two halves exchanged (shift, scale <-> scale, shift)."""
    import torch

    first, second = weights.up.chunk(2, dim=0)
    return LoraWeights(weights.down, torch.cat([second, first], dim=0), weights.alpha)


def _is_last_context_modulation(name: str, last_block: int) -> bool:
    return name == f"{UNET_PREFIX}joint_blocks_{last_block}_{_SWAPPED}"


# ----------------------------------------------------------------------------- state dicts


def to_kohya(transformer: Mapping[str, LoraWeights], clips: Mapping[str, Mapping[str, LoraWeights]] | None = None, *,
             num_blocks: int) -> dict[str, Any]:
    """sd-scripts' state dict for LoRAs on diffusers transformer paths and CLIP paths by component.

    `num_blocks` is the transformer's joint-block count (its last block's modulation is swapped).
    Every part of a fused qkv must be present (a fused LoRA cannot leave one out).
    """
    out: dict[str, Any] = {}
    for name, paths in kohya_groups(list(transformer)).items():
        missing = [p for p in paths if p not in transformer]
        if missing:
            raise ValueError(f"{name} fuses {', '.join(paths)}; LoRA weights are missing for {', '.join(missing)}")
        weights = fuse([transformer[p] for p in paths])
        if _is_last_context_modulation(name, num_blocks - 1):
            weights = swap_halves(weights)
        _put(out, name, weights)
    for component, loras in (clips or {}).items():
        prefix = CLIP_PREFIXES.get(component)
        if prefix is None:
            raise ValueError(f"an SD 3.5 LoRA holds CLIP-L and CLIP-G text encoder layers, not {component}")
        for path, weights in loras.items():
            _put(out, prefix + clip_kohya_path(path).replace(".", "_"), weights)
    return out


def _put(out: dict[str, Any], name: str, weights: LoraWeights) -> None:
    import torch

    out[f"{name}.lora_down.weight"] = weights.down.contiguous()
    out[f"{name}.lora_up.weight"] = weights.up.contiguous()
    out[f"{name}.alpha"] = torch.tensor(float(weights.alpha))


def from_kohya(state: Mapping[str, Any], *, num_blocks: int | None = None) -> tuple[dict[str, LoraWeights], dict[str, dict[str, LoraWeights]]]:
    """(transformer LoRAs by diffusers path, {CLIP component: LoRAs by path}) from an sd-scripts SD3 state dict.

    `num_blocks` (the base's joint-block count) says which block is last; without it the highest
    block index in the file is taken. Unknown prefixes, T5 keys and a down without its up raise.
    """
    odd = sorted(key for key in state if not key.endswith(_SUFFIXES))
    if odd:
        raise UnknownKeyError(f"'{odd[0]}' is not a plain LoRA tensor (expected {', '.join(_SUFFIXES)}); "
                              "LyCORIS/DoRA parts cannot be read as an SD 3.5 LoRA")
    names = sorted({key.split(".", 1)[0] for key in state})
    blocks = [int(m.group(1)) for m in map(_KOHYA_NAME.fullmatch, names) if m]
    last = (num_blocks - 1) if num_blocks else (max(blocks) if blocks else -1)
    transformer: dict[str, LoraWeights] = {}
    clips: dict[str, dict[str, LoraWeights]] = {}
    for name in names:
        down, up = state.get(f"{name}.lora_down.weight"), state.get(f"{name}.lora_up.weight")
        if down is None or up is None:
            raise ValueError(f"'{name}' needs both lora_down.weight and lora_up.weight")
        alpha = state.get(f"{name}.alpha")
        weights = LoraWeights(down, up, float(alpha) if alpha is not None else float(down.shape[0]))
        if name.startswith(UNET_PREFIX):
            match = _KOHYA_NAME.fullmatch(name)
            if match is None or match.group(2) not in BLOCK:
                raise UnknownKeyError(f"'{name}' is not a layer of an SD3 joint block")
            index, layer = int(match.group(1)), match.group(2)
            if _is_last_context_modulation(name, last):
                weights = swap_halves(weights)
            for part, piece in zip(BLOCK[layer], split(weights, len(BLOCK[layer]))):
                transformer[f"transformer_blocks.{index}.{part}"] = piece
        elif name.startswith(T5_PREFIX):
            raise UnknownKeyError(f"'{name}' is a T5-XXL LoRA module; T5 is kept frozen and such files are not read")
        else:
            component = next((c for c, prefix in CLIP_PREFIXES.items() if name.startswith(prefix)), None)
            if component is None:
                raise UnknownKeyError(f"'{name}' is neither an SD3 transformer (lora_unet_) nor a CLIP-L/G "
                                      "(lora_te1_/lora_te2_) LoRA module")
            clips.setdefault(component, {})[split_underscored(name[len(CLIP_PREFIXES[component]):])] = weights
    return transformer, clips


def to_diffusers(loras: Mapping[str, Mapping[str, LoraWeights]]) -> dict[str, Any]:
    """diffusers' (peft) form: `<transformer|text_encoder|text_encoder_2>.<path>.lora_A/lora_B.weight`.

    That form has no alpha, and diffusers then scales by 1, so alpha / rank is folded into the up.
    """
    out: dict[str, Any] = {}
    for component, modules in loras.items():
        prefix = DIFFUSERS_PREFIXES.get(component)
        if prefix is None:
            raise ValueError(f"an SD 3.5 LoRA holds the transformer, CLIP-L and CLIP-G, not {component}")
        for path, weights in modules.items():
            out[f"{prefix}.{path}.lora_A.weight"] = weights.down.contiguous()
            out[f"{prefix}.{path}.lora_B.weight"] = (weights.up * (weights.alpha / weights.rank)).contiguous()
    return out


def from_diffusers(state: Mapping[str, Any]) -> dict[str, dict[str, LoraWeights]]:
    """The LoRAs of a diffusers-form file by component (alpha = rank: the scale sits in the up)."""
    by_prefix = {prefix: component for component, prefix in DIFFUSERS_PREFIXES.items()}
    out: dict[str, dict[str, LoraWeights]] = {}
    for key in sorted(state):
        if not key.endswith(".lora_A.weight"):
            if not key.endswith(".lora_B.weight"):
                raise UnknownKeyError(f"'{key}' is not a diffusers LoRA tensor (lora_A/lora_B)")
            continue
        head, _, path = key[: -len(".lora_A.weight")].partition(".")
        component = by_prefix.get(head)
        up = state.get(key[: -len("lora_A.weight")] + "lora_B.weight")
        if component is None or up is None:
            raise UnknownKeyError(f"'{key}' is not a transformer/text_encoder/text_encoder_2 LoRA with its lora_B")
        down = state[key]
        out.setdefault(component, {})[path] = LoraWeights(down, up, float(down.shape[0]))
    return out
