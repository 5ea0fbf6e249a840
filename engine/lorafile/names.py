"""Module paths inside diffusers/transformers models <-> Kohya LoRA key prefixes.

A Kohya key is `<prefix>.<suffix>`, e.g.
`lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight`.
The prefix is `lora_unet_`, `lora_te_`, `lora_te1_` or `lora_te2_` followed by the module's dotted
path with every dot replaced by an underscore. Which *path* is used differs by family:

* SD 1.x / 2.x UNet: the diffusers path (`down_blocks.0.attentions.0...`). sd-scripts trains these
  on a UNet whose module names equal diffusers', so its files use the diffusers spelling.
* SDXL UNet: the original LDM/SGM path (`input_blocks.4.1...`, `middle_block.1...`,
  `output_blocks.0.1...`), because sd-scripts trains SDXL on its own copy of the SGM UNet.
  We derive the diffusers -> LDM numbering from the UNet's config (block types, layers per block),
  never from a fixed table, so tiny test UNets get correct names too.
* Text encoders: `lora_te_text_model_...` for the single CLIP of SD 1.x/2.x; `lora_te1_text_model_...`
  and `lora_te2_text_model_...` for SDXL's two. The `text_model.` part is always written, even when
  the installed transformers' `CLIPTextModel` has no `text_model` child (transformers >= 5.6).

What each loader accepts, and why we write exactly the forms above:

* Kohya scripts (networks/lora.py): build their module table from their own models with the rule
  above and match names exactly; any other spelling is silently ignored. This is the strictest
  loader, so it decides our choice.
* AUTOMATIC1111 (extensions-builtin/Lora): SD 1.x/2.x diffusers-form UNet keys and `lora_te_text_model_`
  keys are converted to its LDM module names; SDXL keys must already be LDM-form (`input_blocks`...)
  with `lora_te1_`/`lora_te2_`.
* ComfyUI (comfy/lora.py): maps both LDM-form and diffusers-form UNet keys, and for the text
  encoders only the six attention/MLP linears per layer (`self_attn_{q,k,v,out}_proj`, `mlp_fc1/2`)
  under `lora_te_text_model_encoder_layers_N_` (SD1/SD2) or `lora_te1_`/`lora_te2_` (SDXL).
* diffusers `load_lora_weights`: converts `lora_unet_` (both spellings; LDM blocks are renumbered
  with the UNet's config) and `lora_te_`/`lora_te1_`/`lora_te2_`; every `lora_down.weight` needs its
  `lora_up.weight`, and LyCORIS suffixes are rejected for SD UNets.

Reading goes the other way: a prefix is split at underscores and re-joined with the module names
that themselves contain underscores (`transformer_blocks`, `to_q`, ...). Names outside the
vocabulary below make the key "unknown", which callers report as an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, Literal, Mapping

Component = Literal["unet", "text_encoder", "text_encoder_2"]
Family = Literal["sd1", "sd2", "sdxl"]

COMPONENTS: tuple[Component, ...] = ("unet", "text_encoder", "text_encoder_2")
FAMILIES: tuple[Family, ...] = ("sd1", "sd2", "sdxl")

UNET_PREFIX = "lora_unet_"
SINGLE_TE_PREFIX = "lora_te_"
SDXL_TE_PREFIXES = {"text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}


@dataclass(frozen=True)
class NamingScheme:
    """How one Kohya naming scheme spells keys: a family picks its scheme by `ModelFamily.naming`."""

    te_prefixes: Mapping[str, str]  # text-encoder component -> key prefix
    ldm_unet: bool = False  # UNet keys use the original (LDM) block numbers, mapped from the UNet's config


# SD 1.x and 2.x share the diffusers-path spelling with one text encoder; SDXL numbers the UNet's
# LDM blocks and has two encoders.
SCHEMES: dict[str, NamingScheme] = {
    "sd1": NamingScheme({"text_encoder": SINGLE_TE_PREFIX}),
    "sd2": NamingScheme({"text_encoder": SINGLE_TE_PREFIX}),
    "sdxl": NamingScheme(SDXL_TE_PREFIXES, ldm_unet=True),
}

# The real SDXL base UNet config (only the keys the naming needs); used when reading an SDXL file
# without the caller's config.
SDXL_BASE_UNET_CONFIG: dict[str, Any] = {
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "layers_per_block": 2,
    "addition_embed_type": "text_time",
}

# Module names that contain underscores; everything else in a path is a single word or a number.
_COMPOUND_NAMES = (
    "down_blocks", "up_blocks", "mid_block", "transformer_blocks", "to_q", "to_k", "to_v", "to_out",
    "proj_in", "proj_out", "time_emb_proj", "conv_shortcut", "conv_in", "conv_out", "conv_norm_out",
    "time_embedding", "add_embedding", "class_embedding", "linear_1", "linear_2",
    "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
    "input_blocks", "middle_block", "output_blocks", "in_layers", "out_layers", "emb_layers",
    "skip_connection", "time_embed", "label_emb",
    "text_model", "self_attn", "q_proj", "k_proj", "v_proj", "out_proj", "layer_norm1",
    "layer_norm2", "final_layer_norm", "text_projection", "token_embedding", "position_embedding",
)
_SIMPLE_NAMES = frozenset({
    "attentions", "resnets", "downsamplers", "upsamplers", "attn1", "attn2", "ff", "net", "proj",
    "norm", "norm1", "norm2", "norm3", "conv", "conv1", "conv2", "op", "out", "embeddings",
    "encoder", "layers", "mlp", "fc1", "fc2",
})
# Longest first so `conv_norm_out` wins over `conv`.
_COMPOUND_PARTS = sorted((n.split("_") for n in _COMPOUND_NAMES), key=len, reverse=True)

# CLIPTextTransformer children: paths starting with these sit under `text_model.` in Kohya names.
_CLIP_TRANSFORMER_CHILDREN = ("embeddings", "encoder", "final_layer_norm")

# diffusers ResnetBlock2D child -> LDM ResBlock child.
_RESNET_TO_LDM = {
    "norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection",
}
_RESNET_FROM_LDM = {v: k for k, v in _RESNET_TO_LDM.items()}


class UnknownKeyError(ValueError):
    """A Kohya prefix (or module path) that names no module we know how to place."""


def _config_get(config: Any, key: str, default: Any = None) -> Any:
    if isinstance(config, Mapping):
        return config.get(key, default)
    return getattr(config, key, default)


def _per_block(value: Any, count: int) -> list[int]:
    if isinstance(value, int):
        return [value] * count
    values = [int(v) for v in value]
    if len(values) != count:
        raise ValueError(f"expected {count} values per block, got {values}")
    return values


def sdxl_block_map(unet_config: Any) -> dict[str, tuple[str, str]]:
    """Map each diffusers block path to (LDM block path, block kind) from a UNet config.

    Kinds: "resnet", "attention", "downsample", "upsample", "leaf" (a single layer such as
    `time_embedding.linear_1`). The LDM numbering follows the SGM UNet's construction order:
    input block 0 is conv_in; each down level adds one input block per layer (resnet at .0,
    transformer at .1) and, except the last level, one block whose .0 is the downsampler `op`;
    the middle block is resnet, transformer, resnet; each up level adds layers+1 output blocks,
    the last one of a level also holding the upsampler after its resnet (and transformer).
    """
    down_types = list(_config_get(unet_config, "down_block_types"))
    up_types = list(_config_get(unet_config, "up_block_types"))
    levels = len(down_types)
    layers = _per_block(_config_get(unet_config, "layers_per_block", 2), levels)
    mapping: dict[str, tuple[str, str]] = {
        "conv_in": ("input_blocks.0.0", "leaf"),
        "time_embedding.linear_1": ("time_embed.0", "leaf"),
        "time_embedding.linear_2": ("time_embed.2", "leaf"),
        "conv_norm_out": ("out.0", "leaf"),
        "conv_out": ("out.2", "leaf"),
    }
    if _config_get(unet_config, "addition_embed_type") == "text_time":
        mapping["add_embedding.linear_1"] = ("label_emb.0.0", "leaf")
        mapping["add_embedding.linear_2"] = ("label_emb.0.2", "leaf")

    index = 1
    for level, block_type in enumerate(down_types):
        has_attention = "Attn" in block_type
        for j in range(layers[level]):
            mapping[f"down_blocks.{level}.resnets.{j}"] = (f"input_blocks.{index}.0", "resnet")
            if has_attention:
                mapping[f"down_blocks.{level}.attentions.{j}"] = (f"input_blocks.{index}.1", "attention")
            index += 1
        if level < levels - 1:
            mapping[f"down_blocks.{level}.downsamplers.0"] = (f"input_blocks.{index}.0", "downsample")
            index += 1

    mid_type = _config_get(unet_config, "mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid_type is not None:
        mid_attention = "Attn" in mid_type
        mapping["mid_block.resnets.0"] = ("middle_block.0", "resnet")
        if mid_attention:
            mapping["mid_block.attentions.0"] = ("middle_block.1", "attention")
        mapping["mid_block.resnets.1"] = (f"middle_block.{2 if mid_attention else 1}", "resnet")

    index = 0
    up_layers = [n + 1 for n in reversed(layers)]
    for level, block_type in enumerate(up_types):
        has_attention = "Attn" in block_type
        for j in range(up_layers[level]):
            mapping[f"up_blocks.{level}.resnets.{j}"] = (f"output_blocks.{index}.0", "resnet")
            if has_attention:
                mapping[f"up_blocks.{level}.attentions.{j}"] = (f"output_blocks.{index}.1", "attention")
            if j == up_layers[level] - 1 and level < levels - 1:
                slot = 2 if has_attention else 1
                mapping[f"up_blocks.{level}.upsamplers.0"] = (f"output_blocks.{index}.{slot}", "upsample")
            index += 1
    return mapping


def _split_block(path: str, blocks: Mapping[str, Any]) -> tuple[str, str]:
    """Split `path` into (block path found in `blocks`, rest)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        if head in blocks:
            return head, ".".join(parts[cut:])
    raise UnknownKeyError(f"'{path}' is not inside any block of this UNet")


