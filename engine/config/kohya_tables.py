"""Kohya SS GUI names and defaults, mapped onto tui-lora's: the importer's lookup tables.

Kept apart from the conversion logic so the tables can be read (and extended) on their own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from .settings_model import QUICK_PICKS


def number(value: Any) -> float | None:
    """A finite number from a JSON number or numeric text; None otherwise (bools are not numbers)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value) if isinstance(value, (int, float)) else None
    except (ValueError, OverflowError):
        return None
    return number if number is not None and math.isfinite(number) else None

NETWORK_TYPES = {"Standard": "lora", "Kohya LoCon": "locon", "LyCORIS/LoCon": "locon", "LoCon": "locon",
                 "LyCORIS/LoHa": "loha", "LyCORIS/LoKr": "lokr", "Kohya DyLoRA": "dylora", "LyCORIS/DyLoRA": "dylora"}
# Close relatives: same rank/alpha/learning-rate scale. LyCORIS's default "full" preset adapts
# convolutions too, so its algorithms fall back to locon.
NEAREST_NETWORK_TYPES = {
    "LoRA-FA": ("lora", "LoRA-FA (frozen down-projection) is not available; both LoRA matrices are trained"),
    # GLoRA adds a learned scaling of the base weight and a bias path to LoRA; peft has no GLoRA and
    # its files load only where the loader knows GLoRA, so the nearest file every tool loads is used.
    "LyCORIS/GLoRA": ("locon", "GLoRA (LoRA plus learned scaling of the original weights) has no peft "
                               "implementation; a LoCon of the same rank and alpha is trained, which every image tool loads"),
}
REFUSED_NETWORK_TYPES = {
    "LyCORIS/iA3": "iA3 learns one scaling vector per layer (no rank, learning rates near 1e-2 instead of 1e-4), "
                   "and its files load in AUTOMATIC1111 only, not in ComfyUI or diffusers; for a very small file "
                   "use LyCORIS/LoKr with a large factor",
    "LyCORIS/Diag-OFT": "orthogonal fine-tuning (OFT) has no rank and uses different learning rates",
    "LyCORIS/BOFT": "butterfly orthogonal fine-tuning (BOFT) has no rank and uses different learning rates",
    "LyCORIS/Native Fine-Tuning": "native fine-tuning trains full weight differences, not a LoRA",
}
REFUSED_MODEL_FLAGS = {"sd3_checkbox": "Stable Diffusion 3", "anima_checkbox": "Anima"}
# The GUI's FLUX.1 LoRA type (sd-scripts' networks.lora_flux): a plain LoRA on the Flux transformer.
FLUX_NETWORK_TYPE = "Flux1"
# The GUI's own names for sd-scripts' text-encoder cache flags on its FLUX.1 and SDXL tabs.
FLUX_GUI_RENAMES = {"flux1_cache_text_encoder_outputs": "cache_text_encoder_outputs",
                    "flux1_cache_text_encoder_outputs_to_disk": "cache_text_encoder_outputs_to_disk"}
SDXL_GUI_RENAMES = {"sdxl_cache_text_encoder_outputs": "cache_text_encoder_outputs"}


def _true(value: Any) -> bool:
    return value in (True, "true", "True", 1)


def is_flux_config(data: Mapping[str, Any]) -> bool:
    """The GUI trains FLUX.1 when its Flux checkbox is on (it then offers the Flux1 LoRA type)."""
    return _true(data.get("flux1_checkbox")) or data.get("LoRA_type") == FLUX_NETWORK_TYPE

# Hub ids the GUI offers → quick picks; the `/blob/main/…` forms name single files of the same model.
HUB_PICKS = {quick["path"].lower(): pick for pick, quick in QUICK_PICKS.items()} | {
    "runwayml/stable-diffusion-v1-5": "sd15",
    "stabilityai/stable-diffusion-2-1-base/blob/main/v2-1_512-ema-pruned": "sd21-base",
    "stabilityai/stable-diffusion-2-1/blob/main/v2-1_768-ema-pruned": "sd21-768-v",
}
# Other GUI hub ids: known families, loaded as custom models.
HUB_FAMILIES = {"compvis/stable-diffusion-v1-4": (False, False, False),
                "stabilityai/stable-diffusion-2-base": (True, False, False),
                "stabilityai/stable-diffusion-2": (True, True, False),
                "stabilityai/stable-diffusion-xl-refiner-1.0": (False, False, True)}

NEAREST_OPTIMIZERS = {"pagedadamw32bit": "AdamW", "pagedadamw": "AdamW", "pagedlion8bit": "Lion8bit",
                      "sgdnesterov8bit": "SGDNesterov", "dadaptadan": "DAdaptAdam", "dadaptadanip": "DAdaptAdam"}
