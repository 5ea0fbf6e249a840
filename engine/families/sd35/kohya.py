"""How sd-scripts and the Kohya GUI's LoRA tab name SD 3 / 3.5 (`sd3_train_network.py`, the GUI's `sd3_checkbox`).

Read from bmaltais/kohya_ss `kohya_gui/lora_gui.py` (the saved config's keys and how `train_model`
turns them into sd-scripts' arguments) and `kohya_gui/class_sd3.py` (the SD3 fields and their
defaults), and from sd-scripts' `sd3_train_network.py` (what its trainer reads but does not use).
Where the GUI's key differs from sd-scripts' option, `gui_renames` gives sd-scripts' name, which is
the `kohya=` name of our setting.
"""

from __future__ import annotations

from engine.families.kohya_names import KohyaNames

GUI_RENAMES = {
    "sd3_clip_l": "clip_l", "sd3_t5xxl": "t5xxl",
    "sd3_clip_l_dropout_rate": "clip_l_dropout_rate", "sd3_t5_dropout_rate": "t5_dropout_rate",
    "sd3_cache_text_encoder_outputs": "cache_text_encoder_outputs",
    "sd3_cache_text_encoder_outputs_to_disk": "cache_text_encoder_outputs_to_disk",
}
# SD3 fields tui-lora has no counterpart for: what the feature is, {key: the GUI's default}.
NO_COUNTERPART = (
    ("fusing the optimizer step into the backward pass", {"sd3_fused_backward_pass": False}),
    ("SD 3.5 Medium's scaled or randomly cropped position embeddings",
     {"sd3_enable_scaled_pos_embed": False, "pos_emb_random_crop_rate": 0.0}),
    ("saving the text encoders (sd-scripts marks it as not working)", {"save_clip": False, "save_t5xxl": False}),
    ("a separate T5 device or type (sd-scripts marks it as not working)", {"t5xxl_device": "", "t5xxl_dtype": "bf16"}),
    ("a separate batch size for caching text encoder outputs", {"sd3_text_encoder_batch_size": 1}),
    ("turning off memory-mapped loading", {"sd3_disable_mmap_load_safetensors": False}),
)
# The SD3 accordion's own keys (the GUI saves them, filled, in every config).
GUI_OPTIONS = ("clip_g", "clip_g_dropout_rate", "weighting_scheme", "logit_mean", "logit_std", "mode_scale",
               *GUI_RENAMES, *(key for _, keys in NO_COUNTERPART for key in keys))
# Options sd-scripts' SD3 trainer reads but does not use: its noise is plain, its levels come from the
# weighting scheme, it reads the CLIPs' penultimate layers at 77 tokens, and it warns that
# max_token_length is not used.
IGNORED_OPTIONS = ("noise_offset", "noise_offset_random_strength", "adaptive_noise_scale", "multires_noise_iterations",
                   "multires_noise_discount", "ip_noise_gamma", "ip_noise_gamma_random_strength", "min_snr_gamma",
                   "debiased_estimation_loss", "clip_skip", "max_token_length", "v_parameterization")

KOHYA = KohyaNames(
    scripts=("sd3_train_network",), gui_keys={"sd3_checkbox": True}, network_module="networks.lora_sd3",
    gui_lora_type="Standard", marker_options=("clip_g",), ignored_options=IGNORED_OPTIONS,
    gui_renames=GUI_RENAMES, gui_options=GUI_OPTIONS, no_counterpart=NO_COUNTERPART,
)
