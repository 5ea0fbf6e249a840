"""Cross-field rules: combinations of settings that are wrong (errors) or suspicious (warnings).

Each rule names the field the wizard should mark. Rules look only at values, never at the disk,
except the output-name rule, which checks the name's form and length against the output folder's file
system (not whether the file exists).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..problems import Problem, error, warning
from .. import families
from ..dataset.buckets import bucket_limit_problems
from .runconfig import SETTINGS
from .settings_subsets import subset_rules
from .text_encoder import text_encoder_trained
from .settings_model import QUICK_PICKS
from .settings_memory import memory_rules
from .settings_objective import objective_rules
from .settings_step_saves import step_save_rules
from .settings_lycoris import lycoris_rules
from .settings_dylora import dylora_rules
from .settings_scheduler_class import scheduler_class_rules
from .settings_training import native_side
from .settings_optimizer import LR_FREE_OPTIMIZERS, NO_WARMUP_SCHEDULERS
from .optimizer_args import optimizer_argument_problems  # torch-free: a table of the signatures

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")


def check_rules(v: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for rule in (_model_rules, _folder_rules, _network_rules, _resolution_rules, _optimizer_rules,
                 _training_rules, objective_rules, _family_rules, memory_rules, step_save_rules, lycoris_rules, dylora_rules,
                 scheduler_class_rules, subset_rules, _sampling_rules, _hardware_rules):
        problems.extend(rule(v))
    return problems


def _family_rules(v) -> list[Problem]:
    """Each registered family's rules about its own settings (FLUX.1: the flux: section)."""
    return [problem for family in families.REGISTRY.values() for problem in family.settings_rules(v, SETTINGS)]


def _model_rules(v) -> list[Problem]:
    out = []
    pick = v["model.quick_pick"]
    implied = QUICK_PICKS.get(pick)
    if implied:
        if v["model.family"] != implied["family"]:
            out.append(error("model.family", f"'{pick}' is {families.label(implied['family'])}, not "
                             f"{families.label(v['model.family'])}",
                             f"set model.family: {implied['family']}, or model.quick_pick: custom"))
    elif pick == "custom" and not v["model.path"]:
        out.append(error("model.path", "a custom model needs a path", "give a diffusers folder, a .safetensors/.ckpt file or a hub id"))
    if v["model.save_as"] == "ckpt":
        out.append(warning("model.save_as", "ckpt files are Python pickles: opening one can run code, and they keep no metadata",
                           "use safetensors unless an old tool needs ckpt"))
    return out


def _folder_rules(v) -> list[Problem]:
    out = []
    if not v["folders.images"]:
        out.append(error("folders.images", "the image folder is required", "give the folder that holds your '<repeats>_<name>' folders"))
    if not v["folders.output"]:
        out.append(error("folders.output", "an output folder is required", "e.g. ./output"))
    name = v["folders.output_name"]
    if not name or not _SAFE_NAME.match(name) or ".." in name or name.strip() != name:
        out.append(error("folders.output_name", f"'{name}' is not a safe file name",
                         "use letters, digits, '-', '_' and '.', with no folder separators"))
    else:
        from ..outputs import output_name_problems  # the name plus the longest suffix the run adds

        out += output_name_problems(name, v["folders.output"])
    if v["training.caption_extension"] and not v["training.caption_extension"].startswith("."):
        out.append(error("training.caption_extension", "must start with a dot", f"write '.{v['training.caption_extension']}'"))
    if v["logging.log_with"] in ("wandb", "all") and not v["folders.logging"]:
        out.append(warning("folders.logging", "logging.log_with is set but no logging folder is given: nothing is logged",
                           "set folders.logging to a folder"))
    if v["folders.regularization"] and v["folders.regularization"] == v["folders.images"]:
        out.append(error("folders.regularization", "is the same folder as the training images", "use a separate folder of class images"))
    return out


