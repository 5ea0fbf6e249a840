"""A run → the Kohya SS GUI's LoRA-tab `.json`, the inverse of `engine.config.kohya_import`.

Every setting with a `kohya=` key in the schema is written under that key, in the GUI's form;
the few whose GUI form differs (the model pick, the network type, learning rates, the noise
kind, prompts, attention) are written here. Settings the GUI has no place for are returned by
name, so the command can list them: nothing is left out without a word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config.kohya_tables import ZERO_MEANS_EMPTY
from ..config.runconfig import SETTINGS, RunConfig
from ..config.prompt_options import OPTIONS
from ..config.settings_model import QUICK_PICKS
from .tables import FAMILY_GUI_KEYS, FAMILY_PLAIN_LORA_TYPES

# network.type → the GUI's LoRA_type (the inverse of kohya_tables.NETWORK_TYPES, one choice each).
GUI_NETWORK_TYPES = {"lora": "Standard", "locon": "Kohya LoCon", "loha": "LyCORIS/LoHa", "lokr": "LyCORIS/LoKr",
                     "dylora": "Kohya DyLoRA"}
# Settings written by `_special` (or folded into another key), not by the generic copy.
_SPECIAL = frozenset((
    "model.quick_pick", "model.path", "model.family", "network.type", "network.conv_rank", "network.conv_alpha",
    "optimizer.learning_rate", "optimizer.unet_lr", "optimizer.text_encoder_lr", "optimizer.step_rules",
    "optimizer.scheduler_type", "optimizer.scheduler_args", "optimizer.extra_args", "training.attention",
    "training.max_resolution", "training.epochs", "training.max_train_epochs", "training.max_train_steps",
    "sampling.prompts", "training.mixed_precision", "hardware.gpu_ids",
    "training.noise_offset", "training.adaptive_noise_scale", "training.noise_offset_random_strength",
    "training.multires_noise_iterations", "training.multires_noise_discount",
))


@dataclass
class GuiExport:
    data: dict[str, Any] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)  # "key: why", one per setting not written
    gui_only: list[str] = field(default_factory=list)  # what only the GUI's form loses (sd-scripts keeps it)

    @property
    def notes(self) -> list[str]:
        return self.left_out + self.gui_only


def export_gui(config: RunConfig) -> GuiExport:
    out = GuiExport()
    values = config.values
    for setting in SETTINGS:
        if setting.key in _SPECIAL:
            continue
        value = values[setting.key]
        if setting.kohya:
            out.data[setting.kohya] = _gui_value(value)
            if value == 0 and setting.kohya in ZERO_MEANS_EMPTY and setting.optional:
                out.gui_only.append(f"{setting.key}: 0 means 'not set' in the Kohya GUI; written as 0 all the same")
        elif setting.key != "model.config_dir" and value != setting.default_for(values):
            out.left_out.append(f"{setting.key}: the Kohya GUI has no such setting ({value!r} is not written)")
    _model(config, out)
    _network(config, out)
    _learning_rates(config, out)
    _length(config, out)
    _noise(config, out)
    out.data["max_resolution"] = ",".join(str(v) for v in values["training.max_resolution"])
    out.data["xformers"] = values["training.attention"]
    out.data["gpu_ids"] = ",".join(str(v) for v in values["hardware.gpu_ids"])
    out.data["sample_prompts"] = "\n".join(prompt_line(p) for p in values["sampling.prompts"])
    precision = values["training.mixed_precision"]
    if precision == "auto":
        precision = "bf16"
        out.left_out.append("training.mixed_precision: 'auto' (bf16 where the GPU has it) has no Kohya value; "
                            "written as bf16")
    out.data["mixed_precision"] = precision
    return out


def _gui_value(value: Any) -> Any:
    """None (an empty optional setting) is the GUI's empty field."""
    return "" if value is None else value


def _model(config: RunConfig, out: GuiExport) -> None:
    values = config.values
    pick = values["model.quick_pick"]
    path = values["model.path"] if pick == "custom" else QUICK_PICKS[pick]["path"]
    out.data["pretrained_model_name_or_path"] = path or ""
    out.data["model_list"] = "custom"
    for key, value in FAMILY_GUI_KEYS.get(values["model.family"], {}).items():
        out.data[key] = value
    if values["model.family"] == "auto" and pick == "custom":
        out.left_out.append("model.family: 'auto' (read from the model file) has no Kohya value; written as SD 1.x "
                            "(set the GUI's SDXL / v2 / FLUX.1 checkbox, or the script, to match the model)")
    if "model.config_dir" in values and values["model.config_dir"]:
        out.left_out.append(f"model.config_dir: the Kohya GUI has no such setting ({values['model.config_dir']!r} "
                            "is not written; sd-scripts carries the model configs itself)")


