"""How the Kohya GUI's LoRA tab spells SD 3 (its `sd3_checkbox` and the SD3 accordion's fields).

Read from bmaltais/kohya_ss `kohya_gui/lora_gui.py` (the saved config's keys and how `train_model`
turns them into sd-scripts' `sd3_train_network.py` arguments) and `kohya_gui/class_sd3.py` (the
fields and their defaults). Where the GUI's key differs from sd-scripts' option, `GUI_RENAMES`
gives sd-scripts' name, which is the `kohya=` name of our setting.
"""

from __future__ import annotations

from typing import Any, Mapping

CHECKBOX = "sd3_checkbox"
GUI_RENAMES = {
    "sd3_clip_l": "clip_l", "sd3_t5xxl": "t5xxl",
    "sd3_clip_l_dropout_rate": "clip_l_dropout_rate", "sd3_t5_dropout_rate": "t5_dropout_rate",
    "sd3_cache_text_encoder_outputs": "cache_text_encoder_outputs",
    "sd3_cache_text_encoder_outputs_to_disk": "cache_text_encoder_outputs_to_disk",
}
# SD3 fields tui-lora has no counterpart for: {key: the GUI's default}, and what the feature is.
NO_COUNTERPART: list[tuple[str, dict[str, Any]]] = [
    ("fusing the optimizer step into the backward pass", {"sd3_fused_backward_pass": False}),
    ("SD 3.5 Medium's scaled or randomly cropped position embeddings",
     {"sd3_enable_scaled_pos_embed": False, "pos_emb_random_crop_rate": 0.0}),
    ("saving the text encoders (sd-scripts marks it as not working)", {"save_clip": False, "save_t5xxl": False}),
    ("a separate T5 device or type (sd-scripts marks it as not working)", {"t5xxl_device": "", "t5xxl_dtype": "bf16"}),
    ("a separate batch size for caching text encoder outputs", {"sd3_text_encoder_batch_size": 1}),
    ("turning off memory-mapped loading", {"sd3_disable_mmap_load_safetensors": False}),
]


def _true(value: Any) -> bool:
    return value in (True, "true", "True", 1)


def is_sd3_config(data: Mapping[str, Any]) -> bool:
    """The GUI trains SD 3 / 3.5 (sd3_train_network.py) when its SD3 checkbox is on."""
    return _true(data.get(CHECKBOX))


def gui_keys() -> set[str]:
    """Every SD3 key the GUI writes (so the importer can tell them from unknown keys)."""
    keys = {CHECKBOX, "clip_g", "clip_g_dropout_rate", "weighting_scheme", "logit_mean", "logit_std", "mode_scale"}
    keys |= set(GUI_RENAMES)
    for _, fields in NO_COUNTERPART:
        keys |= set(fields)
    return keys
