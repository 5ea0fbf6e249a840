"""FLUX.1 facts, torch-free, ready for the coming `flux1` family object (not registered yet).

Values as sd-scripts writes and uses them (`flux_train_network.py`, `library/flux_train_utils.py`,
`library/sai_model_spec.py`): the metadata strings, the `flux:` options with their defaults and the
`ss_*` keys each is recorded under, plus the reference layer configs for size/memory estimates.
Nothing here is shown to users until Flux training is wired; then the family object reads these.
"""

from __future__ import annotations

from typing import Any, Mapping

from engine.families.common.sd_reference import CLIP_L

BASE_MODEL_VERSION = "flux1"  # ss_base_model_version (sd-scripts' MODEL_VERSION_FLUX_V1)
# modelspec.architecture of the base by variant; a LoRA's adds "/lora". "flux-1" when unknown.
ARCHITECTURES = {"dev": "flux-1-dev", "schnell": "flux-1-schnell"}
UNKNOWN_ARCHITECTURE = "flux-1"
IMPLEMENTATION = "https://github.com/black-forest-labs/flux"  # modelspec.implementation
NATIVE_SIDE = 1024  # sd-scripts' default modelspec.resolution for Flux is 1024x1024
# sd-scripts writes no modelspec.prediction_type for Flux (flow matching is neither ε nor v).
WRITES_PREDICTION_TYPE = False
HUB_IDS = {"dev": "black-forest-labs/FLUX.1-dev", "schnell": "black-forest-labs/FLUX.1-schnell"}
KOHYA_PREFIXES = ("lora_unet_", "lora_te1_")  # transformer, CLIP-L (T5 is never trained)

# The `flux:` options: default, and the ss_* key sd-scripts records each under.
TRAINING_OPTIONS: dict[str, tuple[Any, str]] = {
    "timestep_sampling": ("sigma", "ss_timestep_sampling"),  # sigma | uniform | sigmoid | shift | flux_shift
    "sigmoid_scale": (1.0, "ss_sigmoid_scale"),
    "discrete_flow_shift": (3.0, "ss_discrete_flow_shift"),
    "model_prediction_type": ("sigma_scaled", "ss_model_prediction_type"),  # raw | additive | sigma_scaled
    "guidance_scale": (3.5, "ss_guidance_scale"),
    "apply_t5_attn_mask": (False, "ss_apply_t5_attn_mask"),
}
# sd-scripts also records its loss weighting (tui-lora has no such option yet: its defaults apply).
WEIGHTING_DEFAULTS = {"ss_weighting_scheme": "none", "ss_logit_mean": 0.0, "ss_logit_std": 1.0, "ss_mode_scale": 1.29}
# T5 tokens when `t5xxl_max_token_length` is unset: [schnell] was distilled at 256, [dev] at 512.
T5_MAX_TOKENS = {"dev": 512, "schnell": 256}

REFERENCE_CONFIGS: dict[str, Any] = {
    "transformer": {
        "num_layers": 19, "num_single_layers": 38, "attention_head_dim": 128, "num_attention_heads": 24,
        "joint_attention_dim": 4096, "pooled_projection_dim": 768, "in_channels": 64,
    },
    "text_encoders": [CLIP_L, {"d_model": 4096, "d_ff": 10240, "num_layers": 24, "num_heads": 64, "d_kv": 64}],
    "vae": {"latent_channels": 16, "scaling_factor": 0.3611, "shift_factor": 0.1159},
}


def variant_of_config(transformer_config: Mapping[str, Any]) -> str:
    """'dev' or 'schnell' from a diffusers transformer config: only [dev] embeds the guidance scale."""
    return "dev" if transformer_config.get("guidance_embeds") else "schnell"


def variant_of_bfl_keys(keys: Any) -> str:
    """'dev' or 'schnell' from a BFL single file's tensor names (as sd-scripts tells them apart)."""
    return "dev" if any(str(key).startswith("guidance_in.") for key in keys) else "schnell"


def is_bfl_transformer(keys: Any) -> bool:
    """Whether tensor names are a FLUX.1 transformer in BFL's layout (double and single blocks)."""
    names = [str(key) for key in keys]
    return any(n.startswith("double_blocks.") for n in names) and any(n.startswith("single_blocks.") for n in names)


def lora_architecture(variant: str | None) -> str:
    """modelspec.architecture of a LoRA for this variant (`flux-1/lora` when unknown)."""
    return ARCHITECTURES.get(variant or "", UNKNOWN_ARCHITECTURE) + "/lora"


def lora_metadata(variant: str | None, options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The Flux-specific metadata of a LoRA: base version, modelspec facts and the ss_* option keys.

    `options` holds the `flux:` values by short name; missing ones are sd-scripts' defaults.
    Unknown option names raise ValueError (a caller passing a typo would silently record a default).
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(TRAINING_OPTIONS))
    if unknown:
        raise ValueError(f"unknown flux option(s) {', '.join(unknown)}; expected {', '.join(TRAINING_OPTIONS)}")
    metadata = {
        "ss_base_model_version": BASE_MODEL_VERSION,
        "ss_v2": "False",
        "modelspec.architecture": lora_architecture(variant),
        "modelspec.implementation": IMPLEMENTATION,
    }
    for name, (default, key) in TRAINING_OPTIONS.items():
        metadata[key] = str(options.get(name, default))
    metadata.update({key: str(value) for key, value in WEIGHTING_DEFAULTS.items()})
    return metadata
