"""Building what a run trains: the base model on its device, the networks, and their parameters.

Kept apart from the loop so the benchmark's bare loop can build exactly the same modules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from ..config import SETTINGS, RunConfig
from .. import families
from ..families.load import load_base_model
from .run_family import run_family
from ..models.base_model import BaseModel
from ..networks.inject import apply_network, network_parameters
from ..networks.adapter_tensors import import_network, infer_rank_alpha
from ..problems import ProblemError, error
from .memory_savers import SaverState, attach_swap, family_problems, store_frozen, swap_split_for

TEXT_COMPONENTS = ("text_encoder", "text_encoder_2")


def resolve_mixed_precision(requested: str, device: torch.device) -> str:
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def weight_dtype_for(mixed_precision: str) -> torch.dtype:
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)


@dataclass
class NetworkShape:
    rank: int
    alpha: float
    conv_rank: int
    conv_alpha: float
    network_type: str


@dataclass
class TrainedModel:
    base: BaseModel
    shape: NetworkShape
    train_text_encoder: bool
    adapted: dict[str, list[str]] = field(default_factory=dict)  # component -> module paths
    continued_from: object | None = None  # the LoraFile network.weights named
    savers: SaverState = field(default_factory=SaverState)  # what the memory savers did

    @property
    def components(self) -> dict[str, torch.nn.Module]:
        parts = {"unet": self.base.unet}
        if self.train_text_encoder:
            for name, encoder in zip(TEXT_COMPONENTS, trainable_text_encoders(self.base)):
                parts[name] = encoder
        return parts

    def unet_parameters(self) -> list[torch.nn.Parameter]:
        return network_parameters(self.base.unet)

    def text_parameters(self) -> list[torch.nn.Parameter]:
        if not self.train_text_encoder:
            return []
        return [p for encoder in trainable_text_encoders(self.base) for p in network_parameters(encoder)]


def trainable_text_encoders(base: BaseModel) -> list[torch.nn.Module]:
    """The text encoders a LoRA may train: all of them, or the family's first ones (FLUX.1: CLIP-L)."""
    count = base.spec.trainable_text_encoders
    return list(base.text_encoders if count is None else base.text_encoders[:count])


def network_shape(cfg: RunConfig, continue_from=None, unet=None) -> NetworkShape:
    """Rank/alpha from the settings, or from the file being continued when dim_from_weights is on."""
    convs = cfg.network.type not in ("lora", "dylora")
    shape = NetworkShape(cfg.network.rank, cfg.network.alpha, cfg.network.conv_rank if convs else 0,
                         cfg.network.conv_alpha if convs else 0.0, cfg.network.type)
    if continue_from is not None and cfg.network.dim_from_weights:
        merged = {}
        for modules in continue_from.weights.values():
            merged.update(modules)
        rank, alpha, conv_rank, conv_alpha, network_type = infer_rank_alpha(merged, unet)
        plain_lora_into = {"locon", "dylora"}  # a plain LoRA file continues as either
        if network_type != cfg.network.type and not (network_type == "lora" and cfg.network.type in plain_lora_into):
            raise ProblemError([error("network.weights", f"the file holds a {network_type} network, the run trains {cfg.network.type}",
                                      f"set network.type: {network_type}")])
        shape = NetworkShape(rank, alpha, conv_rank or 0, conv_alpha or 0.0, cfg.network.type)
    return shape


def companion_files(cfg: RunConfig) -> dict[str, str | None]:
    """The files beside a single-file model (every file setting of the model screen), by setting name."""
    return {s.name: cfg.values[s.key] for s in SETTINGS if s.section == "model" and s.kind == "path" and s.disk == "read_file"}


def build_model(cfg: RunConfig, device: torch.device, weight_dtype: torch.dtype, continue_from=None) -> TrainedModel:
    """The base model with its networks; `continue_from` is a LoRA file's path (or a read LoraFile)."""
    base = load_base_model(cfg.model.path, config_dir=cfg.model.config_dir, family=run_family(cfg),
                           companions=companion_files(cfg))
    # `auto` knows the family only now
    problems = base.spec.run_problems(cfg.values, SETTINGS) + family_problems(base.spec, cfg.values)
    if problems:
        raise ProblemError(problems)
    if isinstance(continue_from, (str, os.PathLike)):
        continue_from = read_continue_file(continue_from, base)
    shape = network_shape(cfg, continue_from, base.unet)
    train_te = cfg.trains_text_encoder
    model = TrainedModel(base, shape, train_te, continued_from=continue_from)
    common = dict(network_type=shape.network_type, rank=shape.rank, alpha=shape.alpha, conv_rank=shape.conv_rank,
                  conv_alpha=shape.conv_alpha, dropout=cfg.network.dropout, rank_dropout=cfg.network.rank_dropout,
                  module_dropout=cfg.network.module_dropout, use_tucker=cfg.network.use_tucker,
                  lokr_factor=cfg.network.lokr_factor, lokr_decompose_both=cfg.network.lokr_decompose_both,
                  lokr_full_matrix=cfg.network.lokr_full_matrix, rank_dropout_scale=cfg.network.rank_dropout_scale,
                  dylora_unit=cfg.network.dylora_unit)
    base.vae.to(device, dtype=torch.float32)  # the VAE stays fp32: SDXL's overflows in fp16
    split = swap_split_for(base.spec, base.unet.config, cfg.training.blocks_to_swap)
    # with block swapping the denoiser is placed once its layers are final (swapped weights never visit the GPU)
    base.unet.to("cpu" if split else device, dtype=weight_dtype)
    model.adapted["unet"] = apply_network(base.unet, component="unet", train_norm=cfg.network.train_norm,
                                          targets=base.spec.network_targets(base.unet, cfg.values), **common)
    trainable = trainable_text_encoders(base)
    for name, encoder in zip(base.spec.text_encoder_components, base.text_encoders):
        encoder.to(device, dtype=weight_dtype)
        if train_te and encoder in trainable:
            model.adapted[name] = apply_network(encoder, component=name, **common)
    if continue_from is not None:
        _load_continue_weights(model, continue_from)
    store_frozen(model, cfg, device, weight_dtype, model.savers)
    if split:
        attach_swap(base, split, device, model.savers)
    base.spec.prepare_denoiser(base.unet, cfg)
    if cfg.training.gradient_checkpointing:
        base.unet.enable_gradient_checkpointing()
        if train_te:
            for encoder in trainable:
                encoder.gradient_checkpointing_enable()
    return model


def read_continue_file(path: str | os.PathLike, base: BaseModel):
    """The LoRA to continue from, read for this base model; every problem names network.weights."""
    try:
        found = base.spec.read_lora(path, base)
    except ProblemError as exc:
        raise ProblemError([error("network.weights", f"{path}: {p.message}", p.hint) for p in exc.problems]) from None
    if found.family_guess is not None and found.family_guess != base.spec.naming:
        raise ProblemError([error("network.weights", f"{path} is a LoRA for "
                                  f"{families.with_naming(found.family_guess).label}, "
                                  f"the base model is {base.spec.label}",
                                  "continue from a LoRA trained on this base model's family, or change model.path")])
    return found


def _load_continue_weights(model: TrainedModel, lora_file) -> None:
    weights = lora_file.weights
    if "unet" not in weights:
        raise ProblemError([error("network.weights", "the file holds no UNet weights", "is this a LoRA file?")])
    import_network(model.base.unet, "unet", weights["unet"])
    for name, encoder in model.components.items():
        if name == "unet":
            continue
        if name in weights:
            import_network(encoder, name, weights[name])
