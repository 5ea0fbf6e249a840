"""A run → sd-scripts files: a `--config_file` TOML, a `--dataset_config` TOML, a prompts file and
the `accelerate launch` line that uses them (train.sh), the inverse of the sd-scripts import.

It starts from the GUI form (`export_gui`), so each setting's Kohya meaning is decided once, and
renames it into sd-scripts' options: the network type becomes network_module + network_args,
warmup a share of the steps, the attention choice a switch. The dataset TOML lists the concept
folders found under the image and regularisation folders as subsets.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.runconfig import SETTINGS, RunConfig
from ..dataset.scan import parse_concept_name
from .dataset_config import SUBSETS_SETTING
from .export_gui import export_gui
from .tables import FAMILY_GUI_KEYS, LYCORIS_ALGOS, LYCORIS_MODULE, NETWORK_MODULES, SCRIPT_FAMILIES

CONFIG_NAME, DATASET_NAME, PROMPTS_NAME, COMMAND_NAME = "config.toml", "dataset.toml", "prompts.txt", "train.sh"
_SCRIPT_FOR_FAMILY = {family: script for script, (family, _) in SCRIPT_FAMILIES.items()}
_MODULE_FOR_TYPE = {gui_type: module for module, gui_type in NETWORK_MODULES.items() if module != "networks.lora_sd3"}
_ALGO_FOR_TYPE = {gui_type: algo for algo, gui_type in LYCORIS_ALGOS.items() if algo != "lora"}
# GUI keys that are not sd-scripts options (the GUI's own state, or written another way here).
_FAMILY_KEYS = frozenset(key for keys in FAMILY_GUI_KEYS.values() for key in keys)
_GUI_ONLY = _FAMILY_KEYS | frozenset(("model_list", "LoRA_type", "noise_offset_type",
                       "xformers", "epoch", "max_train_epochs", "max_train_steps", "lr_warmup", "unet_lr",
                       "text_encoder_lr", "conv_dim", "conv_alpha", "factor", "decompose_both", "use_tucker",
                       "rank_dropout_scale", "train_norm", "unit", "full_matrix", "rank_dropout", "module_dropout", "sample_prompts",
                       "num_processes", "gpu_ids", "num_cpu_threads_per_process", "stop_text_encoder_training",
                       "max_resolution", "optimizer"))
# Dataset options: written in the dataset TOML (GUI key → (section, sd-scripts name)).
_DATASET_KEYS = {"caption_extension": "general", "shuffle_caption": "general", "keep_tokens": "general",
                 "flip_aug": "general", "random_crop": "general", "caption_dropout_rate": "general",
                 "train_batch_size": "datasets", "enable_bucket": "datasets", "min_bucket_reso": "datasets",
                 "max_bucket_reso": "datasets", "bucket_reso_steps": "datasets", "bucket_no_upscale": "datasets",
                 "prior_loss_weight": "datasets"}
_SCRIPT_SAMPLERS = {"dpmpp_2m": "dpmsolver++"}  # our sampler names sd-scripts spells otherwise


@dataclass
class TomlExport:
    files: dict[str, str] = field(default_factory=dict)  # file name → text
    left_out: list[str] = field(default_factory=list)
    command: str = ""


def export_toml(config: RunConfig, folder: Path | None = None) -> TomlExport:
    """The files for `folder` (the command names the TOML files there; relative when None)."""
    gui_export = export_gui(config)
    gui, out = gui_export.data, TomlExport(left_out=list(gui_export.left_out))
    values = config.values
    options: dict[str, Any] = {}
    for key, value in gui.items():
        if key in _GUI_ONLY or key in _DATASET_KEYS or key in ("train_data_dir", "reg_data_dir"):
            continue
        if value in ("", None) or (key in ("optimizer_args", "lr_scheduler_args") and not value):
            continue
        options[key] = value
    options["optimizer_type"] = gui["optimizer"]
    options["optimizer_args"] = list(values["optimizer.extra_args"])
    args = values["optimizer.scheduler_args"] if values["optimizer.scheduler_type"] else (
        [f"step_rules={values['optimizer.step_rules']}"] if values["optimizer.step_rules"] else [])
    options["lr_scheduler_args"] = list(args)
    options["sample_sampler"] = _SCRIPT_SAMPLERS.get(gui["sample_sampler"], gui["sample_sampler"])
    _network(gui, options)
    _rates_and_length(config, gui, options)
    if gui["xformers"] in ("sdpa", "xformers"):
        options[gui["xformers"]] = True
    if values["training.stop_text_encoder_percent"]:
        out.left_out.append("training.stop_text_encoder_percent: sd-scripts' LoRA script has no such option")
    if values["sampling.prompts"]:
        out.files[PROMPTS_NAME] = gui["sample_prompts"] + "\n"
        options["sample_prompts"] = str(folder.resolve() / PROMPTS_NAME) if folder is not None else PROMPTS_NAME
    dataset = _dataset(config, gui, out)
    if dataset is None:  # sd-scripts then reads the folders and dataset options from the config
        options |= {key: gui[key] for key in ("train_data_dir", "reg_data_dir", *_DATASET_KEYS)}
    _not_applying(config, options, out)
    # store_true options are off unless given: a false one is left out, as sd-scripts' users write them
    options = {key: value for key, value in options.items() if value not in ([], "", None) and value is not False}
    out.files[CONFIG_NAME] = toml_text(options, "sd-scripts --config_file, written by `tui-lora export-kohya`")
    if dataset is not None:
        out.files[DATASET_NAME] = dataset
    out.command = _command(config, gui, dataset is not None, folder)
    out.files[COMMAND_NAME] = ("#!/bin/sh\n# Run in the sd-scripts folder (with its venv active); written by "
                               f"`tui-lora export-kohya`.\n{out.command}\n")
    return out


def _not_applying(config: RunConfig, options: dict[str, Any], out: TomlExport) -> None:
    """A setting that does nothing for this run (an SD-only option on FLUX.1, …) is not written:
    sd-scripts would not use it either."""
    values = config.values
    for setting in SETTINGS:
        if setting.kohya in options and setting.applies is not None and (why := setting.applies(values)):
            options.pop(setting.kohya)
            if values[setting.key] != setting.default_for(values):
                out.left_out.append(f"{setting.key}: {values[setting.key]!r} is not written: {why}")


def _network(gui: dict[str, Any], options: dict[str, Any]) -> None:
    lora_type = gui["LoRA_type"]
    args: list[str] = []
    if lora_type in _ALGO_FOR_TYPE:
        options["network_module"] = LYCORIS_MODULE
        args.append(f"algo={_ALGO_FOR_TYPE[lora_type]}")
        names = ("conv_dim", "conv_alpha", "factor", "decompose_both", "use_tucker", "rank_dropout_scale",
                 "train_norm", "full_matrix", "rank_dropout", "module_dropout")
    elif lora_type == "Kohya LoCon":
        options["network_module"] = "networks.lora"
        names = ("conv_dim", "conv_alpha", "rank_dropout", "module_dropout")
    else:
        options["network_module"] = _MODULE_FOR_TYPE[lora_type]
        names = ("unit", "rank_dropout", "module_dropout") if lora_type == "Kohya DyLoRA" else (
            "rank_dropout", "module_dropout")
    args += [f"{name}={gui[name]}" for name in names if name in gui and gui[name] not in ("", None, 0, False)]
    options["network_args"] = args


def _rates_and_length(config: RunConfig, gui: dict[str, Any], options: dict[str, Any]) -> None:
    values = config.values
    options["learning_rate"] = gui["learning_rate"]
    if values["optimizer.unet_lr"] is not None or values["optimizer.text_encoder_lr"] is not None:
        options["unet_lr"] = config.unet_lr
        if config.text_encoder_lr == 0:
            options["network_train_unet_only"] = True
        else:
            options["text_encoder_lr"] = config.text_encoder_lr
    if values["training.max_train_epochs"] or not values["training.max_train_steps"]:
        options["max_train_epochs"] = config.epochs
    else:
        options["max_train_steps"] = values["training.max_train_steps"]
    options["lr_warmup_steps"] = values["optimizer.warmup_percent"] / 100.0  # sd-scripts: a float is a share
    options["resolution"] = gui["max_resolution"]


def _dataset(config: RunConfig, gui: dict[str, Any], out: TomlExport) -> str | None:
    """The dataset TOML with one subset per concept folder on disk; None (train_data_dir in the
    config instead) when the folders cannot be listed here."""
    values = config.values
    # per-folder values the run keeps (the `dataset.subsets` setting, once the schema has it) win
    subsets = [dict(entry) for entry in values.get(SUBSETS_SETTING) or []]
    kept = bool(subsets)
    for folder, is_reg in ((values["folders.images"], False), (values["folders.regularization"], True)):
        if not folder or kept:
            continue
        found = _concepts(Path(folder))
        if found is None:
            out.left_out.append(f"{'folders.regularization' if is_reg else 'folders.images'}: '{folder}' cannot be "
                                "listed here, so no dataset TOML is written; the config names the folder "
                                f"({'reg_data_dir' if is_reg else 'train_data_dir'}) instead")
            return None
        subsets += [{"image_dir": str(path), "num_repeats": repeats, "class_tokens": tokens, "is_reg": is_reg}
                    for path, repeats, tokens in found]
    if not subsets:
        return None
    general = {key: gui[key] for key, section in _DATASET_KEYS.items() if section == "general"}
    dataset = {"resolution": list(values["training.max_resolution"]), "batch_size": gui["train_batch_size"]}
    dataset |= {key: gui[key] for key, section in _DATASET_KEYS.items() if section == "datasets" and key != "train_batch_size"}
    lines = [toml_text(general, "sd-scripts --dataset_config, written by `tui-lora export-kohya`", "general"),
             "[[datasets]]", toml_text(dataset)]
    for subset in subsets:
        lines += ["  [[datasets.subsets]]", toml_text({k: v for k, v in subset.items() if v not in ("", None)}, indent="  ")]
    return "\n".join(lines)


def _concepts(folder: Path) -> list[tuple[Path, int, str]] | None:
    try:
        children = sorted(child for child in folder.iterdir() if child.is_dir())
    except OSError:
        return None
    return [(child, parsed[0], parsed[1]) for child in children if (parsed := parse_concept_name(child.name))]


def _command(config: RunConfig, gui: dict[str, Any], with_dataset: bool, folder: Path | None) -> str:
    values = config.values
    script = _SCRIPT_FOR_FAMILY.get(values["model.family"], "train_network")
    words = ["accelerate", "launch", "--num_cpu_threads_per_process", str(gui["num_cpu_threads_per_process"])]
    if values["hardware.num_processes"] > 1:
        words += ["--num_processes", str(values["hardware.num_processes"]), "--multi_gpu"]
    if values["hardware.gpu_ids"]:
        words += ["--gpu_ids", gui["gpu_ids"]]
    place = (lambda name: str(folder.resolve() / name)) if folder is not None else (lambda name: name)
    words += [f"{script}.py", "--config_file", place(CONFIG_NAME)]
    if with_dataset:
        words += ["--dataset_config", place(DATASET_NAME)]
    return " ".join(shlex.quote(word) for word in words)


def toml_text(table: dict[str, Any], comment: str = "", header: str = "", indent: str = "") -> str:
    """A flat TOML table: strings, numbers, booleans and lists of them (all sd-scripts reads)."""
    lines = [f"# {comment}"] if comment else []
    if header:
        lines.append(f"[{header}]")
    lines += [f"{indent}{key} = {_toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string
