"""Z-Image settings: the Qwen3 file beside a single-file transformer, and the `zimage:` objective options.

The `zimage:` options are the diffusers Z-Image LoRA example's (`--weighting_scheme`, `--logit_mean`,
`--logit_std`, `--mode_scale`, `--max_sequence_length`) with its defaults, plus the shift of the
training schedule (the model's own: 3, as ai-toolkit trains with). Each says through `applies` when
it does nothing; `zimage_rules` refuses what a Z-Image run cannot use.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from engine.problems import Problem, error, warning
from engine.schema import Setting

import engine.families.zimage.reference as ref

ZIMAGE = ref.NAME
_DEFAULTS = {name: default for name, (default, _) in ref.TRAINING_OPTIONS.items()}


def is_zimage(values: Mapping[str, Any]) -> bool:
    return values.get("model.family") == ZIMAGE


def zimage_only(values: Mapping[str, Any]) -> str | None:
    name = values.get("model.family")
    if name in (None, "auto", ZIMAGE):
        return None
    return "only for Z-Image models"


def _single_file_zimage(values: Mapping[str, Any]) -> str | None:
    reason = zimage_only(values)
    if reason:
        return reason
    path = str(values.get("model.path") or "").lower()
    return None if path.endswith((".safetensors", ".sft")) else "only when the model path is a single Z-Image transformer file"


def _needs_logit_normal(values: Mapping[str, Any]) -> str | None:
    return zimage_only(values) or (None if values.get("zimage.weighting_scheme") == "logit_normal"
                                   else "only for the logit_normal weighting scheme")


def _needs_mode(values: Mapping[str, Any]) -> str | None:
    return zimage_only(values) or (None if values.get("zimage.weighting_scheme") == "mode"
                                   else "only for the mode weighting scheme")


MODEL_SETTINGS = [
    Setting(
        "model.qwen3", "path", None, "Qwen3 file (Z-Image)",
        "The Qwen3 text encoder as one .safetensors file, beside a single-file Z-Image transformer.",
        "A Z-Image transformer file (such as z_image_turbo_bf16.safetensors, as ComfyUI uses it) holds "
        "only the denoiser. Its text encoder, the Qwen3-4B language model, comes as a separate file "
        "(qwen_3_4b.safetensors), and so does FLUX.1's autoencoder (model.ae). Not needed for a "
        "diffusers Z-Image folder or hub id, which hold every part. It is never trained.",
        "model", ss_extra=False, optional=True, disk="read_file", applies=_single_file_zimage,
    ),
]

ZIMAGE_SETTINGS = [
    Setting(
        "zimage.weighting_scheme", "choice", _DEFAULTS["weighting_scheme"], "Weighting scheme",
        "How noise levels are drawn and weighted: none (even), logit_normal, mode, sigma_sqrt or cosmap.",
        "Flow matching mixes image and noise as (1−σ)·image + σ·noise at a level σ drawn for every "
        "image, read from the model's shifted 1000-step schedule (the timestep shift below). none "
        "picks a step of that schedule evenly and weights every image alike, as the diffusers example "
        "does by default. logit_normal and mode change how often each part of the schedule is picked "
        "(see their settings); sigma_sqrt and cosmap keep the even pick but weight the loss, sigma_sqrt "
        "strongly towards the clean end. For Z-Image-Turbo, which was distilled to finish a picture in "
        "about eight steps, the even pick over the shift-3 schedule spends training on the levels those "
        "few steps actually visit.",
        "advanced", choices=ref.WEIGHTING_SCHEMES, tier="expected", applies=zimage_only,
    ),
    Setting(
        "zimage.logit_mean", "float", _DEFAULTS["logit_mean"], "Logit mean",
        "Centre of the logit_normal draw: below 0 favours cleaner levels, above 0 noisier ones.",
        "The logit_normal scheme draws a normal number with this mean and the spread below and squashes "
        "it into 0…1 to pick the step. 0 centres the picks on the middle of the schedule.",
        "advanced", tier="expected", applies=_needs_logit_normal,
    ),
    Setting(
        "zimage.logit_std", "float", _DEFAULTS["logit_std"], "Logit spread",
        "Spread of the logit_normal draw: larger reaches the clean and noisy ends more often.",
        "The standard deviation of the normal number the logit_normal scheme squashes. 1 is the "
        "diffusers example's default.",
        "advanced", minimum=0, min_exclusive=True, tier="expected", applies=_needs_logit_normal,
    ),
    Setting(
        "zimage.mode_scale", "float", _DEFAULTS["mode_scale"], "Mode scale",
        "How strongly the mode scheme favours the middle of the schedule (1.29 by default).",
        "The mode scheme bends an even draw towards the middle noise levels; 0 leaves it even, and the "
        "diffusers example's 1.29 bends it clearly without emptying the ends.",
        "advanced", minimum=0, tier="expected", applies=_needs_mode,
    ),
    Setting(
        "zimage.timestep_shift", "float", _DEFAULTS["timestep_shift"], "Timestep shift",
        "Shift of the training schedule: 3 as Z-Image samples with (ai-toolkit trains with it too).",
        "Maps a level σ to shift·σ / (1 + (shift−1)·σ), so values above 1 spend more training on noisy "
        "levels, where composition is decided. Z-Image samples with a shift of 3, and Turbo's few steps "
        "are spread over that shifted schedule: keep 3 so the LoRA learns at the levels Turbo renders "
        "at. Z-Image-Turbo is step-distilled: a LoRA trained on it directly slowly pulls it back towards "
        "an ordinary many-step model, so after many steps its 8-step pictures can turn soft or "
        "washed-out. ai-toolkit counters this by merging a 'training adapter' (a LoRA that undoes the "
        "distillation) into Turbo while training and removing it for samples; a modest learning rate "
        "and step count, or training on the Z-Image base, serve the same end.",
        "advanced", minimum=0, min_exclusive=True, tier="expected", applies=zimage_only,
    ),
    Setting(
        "zimage.max_sequence_length", "int", _DEFAULTS["max_sequence_length"], "Caption tokens",
        "Qwen3 tokens per caption, chat framing included; longer captions are cut (512 as the pipeline).",
        "Each caption is laid out as a chat turn and read by Qwen3; padding is dropped before the "
        "transformer sees it, so a shorter limit only matters for very long captions. 512 is what "
        "ZImagePipeline and the diffusers example use.",
        "advanced", minimum=16, maximum=1024, tier="expected", applies=zimage_only,
    ),
]


# Generic settings a Z-Image run does not use (the diffusers example has none of them): each is
# disabled for Z-Image with the reason, and refused when set.
NOT_FOR_ZIMAGE: dict[str, str] = {
    "training.noise_offset": "Z-Image's flow matching draws plain noise, as the diffusers example does",
    "training.noise_offset_random_strength": "Z-Image uses no noise offset",
    "training.adaptive_noise_scale": "Z-Image uses no noise offset",
    "training.multires_noise_iterations": "Z-Image's flow matching draws plain noise",
    "training.multires_noise_discount": "Z-Image uses no multires noise",
    "training.min_timestep": "Z-Image draws its noise levels with zimage.weighting_scheme",
    "training.max_timestep": "Z-Image draws its noise levels with zimage.weighting_scheme",
    "training.min_snr_gamma": "Min-SNR weights DDPM noise levels; Z-Image's flow matching has none",
    "training.debiased_estimation_loss": "the debiased weights are defined over DDPM noise levels",
    "training.clip_skip": "Z-Image reads Qwen3's second-to-last layer, always",
    "training.max_token_length": "Z-Image's caption length is zimage.max_sequence_length",
    "training.attention": "Z-Image always uses PyTorch's attention",
    "sampling.sampler": "Z-Image samples with its own flow-matching Euler sampler",
}
QWEN_FROZEN = "Qwen3 stays frozen for Z-Image (as in the diffusers example and ai-toolkit)"


def _wrap(setting: Setting, reason_for_zimage, default_for_zimage=None) -> Setting:
    inner_applies, inner_default = setting.applies, setting.model_default

    def applies(values):
        if is_zimage(values):
            return reason_for_zimage(values)
        return inner_applies(values) if inner_applies else None

    changes: dict[str, Any] = {"applies": applies}
    if default_for_zimage is not None:
        def model_default(values):
            if is_zimage(values):
                return default_for_zimage
            if inner_default:
                return inner_default(values)
            if setting.key in values:  # an explicit empty value keeps its meaning for other families
                return values[setting.key]
            return list(setting.default) if isinstance(setting.default, list) else setting.default
        changes["model_default"] = model_default
    return replace(setting, **changes)


def with_zimage_adjustments(table: list[Setting]) -> list[Setting]:
    """The schema with what Z-Image cannot use disabled (with the reason), Qwen3's learning rate 0 by
    default for a Z-Image run, and FLUX.1's autoencoder file (`model.ae`) offered to Z-Image too."""
    out = []
    for s in table:
        if s.key in NOT_FOR_ZIMAGE:
            out.append(_wrap(s, lambda values, reason=NOT_FOR_ZIMAGE[s.key]: reason))
        elif s.key == "optimizer.text_encoder_lr":
            out.append(_wrap(s, lambda values: QWEN_FROZEN))  # disabled with the reason; Qwen3 is never adapted
        elif s.key == "model.ae":
            out.append(_wrap(s, _single_file_zimage))
        else:
            out.append(s)
    return out


