"""sd-scripts names the importer and exporter share: scripts, network modules, renamed options.

Which model family a script trains, the GUI keys that select it, its network module and the options
its trainer ignores are the families' own facts (`ModelFamily.kohya`); the tables below that name a
family are built from the registry, so a new family package brings its Kohya names with it.
"""

from __future__ import annotations

from typing import Any

from engine.families import REGISTRY

_NAMED = [family for family in REGISTRY.values() if family.kohya.scripts or family.kohya.gui_keys]
# sd-scripts LoRA script (file stem) → (family name, the Kohya GUI keys that select that family).
SCRIPT_FAMILIES: dict[str, tuple[str, dict[str, object]]] = {
    script: (family.name, dict(family.kohya.gui_keys)) for family in _NAMED for script in family.kohya.scripts}
# LoRA scripts of families tui-lora has no package for (yet) → their name, for a clear refusal.
UNKNOWN_FAMILY_SCRIPTS: dict[str, str] = {
    script: label for script, label in {"sd3_train_network": "Stable Diffusion 3/3.5",
                                        "lumina_train_network": "Lumina Image 2.0",
                                        "hunyuan_image_train_network": "HunyuanImage"}.items()
    if script not in SCRIPT_FAMILIES}
# sd-scripts scripts that train something other than a LoRA → what they train.
NOT_LORA_SCRIPTS: dict[str, str] = {
    "train_db": "a DreamBooth fine-tune (the whole model)",
    "fine_tune": "a full fine-tune",
    "sdxl_train": "a full SDXL fine-tune",
    "flux_train": "a full FLUX.1 fine-tune",
    "sd3_train": "a full SD3 fine-tune",
    "train_textual_inversion": "a textual inversion embedding",
    "sdxl_train_textual_inversion": "a textual inversion embedding",
    "train_textual_inversion_XTI": "a textual inversion embedding",
    "train_controlnet": "a ControlNet",
    "sdxl_train_control_net": "a ControlNet",
    "sdxl_train_control_net_lllite": "a ControlNet-LLLite",
    "flux_train_control_net": "a ControlNet",
}
# Kohya GUI keys only another tab saves → what that tab trains (a LoRA-tab config has LoRA_type).
NOT_LORA_GUI_KEYS: dict[str, str] = {
    "token_string": "a textual inversion embedding (the GUI's Textual Inversion tab)",
    "init_word": "a textual inversion embedding (the GUI's Textual Inversion tab)",
    "num_vectors_per_token": "a textual inversion embedding (the GUI's Textual Inversion tab)",
    "caption_metadata_filename": "a full fine-tune (the GUI's Finetune tab)",
    "dataset_repeats": "a full fine-tune (the GUI's Finetune tab)",
    "train_text_encoder": "a full fine-tune (the GUI's Finetune tab)",
    "learning_rate_te": "a DreamBooth fine-tune of the whole model (the GUI's DreamBooth tab)",
    "learning_rate_te1": "a DreamBooth fine-tune of the whole model (the GUI's DreamBooth tab)",
}
LORA_GUI_KEYS = ("LoRA_type", "network_dim", "network_alpha")

# sd-scripts --network_module → the Kohya GUI's LoRA_type (LyCORIS: by its `algo` network arg).
NETWORK_MODULES: dict[str, str] = {
    "networks.lora": "Standard",
    "networks.lora_flux": "Flux1",
    "networks.lora_sd3": "Standard",
    "networks.dylora": "Kohya DyLoRA",
}
LYCORIS_MODULE = "lycoris.kohya"
LYCORIS_ALGOS: dict[str, str] = {
    "lora": "LyCORIS/LoCon", "locon": "LyCORIS/LoCon", "loha": "LyCORIS/LoHa", "lokr": "LyCORIS/LoKr",
    "dylora": "LyCORIS/DyLoRA", "glora": "LyCORIS/GLoRA", "ia3": "LyCORIS/iA3", "diag-oft": "LyCORIS/Diag-OFT",
    "boft": "LyCORIS/BOFT", "full": "LyCORIS/Native Fine-Tuning",
}
# sd-scripts option → the Kohya GUI key that carries it, where the names differ.
SCRIPT_TO_GUI: dict[str, str] = {
    "resolution": "max_resolution",
    "optimizer_type": "optimizer",
    "caption_extention": "caption_extension",  # sd-scripts' old misspelling, still accepted
}
# network_args keys → Kohya GUI keys, where they differ (the rest keep their name).
NETWORK_ARG_TO_GUI: dict[str, str] = {"preset": "LyCORIS_preset", "dropout": "network_dropout", "algo": ""}
# The network module each family's LoRA script uses when none is given, and the GUI's LoRA_type for it.
FAMILY_DEFAULT_MODULES = {f.name: f.kohya.network_module for f in _NAMED if f.kohya.network_module != "networks.lora"}
FAMILY_PLAIN_LORA_TYPES = {f.name: f.kohya.gui_lora_type for f in _NAMED if f.kohya.gui_lora_type != "Standard"}
# options that name the family in a config read without its script;
FAMILY_MARKER_OPTIONS = {f.name: f.kohya.marker_options for f in _NAMED if f.kohya.marker_options}
# and options its trainer reads but does not use: family → (its words, the options).
TRAINER_IGNORES: dict[str, tuple[str, tuple[str, ...]]] = {
    f.name: (f.label, f.kohya.ignored_options) for f in _NAMED if f.kohya.ignored_options}