def _network_rules(v) -> list[Problem]:
    out = []
    if v["network.alpha"] > v["network.rank"]:
        out.append(warning("network.alpha", f"alpha {v['network.alpha']:g} is above rank {v['network.rank']}: updates are amplified",
                           "alpha is usually ≤ rank (1 or rank/2 are common)"))
    if v["network.type"] not in ("lora", "dylora") and v["network.conv_alpha"] > v["network.conv_rank"]:
        out.append(warning("network.conv_alpha", "conv alpha is above conv rank: updates are amplified", "keep conv alpha ≤ conv rank"))
    if v["network.dim_from_weights"] and not v["network.weights"]:
        out.append(error("network.dim_from_weights", "needs a LoRA file to read the rank from",
                         "set network.weights, or turn dim_from_weights off"))
    weights = v["network.weights"]
    if weights and not str(weights).lower().endswith((".safetensors", ".ckpt", ".pt")):
        out.append(error("network.weights", f"'{weights}' is not a LoRA file", "give a .safetensors file"))
    return out


# Above this many times the model's native side, training is slow and the model composes badly.
FAR_ABOVE_NATIVE = 1.5


def _native_size_rules(v, width: int, height: int) -> list[Problem]:
    side, where = native_side(v)
    if max(width, height) <= side * FAR_ABOVE_NATIVE:
        return []
    return [warning("training.max_resolution", f"{width}×{height} is far above the model's native {side} px "
                    f"(from {where}): each step costs much more and images tend to repeat or distort",
                    f"train at about {side}×{side}, the size the model was made for")]


def _resolution_rules(v) -> list[Problem]:
    out = []
    step = v["buckets.step"]
    if step % 8:
        out.append(error("buckets.step", f"{step} is not a multiple of 8", "use 8, 16, 32 or 64"))
        return out
    width, height = v["training.max_resolution"]
    out += _native_size_rules(v, width, height)
    for side, label in ((width, "width"), (height, "height")):
        if side % step:
            out.append(error("training.max_resolution", f"{label} {side} is not a multiple of the bucket step {step}",
                             f"use {max(step, side // step * step)} or {(side // step + 1) * step}"))
    if v["buckets.enabled"]:
        low, high = v["buckets.min_resolution"], v["buckets.max_resolution"]
        for key, side in (("buckets.min_resolution", low), ("buckets.max_resolution", high)):
            if side % step:
                out.append(error(key, f"{side} is not a multiple of the bucket step {step}",
                                 f"use {max(step, side // step * step)}"))
    # the limits' rule is the scan's own (dataset/buckets.py): what validate passes, the scan takes
    out += bucket_limit_problems((width, height), enabled=v["buckets.enabled"], min_side=v["buckets.min_resolution"],
                                 max_side=v["buckets.max_resolution"], step=step, no_upscale=v["buckets.no_upscale"])
    return out


def _optimizer_rules(v) -> list[Problem]:
    out = []
    scheduler = v["optimizer.scheduler"]
    if scheduler in NO_WARMUP_SCHEDULERS and v["optimizer.warmup_percent"] > 0:
        out.append(warning("optimizer.warmup_percent", f"warmup is ignored by the '{scheduler}' schedule",
                           "use constant_with_warmup for a warmup, or set warmup to 0"))
    if scheduler == "adafactor" and v["optimizer.name"] != "Adafactor":
        out.append(error("optimizer.scheduler", "the 'adafactor' schedule works only with the Adafactor optimizer",
                         "choose another schedule or optimizer.name: Adafactor"))
    if scheduler == "piecewise_constant" and not v["optimizer.step_rules"].strip():
        out.append(error("optimizer.step_rules", "piecewise_constant needs step rules", "e.g. '1:100,0.5:200,0.1'"))
    if v["optimizer.step_rules"].strip() and not re.fullmatch(r"\s*([0-9.eE+-]+:\d+\s*,\s*)*[0-9.eE+-]+\s*", v["optimizer.step_rules"]):
        out.append(error("optimizer.step_rules", f"'{v['optimizer.step_rules']}' is not 'multiplier:step,…,final'", "e.g. '1:100,0.5:200,0.1'"))
    if v["optimizer.name"] in LR_FREE_OPTIMIZERS:
        for key in ("optimizer.learning_rate", "optimizer.unet_lr", "optimizer.text_encoder_lr"):
            if v[key] not in (None, 0) and v[key] < 0.1:
                out.append(warning(key, f"{v['optimizer.name']} finds its own step size; the learning rate is a multiplier "
                                        f"and {v[key]:g} makes it {1 / v[key]:.0f}× smaller than intended", "set it to 1"))
    # the names and kinds the optimizer takes, from a table of its signature: no import of it here
    out += optimizer_argument_problems(v["optimizer.name"], v["optimizer.extra_args"], scheduler=scheduler)
    return out