def _rename_child(rest: str, kind: str, table: Mapping[str, str], sampler: tuple[str, str]) -> str:
    if kind == "resnet":
        for old, new in sorted(table.items(), key=lambda item: -len(item[0])):
            if rest == old or rest.startswith(old + "."):
                return new + rest[len(old):]
        raise UnknownKeyError(f"'{rest}' is not a layer of a ResNet block")
    if kind in ("downsample", "upsample") and rest in sampler:
        return sampler[1] if rest == sampler[0] else rest
    return rest


def _join(head: str, rest: str) -> str:
    return f"{head}.{rest}" if rest else head


@dataclass
class SdxlUnetNames:
    """diffusers <-> LDM module paths for one SDXL-shaped UNet config."""

    unet_config: Any
    _to_ldm: dict[str, tuple[str, str]] = field(init=False, repr=False)
    _from_ldm: dict[str, tuple[str, str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._to_ldm = sdxl_block_map(self.unet_config)
        self._from_ldm = {ldm: (diffusers, kind) for diffusers, (ldm, kind) in self._to_ldm.items()}

    def to_ldm(self, path: str) -> str:
        head, rest = _split_block(path, self._to_ldm)
        ldm_head, kind = self._to_ldm[head]
        sampler = ("conv", "op") if kind == "downsample" else ("conv", "conv")
        if kind == "leaf" and rest:
            raise UnknownKeyError(f"'{path}' is not a layer of this UNet")
        return _join(ldm_head, _rename_child(rest, kind, _RESNET_TO_LDM, sampler))

    def to_diffusers(self, ldm_path: str) -> str:
        head, rest = _split_block(ldm_path, self._from_ldm)
        diffusers_head, kind = self._from_ldm[head]
        sampler = ("op", "conv") if kind == "downsample" else ("conv", "conv")
        if kind == "leaf" and rest:
            raise UnknownKeyError(f"'{ldm_path}' is not a layer of this UNet")
        return _join(diffusers_head, _rename_child(rest, kind, _RESNET_FROM_LDM, sampler))


def _underscored(path: str) -> str:
    return path.replace(".", "_")


def split_underscored(name: str) -> str:
    """Turn an underscored module name back into a dotted path using the known module names."""
    tokens = name.split("_")
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for parts in _COMPOUND_PARTS:
            if tokens[i:i + len(parts)] == parts:
                out.append("_".join(parts))
                i += len(parts)
                break
        else:
            token = tokens[i]
            if not (token.isdigit() or token in _SIMPLE_NAMES):
                raise UnknownKeyError(f"'{token}' in '{name}' is not a module name of an SD UNet or CLIP")
            out.append(token)
            i += 1
    return ".".join(out)


def clip_kohya_path(module_path: str) -> str:
    """The text-encoder path as Kohya spells it: always under `text_model.` (see module doc)."""
    if module_path.split(".")[0] in _CLIP_TRANSFORMER_CHILDREN:
        return "text_model." + module_path
    return module_path


class KohyaNames:
    """Both directions of the naming for one base family (and, for SDXL, one UNet config)."""

    def __init__(self, family: Family, unet_config: Any = None):
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
        self.family = family
        self.scheme = SCHEMES[family]
        if self.scheme.ldm_unet and unet_config is None:
            raise ValueError(f"{family} names need the UNet's config (pass unet.config)")
        self._sdxl = SdxlUnetNames(unet_config) if self.scheme.ldm_unet else None
        # Reading SD1/SD2 files never meets LDM names; reading SDXL ones uses this config.
        self._reader_sdxl = self._sdxl or SdxlUnetNames(unet_config or SDXL_BASE_UNET_CONFIG)

    # -- writing -----------------------------------------------------------------------------
    def te_prefix(self, component: Component) -> str:
        if len(self.scheme.te_prefixes) > 1:
            return self.scheme.te_prefixes[component]  # KeyError for "unet" is a caller bug
        if component not in self.scheme.te_prefixes:
            raise ValueError(f"{self.family} has one text encoder; got component {component!r}")
        return self.scheme.te_prefixes[component]

    def prefix(self, component: Component, module_path: str) -> str:
        """Kohya key prefix for a module, e.g. `lora_unet_input_blocks_4_1_proj_in`."""
        if component == "unet":
            path = self._sdxl.to_ldm(module_path) if self._sdxl else module_path
            return UNET_PREFIX + _underscored(path)
        if component not in SDXL_TE_PREFIXES:
            raise ValueError(f"unknown component {component!r}; expected one of {COMPONENTS}")
        return self.te_prefix(component) + _underscored(clip_kohya_path(module_path))

    # -- reading -----------------------------------------------------------------------------
    def parse(self, prefix: str) -> tuple[Component, str]:
        """(component, module path) for a Kohya prefix, in diffusers/transformers spelling.

        Text-encoder paths come back under `text_model.`; use `match_model_paths` to adapt them
        to a model whose CLIPTextModel has no `text_model` child. UNet prefixes are accepted in
        both the diffusers and the LDM spelling whatever the family.
        """
        component, body = split_component(prefix)
        path = split_underscored(body)
        if component == "unet" and path.split(".")[0] in ("input_blocks", "middle_block", "output_blocks",
                                                           "time_embed", "label_emb", "out"):
            path = self._reader_sdxl.to_diffusers(path)
        return component, path


def split_component(prefix: str) -> tuple[Component, str]:
    """('unet' | 'text_encoder' | 'text_encoder_2', rest of the prefix) from a Kohya prefix."""
    if prefix.startswith(UNET_PREFIX):
        return "unet", prefix[len(UNET_PREFIX):]
    if prefix.startswith(SINGLE_TE_PREFIX):
        return "text_encoder", prefix[len(SINGLE_TE_PREFIX):]
    for component, te_prefix in SDXL_TE_PREFIXES.items():
        if prefix.startswith(te_prefix):
            return component, prefix[len(te_prefix):]  # type: ignore[return-value]
    raise UnknownKeyError(f"'{prefix}' does not start with lora_unet_, lora_te_, lora_te1_ or lora_te2_")


def match_model_paths(component: Component, path: str, model_paths: Collection[str]) -> str | None:
    """The spelling of `path` that `model_paths` (a model's named_modules names) uses, or None."""
    if path in model_paths:
        return path
    if component != "unet" and path.startswith("text_model."):
        bare = path[len("text_model."):]
        if bare in model_paths:
            return bare
    return None
