"""Z-Image facts, torch-free: names, metadata strings, defaults and the real models' layer configs.

Where each value comes from (read from their code, not copied):

* diffusers 0.42 `ZImageTransformer2DModel` / `ZImagePipeline`: the transformer's config keys, the
  Qwen3 conditioning (the second-to-last hidden state, padding dropped), 512 caption tokens, the
  model output negated into the flow velocity, and the default sigmas `linspace(1, 1/n, n)`.
* diffusers' `examples/dreambooth/train_dreambooth_lora_z_image.py` (huggingface/diffusers
  @ 58eb52c0): the timestep draw (`--weighting_scheme` none | sigma_sqrt | logit_normal | mode | cosmap,
  `--logit_mean` 0, `--logit_std` 1, `--mode_scale` 1.29) indexing the model's own shifted schedule,
  and its LoRA targets.
* ai-toolkit (ostris/ai-toolkit @ 27a03a91, `extensions_built_in/diffusion_models/z_image/z_image.py`
  and `ui/src/app/jobs/new/options.tsx`): the training scheduler (1000 steps, shift 3, no dynamic
  shift), `ss_base_model_version` "zimage", LoRA keys `diffusion_model.<diffusers module>.lora_A/B`,
  Turbo sampled at 8–9 steps with no guidance, and its Turbo training adapter.
* musubi-tuner (kohya-ss/musubi-tuner @ 4953fe37, `src/musubi_tuner/utils/sai_model_spec.py`):
  `modelspec.architecture` "Z-Image" (+ "/lora"), implementation URL, 1024×1024.
* ComfyUI (Comfy-Org/ComfyUI @ 09708eae, `comfy/utils.py` `z_image_to_diffusers`): the native
  single-file layout (fused `attention.qkv`, `attention.out`, `q_norm`/`k_norm`).
"""

from __future__ import annotations

from typing import Any, Mapping

NAME = "zimage"
LABEL = "Z-Image"
BASE_MODEL_VERSION = "zimage"  # ss_base_model_version as ai-toolkit writes it
ARCHITECTURE = "Z-Image"  # modelspec.architecture of the base (musubi-tuner); a LoRA's adds "/lora"
IMPLEMENTATION = "https://github.com/Tongyi-MAI/Z-Image"
NATIVE_SIDE = 1024
HUB_IDS = {"turbo": "Tongyi-MAI/Z-Image-Turbo", "base": "Tongyi-MAI/Z-Image"}
LORA_PREFIX = "diffusion_model."  # ai-toolkit's key form, which ComfyUI maps through z_image_to_diffusers

# Sample defaults: Turbo is distilled to ~8 steps with guidance baked in (CFG off); the base model
# takes ZImagePipeline's own defaults (50 steps, guidance 5).
SAMPLE_STEPS = {"turbo": 8, "base": 50}
SAMPLE_GUIDANCE = {"turbo": 0.0, "base": 5.0}
# The transformer's layers diffusers keeps out of layerwise casting (_skip_layerwise_casting_patterns):
# the timestep and caption embedders are small and lose too much precision in float8.
FP8_KEEP_PATTERNS = ("t_embedder", "cap_embedder")
TRAINING_SHIFT = 3.0  # ai-toolkit's training scheduler and ComfyUI's sampling shift for Z-Image
MAX_SEQUENCE_LENGTH = 512  # ZImagePipeline's and the diffusers example's caption token limit

# The `zimage:` options: default and the ss_* key they are recorded under in the LoRA's metadata.
TRAINING_OPTIONS: dict[str, tuple[Any, str]] = {
    "weighting_scheme": ("none", "ss_weighting_scheme"),
    "logit_mean": (0.0, "ss_logit_mean"),
    "logit_std": (1.0, "ss_logit_std"),
    "mode_scale": (1.29, "ss_mode_scale"),
    "timestep_shift": (TRAINING_SHIFT, "ss_discrete_flow_shift"),
    "max_sequence_length": (MAX_SEQUENCE_LENGTH, "ss_max_sequence_length"),
}
WEIGHTING_SCHEMES = ("none", "sigma_sqrt", "logit_normal", "mode", "cosmap")