def zimage_rules(v: Mapping[str, Any], table: Any) -> list[Problem]:
    """Refuse what a Z-Image run cannot use; name the files a single-file Z-Image still needs."""
    out: list[Problem] = []
    if not is_zimage(v):
        if zimage_only(v):
            for setting in ZIMAGE_SETTINGS:
                if v.get(setting.key, setting.default) != setting.default:
                    out.append(warning(setting.key, f"does nothing: {zimage_only(v)}", f"remove {setting.key}"))
        return out
    for key, reason in NOT_FOR_ZIMAGE.items():
        if key in v and v[key] != table[key].default:
            out.append(error(key, f"does not apply to Z-Image: {reason}", f"remove {key} (or set it to {table[key].default!r})"))
    if v.get("optimizer.text_encoder_lr") not in (None, 0, 0.0, table["optimizer.text_encoder_lr"].default):
        out.append(warning("optimizer.text_encoder_lr", f"does nothing: {QWEN_FROZEN}", "set optimizer.text_encoder_lr: 0"))
    if v.get("network.type", "lora") != "lora":
        out.append(error("network.type", f"{v['network.type']} is not offered for Z-Image (its files are plain LoRA)",
                         "set network.type: lora"))
    if str(v.get("model.path") or "").lower().endswith((".safetensors", ".sft")):
        for key, what in (("model.qwen3", "Qwen3 text encoder"), ("model.ae", "autoencoder")):
            if not v.get(key):
                out.append(error(key, f"a single-file Z-Image transformer needs its {what} as a file",
                                 f"set {key} to the matching .safetensors file"))
        if not v.get("model.config_dir"):
            out.append(error("model.config_dir", "a single-file Z-Image needs Z-Image's configs and tokenizer",
                             "set model.config_dir to a diffusers Z-Image folder (weights not needed)"))
    return out
