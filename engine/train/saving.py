"""Writing the LoRA: file names, metadata from the run's settings, and pruning old epoch saves."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from ..config import SETTINGS, RunConfig
from .. import families
from ..lorafile.metadata import build_metadata
from ..networks.adapter_tensors import export_network
from ..output_names import epoch_save_stem, step_save_stem

SAVE_DTYPES = {"float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
def output_file(cfg: RunConfig, epoch: int | None = None) -> Path:
    """`<output>/<name>.safetensors`, or `<name>-00000N.safetensors` for an epoch save."""
    suffix = ".ckpt" if cfg.model.save_as == "ckpt" else ".safetensors"
    name = cfg.folders.output_name if epoch is None else epoch_save_stem(cfg.folders.output_name, epoch)
    return Path(cfg.folders.output) / f"{name}{suffix}"


def step_file(cfg: RunConfig, step: int) -> Path:
    suffix = ".ckpt" if cfg.model.save_as == "ckpt" else ".safetensors"
    return Path(cfg.folders.output) / f"{step_save_stem(cfg.folders.output_name, step)}{suffix}"


def steps_to_remove(saved_steps: list[int], current: int, last_n: int | None) -> list[int]:
    """sd-scripts get_remove_step_no, as a set: saves more than `last_n` steps before the current
    step go (every=10, last_n=30 at step 50 keeps 20, 30, 40 and 50)."""
    return [step for step in saved_steps if last_n and step < current - last_n]


def lorafile_family(family: str) -> str:
    """The Kohya naming a family's LoRA files use (SD 2.x with or without v share one)."""
    return families.get(family).naming


def network_module_and_args(cfg: RunConfig, shape) -> tuple[str, dict]:
    args: dict = {}
    if shape.network_type == "lora":
        module = "networks.lora"
    elif shape.network_type == "dylora":
        module = "networks.dylora"
        args["unit"] = cfg.network.dylora_unit
    elif shape.network_type == "locon":
        module = "networks.lora"
        args.update(conv_dim=shape.conv_rank, conv_alpha=shape.conv_alpha)
        if cfg.network.train_norm:
            args["train_norm"] = True  # LyCORIS' network argument (sd-scripts' LoRA has no norm deltas)
    else:
        module = "lycoris.kohya"
        args.update(algo=shape.network_type, conv_dim=shape.conv_rank, conv_alpha=shape.conv_alpha)
        args.update(lycoris_args(cfg, shape.network_type))
    if cfg.network.rank_dropout:
        args["rank_dropout"] = cfg.network.rank_dropout
    if cfg.network.module_dropout:
        args["module_dropout"] = cfg.network.module_dropout
    return module, args


def lycoris_args(cfg: RunConfig, network_type: str) -> dict:
    """The LyCORIS options that differ from LyCORIS' defaults, under its network_args names."""
    n = cfg.network
    wanted = {"use_tucker": n.use_tucker, "rank_dropout_scale": n.rank_dropout_scale, "train_norm": n.train_norm}
    if network_type == "lokr":
        wanted.update(factor=n.lokr_factor, decompose_both=n.lokr_decompose_both, full_matrix=n.lokr_full_matrix)
    defaults = {"factor": -1}
    return {key: value for key, value in wanted.items() if value != defaults.get(key, False)}


def extra_metadata(cfg: RunConfig, family: families.ModelFamily | None = None) -> dict[str, str]:
    # another family's own section (the flux: options on an SD run) says nothing about this LoRA
    foreign = {f.settings_section for f in families.REGISTRY.values() if f.settings_section} - {
        family.settings_section if family is not None else ""}
    extra = {}
    for setting in SETTINGS:
        if not setting.kohya or not setting.ss_extra or setting.kind == "path" or setting.section in foreign:
            continue
        value = cfg.values[setting.key]
        if setting.kind in ("list", "int_list", "pair"):
            value = json.dumps(value)
        extra[setting.kohya] = value
    return extra


def gather_weights(trained) -> dict:
    return {name: export_network(module, name) for name, module in trained.components.items()}


def save_lora(path: Path, cfg: RunConfig, trained, facts: dict) -> int:
    """Write the LoRA file atomically; returns its size in bytes."""
    module, args = network_module_and_args(cfg, trained.shape)
    family = families.for_file(lorafile_family(trained.base.family), trained.base.is_v_prediction)
    full_facts = {
        "family": family,
        "v_parameterization": trained.base.is_v_prediction,
        "network_module": module,
        "network_dim": trained.shape.rank,
        "network_alpha": trained.shape.alpha,
        "network_args": args,
        "network_dropout": cfg.network.dropout or None,
        "resolution": tuple(cfg.training.max_resolution),
        "learning_rate": cfg.optimizer.learning_rate,
        "unet_lr": cfg.unet_lr,
        "text_encoder_lr": cfg.text_encoder_lr,
        "lr_scheduler": cfg.optimizer.scheduler,
        "output_name": cfg.folders.output_name,
        "training_comment": cfg.folders.training_comment or None,
        "clip_skip": cfg.training.clip_skip,
        "title": cfg.metadata.title or cfg.folders.output_name,
        "author": cfg.metadata.author,
        "description": cfg.metadata.description,
        "license": cfg.metadata.license,
        "tags": cfg.metadata.tags,
        **facts,
    }
    spec = trained.base.spec
    extra = extra_metadata(cfg, spec)
    datasets = full_facts.pop("datasets", None)
    if datasets:
        extra["ss_datasets"] = datasets
    metadata = spec.finish_metadata(build_metadata(full_facts, extra), cfg, trained.base)
    spec.write_lora(path, gather_weights(trained), base=trained.base, metadata=metadata,
                    save_dtype=SAVE_DTYPES[cfg.training.save_precision], fmt=cfg.model.save_as)
    return path.stat().st_size


def prune_epoch_saves(cfg: RunConfig, written_by_run: list[Path]) -> list[Path]:
    """Keep the newest `save_last_n_epochs` epoch files this run wrote; return the ones removed."""
    keep = cfg.training.save_last_n_epochs
    if not keep:
        return []
    pattern = re.compile(re.escape(cfg.folders.output_name) + r"-\d{6}\.(safetensors|ckpt)$")
    ours = [p for p in written_by_run if pattern.match(p.name)]
    removed = ours[:-keep] if len(ours) > keep else []
    for path in removed:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        written_by_run.remove(path)
    return removed