NEAREST_SCHEDULERS = {"cosine_with_min_lr": "cosine"}
SAMPLERS = {"ddim": "ddim", "pndm": "pndm", "lms": "lms", "k_lms": "lms", "euler": "euler", "k_euler": "euler",
            "euler_a": "euler_a", "k_euler_a": "euler_a", "heun": "heun", "dpmsolver++": "dpmpp_2m", "dpmpp_2m": "dpmpp_2m"}
NEAREST_SAMPLERS = {"dpmsolver": "dpmpp_2m", "dpmsingle": "dpmpp_2m", "dpm_2": "heun", "k_dpm_2": "heun",
                    "dpm_2_a": "euler_a", "k_dpm_2_a": "euler_a"}

# noise_offset_type for sd-scripts' own options: sd-scripts adds offset noise and multires noise
# when both are given (the GUI passes one kind only).
NOISE_BOTH = "sd-scripts: both"

# When Kohya itself uses a key (for this config); other keys of a scope are ignored by Kohya too.
SCOPES: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "always": lambda d: True,
    "never": lambda d: False,  # SD3-only keys (those models are refused) and GUI-only state
    "flux": is_flux_config,
    "blocks": lambda d: d.get("LoRA_type", "Standard") in ("Standard", "Kohya LoCon", "LoRA-FA", "Kohya DyLoRA"),
    "lycoris": lambda d: str(d.get("LoRA_type", "")).startswith("LyCORIS/"),
    "lokr": lambda d: d.get("LoRA_type") == "LyCORIS/LoKr",
    "dylora": lambda d: d.get("LoRA_type") in ("Kohya DyLoRA", "LyCORIS/DyLoRA"),
    "sdxl": lambda d: d.get("sdxl") in (True, "true", "True"),
    "noise": lambda d: d.get("noise_offset_type", "Original") != "Multires",
    "wandb": lambda d: d.get("log_with") in ("wandb", "all") or d.get("use_wandb") in (True, "True"),
    "dynamo": lambda d: d.get("dynamo_backend", "no") not in ("no", "", None),
}
# Kohya keys tui-lora has no counterpart for: (scope, what the feature is, {key: Kohya's default}).
_NO_COUNTERPART_GROUPS: list[tuple[str, str, dict[str, Any]]] = [
    ("always", "dropping every caption every N epochs", {"caption_dropout_every_n_epochs": 0}),
    ("always", "colour augmentation", {"color_aug": False}),
    ("always", "an fp8 denoiser with 16-bit text encoders", {"fp8_base_unet": False}),
    ("always", "the high/low-VRAM modes", {"highvram": False, "lowvram": False}),
    ("always", "masked loss", {"masked_loss": False}),
    ("always", "weighted captions", {"weighted_captions": False}),
    ("always", "v-prediction loss scaling", {"scale_v_pred_loss_like_noise_pred": False, "v_pred_like_loss": 0}),
    ("always", "a separate VAE", {"vae": "", "vae_batch_size": 0}),
    ("always", "resuming from a Kohya state folder (`tui-lora train --resume` resumes tui-lora runs)", {"resume": ""}),
    ("always", "keeping the state of the last N epochs only", {"save_last_n_epochs_state": 0}),
    ("always", "skipping the latent cache check", {"skip_cache_check": False}),
    ("always", "a dataset TOML file (set folders.images to the folder of your '<repeats>_<name>' folders)", {"dataset_config": ""}),
    ("always", "warmup in steps (set optimizer.warmup_percent instead)", {"lr_warmup_steps": 0}),
    ("always", "training on several machines", {"num_machines": 1}),
    ("always", "custom accelerate options", {"main_process_port": 0, "extra_accelerate_launch_args": ""}),
    ("always", "torch.compile (dynamo)", {"dynamo_backend": "no"}),
    ("always", "custom tracker settings", {"log_tracker_name": "", "log_tracker_config": "", "log_config": False}),
    ("always", "uploading to the Hugging Face Hub",
     {"huggingface_repo_id": "", "huggingface_token": "", "huggingface_repo_type": "", "huggingface_repo_visibility": "",
      "huggingface_path_in_repo": "", "save_state_to_huggingface": False, "resume_from_huggingface": "", "async_upload": False}),
    ("always", "LoRA+ learning-rate ratios", {"loraplus_lr_ratio": 0, "loraplus_text_encoder_lr_ratio": 0, "loraplus_unet_lr_ratio": 0}),
    ("always", "GGPO regularisation", {"train_lora_ggpo": False}),
    ("always", "turning off token padding", {"no_token_padding": False}),
    ("wandb", "stored W&B settings (log in with `wandb login`)", {"wandb_api_key": "", "wandb_run_name": ""}),
    ("dynamo", "torch.compile (dynamo)", {"dynamo_mode": "default", "dynamo_use_fullgraph": False, "dynamo_use_dynamic": False}),
    ("lycoris", "this LyCORIS option", {"LyCORIS_preset": "full", "use_scalar": False,
                                        "bypass_mode": False}),
    ("lycoris", "DoRA (weight decomposition)", {"dora_wd": False}),
    ("blocks", "block-wise learning rates, ranks and alphas",
     dict.fromkeys(("down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold", "block_dims",
                    "block_alphas", "conv_block_dims", "conv_block_alphas", "conv_dims", "conv_alphas"), "")),
    # sd-scripts' FLUX.1 options tui-lora has no counterpart for (ignored by Kohya for other models).
    ("flux", "separate double/single block swap counts (training.blocks_to_swap splits one count as sd-scripts does)",
     {"single_blocks_to_swap": 0, "double_blocks_to_swap": 0}),
    ("flux", "training only some FLUX.1 layers or block indices (flux.train_blocks picks double or single blocks)",
     {"split_mode": False, "enable_all_linear": False, "train_double_block_indices": "all",
      "train_single_block_indices": "all", "in_dims": ""} | dict.fromkeys((
          "img_attn_dim", "img_mlp_dim", "img_mod_dim", "single_dim", "txt_attn_dim", "txt_mlp_dim", "txt_mod_dim",
          "single_mod_dim"), "")),
    ("flux", "training T5-XXL (T5 stays frozen)", {"train_t5xxl": False, "t5xxl_lr": 0}),
    ("flux", "sd-scripts' split q/k/v training and memory-saving save", {"split_qkv": False, "mem_eff_save": False}),
    # Ignored by Kohya for every config we import (OFT/iA3 and SD3 are refused), or GUI state
    # read with another key (multi_gpu: several processes always use accelerate's multi-GPU mode).
    ("never", "", dict.fromkeys((
        "ggpo_sigma", "ggpo_beta", "constrain", "rescaled", "train_on_input", "training_preset", "multi_gpu", "save_as_bool",
        "mem_eff_attn", "use_8bit_adam", "sd3_cache_text_encoder_outputs", "sd3_cache_text_encoder_outputs_to_disk",
        "sd3_fused_backward_pass", "clip_g", "clip_g_dropout_rate", "sd3_clip_l", "sd3_clip_l_dropout_rate",
        "sd3_disable_mmap_load_safetensors", "sd3_enable_scaled_pos_embed", "logit_mean", "logit_std", "mode_scale",
        "pos_emb_random_crop_rate", "save_clip", "save_t5xxl", "sd3_t5_dropout_rate", "sd3_t5xxl", "t5xxl_device",
        "t5xxl_dtype", "sd3_text_encoder_batch_size", "weighting_scheme"))),
]
# key → (Kohya's default, what the feature is, scope)
NO_COUNTERPART: dict[str, tuple[Any, str, str]] = {
    key: (default, feature, scope) for scope, feature, keys in _NO_COUNTERPART_GROUPS for key, default in keys.items()}