# The published Z-Image-Turbo configs (Z-Image base has the same layer shapes).
TRANSFORMER_CONFIG: dict[str, Any] = {
    "_class_name": "ZImageTransformer2DModel",
    "all_patch_size": [2], "all_f_patch_size": [1], "in_channels": 16, "dim": 3840, "n_layers": 30,
    "n_refiner_layers": 2, "n_heads": 30, "n_kv_heads": 30, "norm_eps": 1e-05, "qk_norm": True,
    "cap_feat_dim": 2560, "rope_theta": 256.0, "t_scale": 1000.0, "axes_dims": [32, 48, 48],
    "axes_lens": [1536, 512, 512],
}
QWEN3_CONFIG: dict[str, Any] = {  # Qwen3-4B
    "_class_name": "Qwen3Model",
    "vocab_size": 151936, "hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "max_position_embeddings": 40960, "tie_word_embeddings": True,
}
VAE_CONFIG: dict[str, Any] = {  # FLUX.1's autoencoder
    "_class_name": "AutoencoderKL",
    "in_channels": 3, "out_channels": 3, "latent_channels": 16, "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2, "norm_num_groups": 32, "scaling_factor": 0.3611, "shift_factor": 0.1159,
    "use_quant_conv": False, "use_post_quant_conv": False, "mid_block_add_attention": True,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SCHEDULER_CONFIG: dict[str, Any] = {"num_train_timesteps": 1000, "shift": TRAINING_SHIFT, "use_dynamic_shifting": False}
REFERENCE_CONFIGS: dict[str, Any] = {"transformer": TRANSFORMER_CONFIG, "text_encoders": [QWEN3_CONFIG],
                                     "vae": VAE_CONFIG}


def variant_of(name_or_path: str | None, scheduler_config: Mapping[str, Any] | None = None) -> str:
    """'turbo' or 'base': both share one architecture, so only the name tells them apart."""
    text = str(name_or_path or "").lower()
    built_in = text.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].startswith("builtin")  # also its cached folder
    return "base" if text and "turbo" not in text and ("z-image" in text or "zimage" in text) and \
        not built_in else "turbo"


def lora_metadata(options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The Z-Image metadata of a LoRA: base version, modelspec facts and the `zimage:` options.

    Unknown option names raise ValueError (a typo would otherwise record a default silently).
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(TRAINING_OPTIONS))
    if unknown:
        raise ValueError(f"unknown zimage option(s) {', '.join(unknown)}; expected {', '.join(TRAINING_OPTIONS)}")
    metadata = {
        "ss_base_model_version": BASE_MODEL_VERSION,
        "ss_v2": "False",
        "modelspec.architecture": ARCHITECTURE + "/lora",
        "modelspec.implementation": IMPLEMENTATION,
    }
    for name, (default, key) in TRAINING_OPTIONS.items():
        metadata[key] = str(options.get(name, default))
    return metadata


def is_native_transformer(keys: Any) -> bool:
    """Whether tensor names are a Z-Image transformer in the original/ComfyUI layout (fused qkv)."""
    names = {str(k).removeprefix("model.diffusion_model.") for k in keys}
    return "noise_refiner.0.attention.qkv.weight" in names or (
        "noise_refiner.0.attention.to_q.weight" in names and "cap_embedder.1.weight" in names)


def is_qwen3_encoder(keys: Any) -> bool:
    """Whether tensor names are a Qwen3 language model (q/k norms mark Qwen3 apart from Qwen2)."""
    names = [str(k) for k in keys]
    return any(n.endswith("layers.0.self_attn.q_norm.weight") for n in names) and \
        any(n.endswith("embed_tokens.weight") for n in names)
