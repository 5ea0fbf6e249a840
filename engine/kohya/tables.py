"""sd-scripts names the importer and exporter share: scripts, network modules, renamed options.

Which model family a script trains is written here once (`SCRIPT_FAMILIES`), as the Kohya GUI keys
that select the family, so the GUI conversion decides the rest; when families own their Kohya
keys this table moves to them.
"""

from __future__ import annotations

# sd-scripts LoRA script (file stem) → (family name, the Kohya GUI keys that select that family).
SCRIPT_FAMILIES: dict[str, tuple[str, dict[str, object]]] = {
    "train_network": ("sd1", {}),  # SD 1.x, or SD 2.x with --v2 (the GUI reads the same flag)
    "sdxl_train_network": ("sdxl", {"sdxl": True}),
    "flux_train_network": ("flux1", {"flux1_checkbox": True}),
    "sd3_train_network": ("sd35", {"sd3_checkbox": True}),
}
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
    "max_train_epochs": "max_train_epochs",
}
# network_args keys → Kohya GUI keys, where they differ (the rest keep their name).
NETWORK_ARG_TO_GUI: dict[str, str] = {"preset": "LyCORIS_preset", "dropout": "network_dropout", "algo": ""}
# Options sd-scripts' FLUX.1 trainer reads but does not use (SD-only objective and tokenizer options).
FLUX_IGNORED_OPTIONS = ("noise_offset", "min_snr_gamma", "max_token_length", "multires_noise_iterations",
                        "adaptive_noise_scale", "clip_skip", "v_parameterization", "debiased_estimation_loss")
