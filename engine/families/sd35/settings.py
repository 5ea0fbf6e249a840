"""SD 3.5 settings: the `sd35:` objective and caption options, as sd-scripts' `sd3_train_network.py` names them.

Names and defaults are sd-scripts' (kept in `reference.py`); each setting's `kohya=` is its
sd-scripts/Kohya GUI key. Each says, through `applies`, when it does nothing; `sd35_rules` refuses a
value that cannot work and what an SD 3.5 run cannot use (as sd-scripts' SD3 trainer does not).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from engine.schema import Setting
from engine.problems import Problem, error, warning

import engine.families.sd35.reference as ref
from engine.families.registry import label

FAMILY = "sd35"
_DEFAULTS = {name: default for name, (default, _) in ref.TRAINING_OPTIONS.items()}


def is_sd35(values: Mapping[str, Any]) -> bool:
    return values.get("model.family") == FAMILY


def sd35_only(values: Mapping[str, Any]) -> str | None:
    """Why an `sd35:` option does nothing: the run names another family (auto may still be SD 3.5)."""
    name = values.get("model.family")
    if name in (None, "auto", FAMILY):
        return None
    return f"only for SD 3.5 models (this run is {label(name)})"


def _needs(scheme: str):
    def applies(values: Mapping[str, Any]) -> str | None:
        return sd35_only(values) or (None if values.get("sd35.weighting_scheme") == scheme
                                     else f"only with the {scheme} weighting scheme")
    applies.__name__ = f"needs_{scheme}"
    return applies


def is_single_file(values: Mapping[str, Any]) -> bool:
    return str(values.get("model.path") or "").lower().endswith((".safetensors", ".sft"))


def _single_file_sd35(values: Mapping[str, Any]) -> str | None:
    return sd35_only(values) or (None if is_single_file(values) else "only when the model path is a single SD 3.5 file")


# The companion files a single SD 3.5 file needs, besides model.clip_g below. model.clip_l, model.t5xxl
# and model.ae are the same files FLUX.1 uses (declared with FLUX.1's settings); SD 3.5 widens where
# they apply (`with_sd35_adjustments`).
COMPANIONS = ("model.clip_l", "model.clip_g", "model.t5xxl")

SD35_MODEL_SETTINGS = [
    Setting(
        "model.clip_g", "path", None, "CLIP-G file (SD 3.5)",
        "The CLIP-G text encoder as one .safetensors file, beside a single-file SD 3.5 model.",
        "SD 3.5's single model file (such as sd3.5_large.safetensors, as ComfyUI and Forge use it) "
        "holds the transformer and usually the autoencoder; its three text encoders come as separate "
        "files. This one is the large OpenCLIP encoder (clip_g.safetensors); CLIP-L and T5-XXL go in "
        "their own fields. Not needed for a diffusers SD 3.5 folder or hub id, which hold every part.",
        "model", kohya="clip_g", ss_extra=False, optional=True, disk="read_file", applies=_single_file_sd35,
    ),
]

SD35_SETTINGS = [
    Setting(
        "sd35.weighting_scheme", "choice", _DEFAULTS["weighting_scheme"], "Weighting scheme",
        "Which noise levels training favours: uniform, logit_normal, mode, sigma_sqrt or cosmap.",
        "SD 3.5 learns to turn a mix (1−t)·image + t·noise back into the image, for a level t drawn "
        "per image. uniform (sd-scripts' default; none is the same) draws t evenly and weights every "
        "image alike. logit_normal and mode draw t more often in the middle, where the SD3 paper "
        "found training most useful (logit_normal is what the Kohya GUI preselects). sigma_sqrt and "
        "cosmap draw evenly but weight the loss instead: sigma_sqrt by 1/t², which leans hard on the "
        "nearly clean end (fine detail), cosmap more gently on the middle.",
        "advanced", kohya="weighting_scheme", choices=ref.WEIGHTING_SCHEMES, tier="expected", applies=sd35_only,
    ),
    Setting(
        "sd35.logit_mean", "float", _DEFAULTS["logit_mean"], "Logit mean",
        "Centre of the logit_normal draw: 0 is the middle, above 0 noisier, below 0 cleaner.",
        "With logit_normal, t is a sigmoid of a normal draw with this mean. 0 centres the draws on "
        "t = 0.5; a positive mean spends more steps on noisy levels (overall shape), a negative one "
        "on cleaner levels (detail).",
        "advanced", kohya="logit_mean", tier="expected", applies=_needs("logit_normal"),
    ),
    Setting(
        "sd35.logit_std", "float", _DEFAULTS["logit_std"], "Logit std",
        "Spread of the logit_normal draw: smaller keeps t near the centre, larger reaches the ends.",
        "The standard deviation of the normal draw before the sigmoid. 1 (the default) covers most "
        "levels while favouring the centre; small values train almost only at the centre.",
        "advanced", kohya="logit_std", minimum=0, min_exclusive=True, tier="expected", applies=_needs("logit_normal"),
    ),
    Setting(
        "sd35.mode_scale", "float", _DEFAULTS["mode_scale"], "Mode scale",
        "How strongly the mode scheme bends the draw towards the middle; 0 is uniform.",
        "The mode scheme maps an even draw u to 1 − u − s·(cos²(πu/2) − 1 + u). With s = 0 it stays "
        "even; the default 1.29 (from the SD3 paper) gathers draws around the middle levels.",
        "advanced", kohya="mode_scale", tier="expected", applies=_needs("mode"),
    ),
    Setting(
        "sd35.training_shift", "float", _DEFAULTS["training_shift"], "Training shift",
        "Pushes every drawn level towards noise (above 1) or towards the image (below 1); 1 = none.",
        "Applied on top of the weighting scheme: t becomes s·t / (1 + (s−1)·t). Above 1 more steps "
        "go to noisy levels, where composition and layout are decided; below 1 more go to the clean "
        "end, where texture and detail are. SD 3.5 itself samples with a shift of 3.",
        "advanced", kohya="training_shift", minimum=0, min_exclusive=True, tier="expected", applies=sd35_only,
    ),
    Setting(
        "sd35.t5xxl_max_token_length", "int", _DEFAULTS["t5xxl_max_token_length"], "T5 max tokens",
        "Caption tokens T5 reads (sd-scripts' 256); captions are padded or cut to it.",
        "SD 3.5 reads each caption three times: CLIP-L and CLIP-G see 77 tokens, T5-XXL this many. "
        "Longer captions are cut here and shorter ones padded, so fewer tokens train faster and use "
        "less memory. diffusers samples with 256 by default.",
        # sd-scripts' option, but no kohya= name: the GUI's field of that name is FLUX.1's (flux.*)
        "advanced", minimum=1, maximum=ref.T5_MAX_TOKENS_LIMIT, tier="expected",
        applies=sd35_only,
    ),
    Setting(
        "sd35.apply_lg_attn_mask", "bool", _DEFAULTS["apply_lg_attn_mask"], "CLIP-L/G attention mask",
        "Let CLIP-L and CLIP-G ignore the padding after a short caption.",
        "Without the mask (as SD 3.5 was trained and as diffusers samples) the padding tokens take "
        "part in the CLIP encoders' attention. With it they are hidden inside the encoders.",
        "advanced", kohya="apply_lg_attn_mask", tier="expected", applies=sd35_only,
    ),
    Setting(
        "sd35.apply_t5_attn_mask", "bool", _DEFAULTS["apply_t5_attn_mask"], "T5 attention mask",
        "Let T5 ignore the padding after a short caption.",
        "As for CLIP: without the mask the padding is encoded like words, as SD 3.5 was trained; "
        "with it T5 hides the padding. The transformer sees every token either way (as in sd-scripts).",
        "advanced", tier="expected", applies=sd35_only,  # no kohya= name: the GUI's field is FLUX.1's
    ),
    Setting(
        "sd35.clip_l_dropout_rate", "float", _DEFAULTS["clip_l_dropout_rate"], "CLIP-L dropout",
        "Share of steps each image trains without CLIP-L's part of its caption.",
        "Drops CLIP-L's states and pooled vector (sets them to zero) for a caption with this "
        "probability, so the LoRA does not lean on one encoder. 0 keeps every encoder every step.",
        "advanced", kohya="clip_l_dropout_rate", minimum=0, maximum=1, tier="expected", applies=sd35_only,
    ),
    Setting(
        "sd35.clip_g_dropout_rate", "float", _DEFAULTS["clip_g_dropout_rate"], "CLIP-G dropout",
        "Share of steps each image trains without CLIP-G's part of its caption.",
        "As CLIP-L dropout, for the larger CLIP-G encoder.",
        "advanced", kohya="clip_g_dropout_rate", minimum=0, maximum=1, tier="expected", applies=sd35_only,
    ),
    Setting(
        "sd35.t5_dropout_rate", "float", _DEFAULTS["t5_dropout_rate"], "T5 dropout",
        "Share of steps each image trains without T5's part of its caption.",
        "As CLIP-L dropout, for T5-XXL. SD 3.5 can generate without T5, so some users train a LoRA "
        "that works either way by dropping it now and then.",
        "advanced", kohya="t5_dropout_rate", minimum=0, maximum=1, tier="expected", applies=sd35_only,
    ),
    Setting(
        "sd35.lora_format", "choice", "kohya", "LoRA key names",
        "kohya: sd-scripts' names (ComfyUI, Forge, sd-scripts); diffusers: for diffusers' load_lora_weights.",
        "The same trained weights can be named two ways. kohya writes sd-scripts' own SD3 names "
        "(lora_unet_joint_blocks_…, lora_te1_/lora_te2_), which ComfyUI, Forge and sd-scripts load. "
        "diffusers writes the names diffusers' StableDiffusion3Pipeline.load_lora_weights reads "
        "(transformer.…, text_encoder.…); ComfyUI loads those too, except SD 3.5 Medium's second "
        "attention layers. diffusers 0.42 cannot read the kohya names, so pick diffusers for it.",
        "advanced", choices=("kohya", "diffusers"), tier="expected", applies=sd35_only, ss_extra=False,
    ),
]

# What sd-scripts' SD3 trainer does not use (its noise is plain, its levels come from sd35.*), so
# an SD 3.5 run refuses them with the reason.
SD_ONLY: dict[str, str] = {
    "training.noise_offset": "SD 3.5's flow matching draws plain noise, as sd-scripts does",
    "training.noise_offset_random_strength": "SD 3.5 uses no noise offset",
    "training.adaptive_noise_scale": "SD 3.5 uses no noise offset",
    "training.multires_noise_iterations": "SD 3.5's flow matching draws plain noise, as sd-scripts does",
    "training.multires_noise_discount": "SD 3.5 uses no multires noise",
    "training.ip_noise_gamma": "sd-scripts' SD3 trainer perturbs no input noise",
    "training.ip_noise_gamma_random_strength": "SD 3.5 uses no input perturbation",
    "training.min_snr_gamma": "Min-SNR weights DDPM noise levels; use sd35.weighting_scheme",
    "training.debiased_estimation_loss": "the debiased weights are defined over DDPM noise levels",
    "training.clip_skip": "SD 3.5 reads CLIP's penultimate layer, as it was trained",
    "training.max_token_length": "SD 3.5's CLIPs read 77 tokens; T5's length is sd35.t5xxl_max_token_length",
    "training.attention": "SD 3.5 always uses PyTorch's attention",
    "sampling.sampler": "SD 3.5 samples with its own flow-matching Euler sampler",
}


def _or_sd35_single_file(inner):
    def applies(values: Mapping[str, Any]) -> str | None:
        if is_sd35(values) and is_single_file(values):
            return None
        return inner(values) if inner else None
    applies.__name__ = f"sd35_or_{getattr(inner, '__name__', 'any')}"
    return applies


def _sd_only_applies(reason: str, inner):
    def applies(values: Mapping[str, Any]) -> str | None:
        if is_sd35(values):
            return reason
        return inner(values) if inner else None
    applies.__name__ = "sd35_excluded"
    return applies


def with_sd35_adjustments(table: list[Setting]) -> list[Setting]:
    """The schema with what SD 3.5 cannot use disabled (with the reason), and the shared companion
    files (model.clip_l, model.t5xxl, model.ae) applying to a single-file SD 3.5 too."""
    out = []
    for setting in table:
        if setting.key in SD_ONLY:
            setting = replace(setting, applies=_sd_only_applies(SD_ONLY[setting.key], setting.applies))
        elif setting.key in ("model.clip_l", "model.t5xxl", "model.ae"):
            setting = replace(setting, applies=_or_sd35_single_file(setting.applies))
        out.append(setting)
    return out


def sd35_rules(v: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[Problem]:
    """Refuse what an SD 3.5 run cannot use; note `sd35:` options set for another family.

    `defaults` maps each setting key to its schema default (the caller owns the schema).
    """
    out: list[Problem] = []
    if is_sd35(v):
        for key, reason in SD_ONLY.items():
            if key in v and v[key] != defaults.get(key):
                out.append(error(key, f"does not apply to SD 3.5: {reason}",
                                 f"remove {key} (or set it to {defaults.get(key)!r})"))
        if v.get("network.type", "lora") != "lora":
            out.append(error("network.type", f"{v['network.type']} is not offered for SD 3.5 (its files name fused "
                             "qkv layers only plain LoRA can be written for)", "set network.type: lora"))
        if v.get("training.loss_type") in ("huber", "smooth_l1") and v.get("training.huber_schedule") == "snr":
            out.append(error("training.huber_schedule", "the snr schedule needs DDPM noise levels, which SD 3.5 has not",
                             "choose constant or exponential (as sd-scripts allows for SD3)"))
        if is_single_file(v):
            for key in COMPANIONS:
                if not v.get(key):
                    out.append(error(key, "a single-file SD 3.5 model needs its text encoders as files",
                                     f"set {key} to the matching .safetensors file"))
            if not v.get("model.config_dir"):
                out.append(error("model.config_dir", "a single-file SD 3.5 needs SD 3.5's configs and tokenizers",
                                 "set model.config_dir to a diffusers SD 3.5 folder (weights not needed)"))
        low, high = v.get("training.min_timestep"), v.get("training.max_timestep")
        if low is not None and high is not None and low >= high:
            out.append(error("training.max_timestep", f"must be above training.min_timestep ({low})",
                             "raise max_timestep or lower min_timestep"))
    elif sd35_only(v):
        for setting in SD35_SETTINGS:
            if setting.key in v and v[setting.key] != setting.default:
                out.append(warning(setting.key, f"does nothing: {sd35_only(v)}", f"remove {setting.key}"))
    return out


def training_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The `sd35:` values recorded in the metadata, by sd-scripts' option name."""
    return {name: values[f"sd35.{name}"] for name in ref.TRAINING_OPTIONS if f"sd35.{name}" in values}
