"""SD 3.5 facts, torch-free: sd-scripts' strings and defaults, and the reference models' layer configs.

Values as sd-scripts writes and uses them (`sd3_train_network.py`, `library/sd3_train_utils.py`,
`library/train_util.py` `add_dit_training_arguments`, `library/sd3_utils.py`
`analyze_state_dict_state`, `library/sai_model_spec.py`): the variant names, the metadata strings,
the `sd35:` options with their defaults and the `ss_*` keys each is recorded under. The real-size
layer configs live in `configs/*.json` beside this module (diffusers' own config files of the
stabilityai repositories, trimmed to what the estimates read).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

# sd-scripts' model types (`analyze_state_dict_state`): what follows "stable-diffusion-3-" in
# modelspec.architecture, and what it records as ss_base_model_version.
VARIANTS = ("5-large", "5-medium", "medium")
LABELS = {"5-large": "SD 3.5 Large", "5-medium": "SD 3.5 Medium", "medium": "SD 3 Medium"}
ARCHITECTURE_PREFIX = "stable-diffusion-3"  # sai_model_spec.ARCH_SD3_M
IMPLEMENTATION = "diffusers"  # sai_model_spec.determine_implementation gives IMPL_DIFFUSERS for SD3 LoRAs
NATIVE_SIDE = 1024  # sd-scripts' default modelspec.resolution for SD3
# sd-scripts writes modelspec.prediction_type "epsilon" for SD3 (it marks only v-prediction otherwise).
PREDICTION_TYPE_WRITTEN = "epsilon"
HUB_IDS = {"5-large": "stabilityai/stable-diffusion-3.5-large", "5-medium": "stabilityai/stable-diffusion-3.5-medium"}
QUICK_PICKS = {"sd35-large": "5-large", "sd35-medium": "5-medium"}
CONFIG_FILES = {"5-large": "sd35_large.json", "5-medium": "sd35_medium.json"}

# The `sd35:` options: default and the ss_* key sd-scripts records each under (None: not recorded).
TRAINING_OPTIONS: dict[str, tuple[Any, str | None]] = {
    "weighting_scheme": ("uniform", "ss_weighting_scheme"),  # sigma_sqrt | logit_normal | mode | cosmap | none | uniform
    "logit_mean": (0.0, "ss_logit_mean"),
    "logit_std": (1.0, "ss_logit_std"),
    "mode_scale": (1.29, "ss_mode_scale"),
    "training_shift": (1.0, "ss_training_shift"),
    "t5xxl_max_token_length": (256, "ss_t5xxl_max_token_length"),
    "apply_lg_attn_mask": (False, "ss_apply_lg_attn_mask"),
    "apply_t5_attn_mask": (False, "ss_apply_t5_attn_mask"),
    "clip_l_dropout_rate": (0.0, "ss_clip_l_dropout_rate"),
    "clip_g_dropout_rate": (0.0, "ss_clip_g_dropout_rate"),
    "t5_dropout_rate": (0.0, "ss_t5_dropout_rate"),
}
WEIGHTING_SCHEMES = ("uniform", "none", "logit_normal", "mode", "sigma_sqrt", "cosmap")
T5_MAX_TOKENS_LIMIT = 512  # T5-XXL's tokenizer length; sd-scripts pads every caption to the setting
CLIP_TOKENS = 77


def variant_of_config(transformer_config: Mapping[str, Any]) -> str:
    """sd-scripts' model type from a diffusers transformer config: QK-norm marks 3.5, dual attention Medium."""
    if not transformer_config.get("qk_norm"):
        return "medium"
    return "5-medium" if transformer_config.get("dual_attention_layers") else "5-large"


def variant_of_sai_keys(keys: Any) -> str:
    """The same from a single file's tensor names (SAI layout), as `analyze_state_dict_state` tells them apart."""
    names = [str(key) for key in keys]
    if not any(name.endswith("joint_blocks.0.context_block.attn.ln_k.weight") for name in names):
        return "medium"
    return "5-medium" if any(".x_block.attn2.ln_k.weight" in name for name in names) else "5-large"


def is_sai_transformer(keys: Any) -> bool:
    """Whether tensor names hold an SD3 MMDiT in SAI's layout (joint blocks with context and x halves)."""
    names = [str(key) for key in keys]
    return any("joint_blocks.0.context_block." in n for n in names) and any("joint_blocks.0.x_block." in n for n in names)


def label(variant: str | None) -> str:
    return LABELS.get(variant or "", "SD 3.5")


def lora_architecture(variant: str | None) -> str:
    """modelspec.architecture of a LoRA: `stable-diffusion-3-5-large/lora` and so on."""
    return f"{ARCHITECTURE_PREFIX}-{variant or '5-large'}/lora"


def lora_metadata(variant: str | None, options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """SD 3.5's own metadata: base version, modelspec facts and the ss_* option keys.

    `options` holds `sd35:` values by short name; missing ones are sd-scripts' defaults. Unknown
    names raise ValueError (a typo would silently record a default otherwise).
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(TRAINING_OPTIONS))
    if unknown:
        raise ValueError(f"unknown sd35 option(s) {', '.join(unknown)}; expected {', '.join(TRAINING_OPTIONS)}")
    metadata = {
        "ss_base_model_version": variant or "5-large",
        "ss_v2": "False",
        "modelspec.architecture": lora_architecture(variant),
        "modelspec.implementation": IMPLEMENTATION,
        "modelspec.prediction_type": PREDICTION_TYPE_WRITTEN,
    }
    for name, (default, key) in TRAINING_OPTIONS.items():
        if key:
            metadata[key] = str(options.get(name, default))
    return metadata


@lru_cache(maxsize=None)
def reference_config(variant: str = "5-large") -> dict[str, Any]:
    """The real model's layer configs: {"denoiser", "text_encoders" [CLIP-L, CLIP-G, T5-XXL], "vae", ...}."""
    name = CONFIG_FILES.get(variant)
    if name is None:
        raise ValueError(f"no reference configs for {variant!r}; expected one of {', '.join(CONFIG_FILES)}")
    return json.loads((Path(__file__).with_name("configs") / name).read_text(encoding="utf-8"))