def _training_rules(v) -> list[Problem]:
    out = []
    if v["logging.log_prefix"] and not re.fullmatch(r"[A-Za-z0-9._-]+", v["logging.log_prefix"]):
        out.append(error("logging.log_prefix", f"'{v['logging.log_prefix']}' would not make a plain folder name",
                         "use letters, digits, '-', '_' and '.' only"))
    if v["training.stop_text_encoder_percent"] > 0 and not text_encoder_trained(v):
        out.append(warning("training.stop_text_encoder_percent", "the text encoder is not trained (its learning rate is 0), so stopping it does nothing",
                           "set it to 0, or give the text encoder a learning rate"))
    if v["training.cache_latents_to_disk"] and not v["training.cache_latents"]:
        out.append(error("training.cache_latents_to_disk", "needs training.cache_latents: true", "turn cache_latents on"))
    if v["augment.random_crop"] and v["training.cache_latents"]:
        out.append(error("augment.random_crop", "random crop cannot be used with cached latents (the crop would never change)",
                         "turn training.cache_latents off, or random_crop off"))
    epochs = v["training.max_train_epochs"] or v["training.epochs"]
    every = v["training.save_every_n_epochs"]
    if every and every > epochs:
        out.append(warning("training.save_every_n_epochs", f"saving every {every} epochs in a {epochs}-epoch run writes no intermediate file",
                           f"use a value ≤ {epochs}"))
    if v["training.max_train_epochs"] and v["training.max_train_epochs"] != v["training.epochs"] and v["training.epochs"] != 1:
        out.append(warning("training.max_train_epochs", f"replaces training.epochs ({v['training.epochs']}): the run has {epochs} epochs", ""))
    if v["training.max_train_epochs"] and v["training.max_train_steps"]:
        out.append(warning("training.max_train_steps", f"is ignored: training.max_train_epochs ({v['training.max_train_epochs']}) "
                           "decides the run's length, as in the Kohya scripts", "clear one of the two"))
    if v["captions.keep_tokens"] and not v["captions.shuffle"]:
        out.append(warning("captions.keep_tokens", "only matters when captions are shuffled", "turn captions.shuffle on, or set it to 0"))
    if v["training.prior_loss_weight"] != 1.0 and not v["folders.regularization"]:
        out.append(warning("training.prior_loss_weight", "has no effect without a regularisation folder", "set folders.regularization"))
    if families.of_values(v).text_conditioning == "clip_pair_pooled" and v["training.clip_skip"] > 1:
        out.append(warning("training.clip_skip", "SDXL already uses its encoders' penultimate layer; clip skip above 1 is unusual", "keep 1 for SDXL"))
    return out


def _sampling_rules(v) -> list[Problem]:
    out = []
    prompts = v["sampling.prompts"]
    if (v["sampling.every_n_epochs"] or v["sampling.every_n_steps"]) and not prompts:
        out.append(warning("sampling.prompts", "a sampling interval is set but there are no prompts: no samples are made", "add prompts"))
    return out


def _hardware_rules(v) -> list[Problem]:
    out = []
    ids = v["hardware.gpu_ids"]
    if ids and len(ids) < v["hardware.num_processes"]:
        out.append(error("hardware.gpu_ids", f"{len(ids)} GPU id(s) for {v['hardware.num_processes']} processes",
                         "list one id per process, or leave gpu_ids empty"))
    if len(set(ids)) != len(ids):
        out.append(error("hardware.gpu_ids", "lists a GPU twice", "give each id once"))
    return out