SECRET_KEYS = frozenset(("huggingface_token", "wandb_api_key"))
# Optional settings where Kohya writes 0 for "off"/"random".
ZERO_MEANS_EMPTY = frozenset(("save_every_n_epochs", "sample_every_n_epochs", "sample_every_n_steps",
                              "save_last_n_epochs", "min_snr_gamma", "seed", "max_train_epochs",
                              "max_train_steps", "save_every_n_steps", "save_last_n_steps", "save_last_n_steps_state"))
PATH_KEYS = ("train_data_dir", "reg_data_dir", "output_dir", "logging_dir", "network_weights", "pretrained_model_name_or_path",
             "clip_l", "t5xxl", "ae")
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]|\\")

# `additional_parameters` holds sd-scripts command-line flags; where a flag's name differs from
# the GUI key that carries the same option, this names the key.
SCRIPT_FLAG_KEYS = {"resolution": "max_resolution", "optimizer_type": "optimizer"}
# Flags that train one part only: (the part whose rate is kept, the part set to 0).
TRAIN_ONLY_FLAGS = {"network_train_unet_only": ("unet_lr", "text_encoder_lr"),
                    "network_train_text_encoder_only": ("text_encoder_lr", "unet_lr")}
# GUI keys read by the importer's own code rather than through a setting's `kohya` name.
SPECIAL_KOHYA_KEYS = frozenset(("optimizer_args", "lr_scheduler_args", "learning_rate", "unet_lr", "text_encoder_lr",
                                "max_train_steps", "max_train_epochs", "noise_offset_type", "sample_prompts",
                                "v2", "v_parameterization", "sdxl"))  # the old family booleans: read as model.family