FAMILY_GUI_KEYS = {family: keys for family, keys in SCRIPT_FAMILIES.values()}
NETWORK_MODULE_FAMILIES = {module: family for family, module in FAMILY_DEFAULT_MODULES.items()}


def family_of_options(options: dict[str, Any]) -> str:
    """The family a script-less config names by its network module or its own files; '' when none."""
    family = NETWORK_MODULE_FAMILIES.get(str(options.get("network_module")), "")
    return family or next((f for f, keys in FAMILY_MARKER_OPTIONS.items() if any(options.get(k) for k in keys)), "")


# sd-scripts options tui-lora has no counterpart for (and the GUI has no key for) → what they do;
# named in a note when set to anything but off.
SCRIPT_NO_COUNTERPART: dict[str, str] = {
    "lowram": "loading the model straight to the GPU (low system RAM)",
    "sample_at_first": "a sample before the first step",
    "torch_compile": "torch.compile", "zero_terminal_snr": "zero terminal SNR noise schedule",
    "ddp_timeout": "multi-GPU (DDP) tuning", "ddp_gradient_as_bucket_view": "multi-GPU (DDP) tuning",
    "ddp_static_graph": "multi-GPU (DDP) tuning", "no_metadata": "leaving out the LoRA's metadata",
    "disable_mmap_load_safetensors": "loading without memory-mapping",
    "caption_separator": "a caption separator other than ','", "keep_tokens_separator": "keep-token separators",
    "secondary_separator": "secondary caption separators", "enable_wildcard": "caption wildcards",
    "caption_prefix": "a caption prefix", "caption_suffix": "a caption suffix",
    "face_crop_aug_range": "face-centred crop augmentation", "token_warmup_min": "caption token warmup",
    "token_warmup_step": "caption token warmup", "caption_tag_dropout_rate": "dropping single caption tags",
    "alpha_mask": "alpha-channel loss masks", "tokenizer_cache_dir": "a tokenizer cache folder",
    "base_weights": "merging other LoRAs into the base first", "base_weights_multiplier": "merging other LoRAs",
    "initial_epoch": "starting at a later epoch", "initial_step": "starting at a later step",
    "skip_until_initial_step": "starting at a later step", "fused_backward_pass": "the fused backward pass",
    "lr_decay_steps": "a decay phase of the schedule", "lr_scheduler_timescale": "a scheduler timescale",
    "lr_scheduler_min_lr_ratio": "a minimum learning-rate ratio", "save_n_epoch_ratio": "saving by epoch ratio",
    "validation_seed": "a validation split", "validation_split": "a validation split",
    "validate_every_n_steps": "a validation split", "validate_every_n_epochs": "a validation split",
    "max_validation_steps": "a validation split", "debug_dataset": "sd-scripts' dataset debugger",
    "resize_interpolation": "a choice of resize filter", "text_encoder_batch_size": "a text-encoder batch size",
    "cache_info": "caching image sizes", "output_config": "writing the options to a TOML",
}
# Old sd-scripts switches that pick the optimizer when --optimizer_type is not given.
OLD_OPTIMIZER_SWITCHES = {"use_8bit_adam": "AdamW8bit", "use_lion_optimizer": "Lion"}