def _network(config: RunConfig, out: GuiExport) -> None:
    values = config.values
    kind = values["network.type"]
    family_type = FAMILY_PLAIN_LORA_TYPES.get(values["model.family"])
    out.data["LoRA_type"] = family_type if family_type and kind == "lora" else GUI_NETWORK_TYPES[kind]
    if kind == "locon" and values["network.train_norm"]:
        out.data["LoRA_type"] = "LyCORIS/LoCon"  # Kohya's own LoCon (networks.lora) trains no norm layers
    uses_conv = kind in ("locon", "loha", "lokr")
    out.data["conv_dim"] = values["network.conv_rank"] if uses_conv else 0
    out.data["conv_alpha"] = values["network.conv_alpha"] if uses_conv else 0
    out.data["optimizer_args"] = " ".join(_quoted(item) for item in values["optimizer.extra_args"])
    scheduler_type = values["optimizer.scheduler_type"]
    out.data["lr_scheduler_type"] = scheduler_type
    args = values["optimizer.scheduler_args"] if scheduler_type else (
        [f"step_rules={values['optimizer.step_rules']}"] if values["optimizer.step_rules"] else [])
    out.data["lr_scheduler_args"] = " ".join(_quoted(item) for item in args)


def _quoted(item: str) -> str:
    return item if not any(c.isspace() or c in "'\"" for c in item) else "'" + item.replace("'", "") + "'"


def _learning_rates(config: RunConfig, out: GuiExport) -> None:
    """The GUI reads a 0 rate for both parts as 'use learning_rate', so a part's own rate is written
    whenever it is set; a part left to follow learning_rate is written as its value."""
    values = config.values
    out.data["learning_rate"] = values["optimizer.learning_rate"]
    unet, te = values["optimizer.unet_lr"], values["optimizer.text_encoder_lr"]
    if unet is None and te is None:
        out.data["unet_lr"] = out.data["text_encoder_lr"] = 0
    else:
        out.data["unet_lr"] = config.unet_lr
        out.data["text_encoder_lr"] = config.text_encoder_lr


def _length(config: RunConfig, out: GuiExport) -> None:
    values = config.values
    out.data["epoch"] = config.epochs  # the GUI folds max_train_epochs into the run's epochs
    out.data["max_train_epochs"] = 0
    steps = values["training.max_train_steps"]
    out.data["max_train_steps"] = 0 if steps is None or values["training.max_train_epochs"] else steps


def _noise(config: RunConfig, out: GuiExport) -> None:
    """The GUI passes either the offset noise keys or the multires ones (noise_offset_type)."""
    values = config.values
    multires = values["training.multires_noise_iterations"] > 0
    out.data["noise_offset_type"] = "Multires" if multires else "Original"
    offset_keys = ("training.noise_offset", "training.adaptive_noise_scale", "training.noise_offset_random_strength")
    multires_keys = ("training.multires_noise_iterations", "training.multires_noise_discount")
    for key in offset_keys + multires_keys:
        out.data[SETTINGS[key].kohya] = values[key]
    if multires:
        for key in offset_keys:
            if values[key] != SETTINGS[key].default:
                out.gui_only.append(f"{key}: the Kohya GUI uses either offset or multires noise; with multires "
                                    f"noise on, {values[key]!r} is not used")


def prompt_line(prompt: Any) -> str:
    """A prompt entry as sd-scripts' prompt line: `text --n negative --w 512 …`."""
    if isinstance(prompt, str):
        return prompt
    letters = {name: letter for letter, (name, _) in OPTIONS.items()}
    parts = [str(prompt.get("prompt", ""))]
    for name, value in prompt.items():
        if name in letters and value not in (None, ""):
            parts.append(f"--{letters[name]} {value:g}" if isinstance(value, float) else f"--{letters[name]} {value}")
    return " ".join(parts)
