"""FLUX.1 settings: the separate model files, the `flux:` objective options, text-encoder caching, fp8.

The `flux:` options follow sd-scripts' `flux_train_network.py` (same names, same defaults, kept in
`engine/families/flux1/reference.py`). Each setting says, through `applies`, when it does
not apply; `flux_rules` refuses a value set where it would do nothing, and the SD-only options a
Flux run cannot use (sd-scripts' Flux trainer ignores them too).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from engine.families.registry import REGISTRY, label
import engine.families.flux1.reference as ref
from engine.problems import Problem, error, warning
from engine.schema import Setting

FLUX = "flux1"


def is_flux(values: Mapping[str, Any]) -> bool:
    """The run names FLUX.1 (through `model.family` or the quick pick)."""
    return values.get("model.family") == FLUX


def _known_other_family(values: Mapping[str, Any]) -> str | None:
    """The label of the family the run names when it is not FLUX.1 (None for flux1 and auto)."""
    name = values.get("model.family")
    if name in REGISTRY and name != FLUX:
        return label(name)
    return None


def flux_only(values: Mapping[str, Any]) -> str | None:
    other = _known_other_family(values)
    return f"only for FLUX.1 models (this run is {other})" if other else None


def _single_file_flux(values: Mapping[str, Any]) -> str | None:
    reason = flux_only(values)
    if reason:
        return reason
    path = str(values.get("model.path") or "").lower()
    return None if path.endswith((".safetensors", ".sft")) else "only when the model path is a single FLUX.1 transformer file"


def _needs_sigmoid(values: Mapping[str, Any]) -> str | None:
    return flux_only(values) or (None if values.get("flux.timestep_sampling") in ("sigmoid", "shift", "flux_shift")
                                 else "only for the sigmoid, shift and flux_shift samplings")


def _needs_shift(values: Mapping[str, Any]) -> str | None:
    return flux_only(values) or (None if values.get("flux.timestep_sampling") in ("sigma", "shift")
                                 else "only for the sigma and shift samplings")


def _no_trained_text_encoder(values: Mapping[str, Any]) -> str | None:
    lr = values.get("optimizer.text_encoder_lr")
    if lr is None:
        lr = values.get("optimizer.learning_rate")
    return None if lr == 0 else "the text encoder is being trained (set its learning rate to 0 to cache)"


def _needs_te_cache(values: Mapping[str, Any]) -> str | None:
    return _no_trained_text_encoder(values) or (None if values.get("training.cache_text_encoder_outputs")
                                                else "needs 'cache text encoder outputs'")


_DEFAULTS = {name: default for name, (default, _) in ref.TRAINING_OPTIONS.items()}

FLUX_MODEL_SETTINGS = [
    Setting(
        "model.clip_l", "path", None, "CLIP-L file (FLUX.1)",
        "The CLIP-L text encoder as one .safetensors file, beside a single-file FLUX.1 transformer.",
        "A FLUX.1 transformer file (such as flux1-dev.safetensors, as ComfyUI and Forge use it) holds "
        "only the denoiser. Its two text encoders and its autoencoder come as separate files; this "
        "one is the small CLIP-L encoder (clip_l.safetensors). Not needed for a diffusers FLUX.1 "
        "folder or hub id, which hold every part.",
        "model", kohya="clip_l", ss_extra=False, optional=True, disk="read_file", applies=_single_file_flux,
    ),
    Setting(
        "model.t5xxl", "path", None, "T5-XXL file (FLUX.1)",
        "The T5-XXL text encoder as one .safetensors file (fp16 or fp8), for a single-file FLUX.1.",
        "The large T5 encoder turns each caption into per-word states that FLUX.1 reads through its "
        "attention. Give the t5xxl_fp16.safetensors (or fp8) file ComfyUI users have. It is never "
        "trained. Only needed when the model path is a single FLUX.1 transformer file.",
        "model", kohya="t5xxl", ss_extra=False, optional=True, disk="read_file", applies=_single_file_flux,
    ),
    Setting(
        "model.ae", "path", None, "Autoencoder file (FLUX.1)",
        "FLUX.1's 16-channel autoencoder (ae.safetensors), for a single-file FLUX.1.",
        "The autoencoder turns training images into the latents the transformer works on and "
        "samples back into pictures. Give the ae.safetensors file that comes with FLUX.1. Only "
        "needed when the model path is a single FLUX.1 transformer file.",
        "model", kohya="ae", ss_extra=False, optional=True, disk="read_file", applies=_single_file_flux,
    ),
]

FLUX_TRAINING_SETTINGS = [
    Setting(
        "training.cache_text_encoder_outputs", "bool", False, "Cache text encoder outputs",
        "Encode each caption once before training; the text encoders then leave memory.",
        "Runs every caption through the text encoders once, before the first step, and reuses the "
        "result. With no samples to draw, the encoders are then dropped from memory, which matters "
        "for FLUX.1's large T5. Captions must not change between steps, so caption shuffling and "
        "dropout cannot be used with it, and the text encoder cannot be trained.",
        "advanced", kohya="cache_text_encoder_outputs", tier="expected", applies=_no_trained_text_encoder,
    ),
    Setting(
        "training.cache_text_encoder_outputs_to_disk", "bool", False, "Cache text encoder outputs to disk",
        "Keep the encoded captions in files so later runs with the same captions start faster.",
        "Stores the encoded captions in tui-lora's cache folder, next to the latent cache. Another "
        "run with the same captions, text encoders and token length reuses them; a changed caption "
        "is encoded again. Needs 'cache text encoder outputs'.",
        "advanced", kohya="cache_text_encoder_outputs_to_disk", tier="expected", applies=_needs_te_cache,
    ),
    Setting(
        "training.fp8_base", "bool", False, "Base model in fp8",
        "Hold the frozen denoiser weights in 8-bit floats: about half the memory of bf16.",
        "The base model's own weights never change during LoRA training, so they can be stored in "
        "float8 (e4m3) and widened to the mixed-precision type for each layer's maths. This halves "
        "the denoiser's memory at a small cost in accuracy and speed; the LoRA itself still trains "
        "at full precision. Needs mixed precision bf16 or fp16 and a PyTorch with float8 support.",
        "advanced", kohya="fp8_base", tier="expected",
    ),
]

FLUX_SETTINGS = [
    Setting(
        "flux.timestep_sampling", "choice", _DEFAULTS["timestep_sampling"], "Timestep sampling",
        "How noise levels are drawn: sigma, uniform, sigmoid, shift or flux_shift.",
        "Flow matching mixes image and noise as (1−t)·image + t·noise and draws t for every image. "
        "sigma takes t from the shifted schedule (the discrete flow shift below); uniform draws t "
        "evenly; sigmoid squashes a normal draw, favouring the middle; shift does the same and then "
        "pushes it towards noise by the flow shift; flux_shift pushes it by an amount that grows "
        "with the image's size, as FLUX.1 does when generating.",
        "advanced", kohya="timestep_sampling", choices=("sigma", "uniform", "sigmoid", "shift", "flux_shift"),
        tier="expected", applies=flux_only,
    ),
    Setting(
        "flux.sigmoid_scale", "float", _DEFAULTS["sigmoid_scale"], "Sigmoid scale",
        "Spread of the sigmoid-based samplings: larger draws nearer to uniform.",
        "The normal draw is multiplied by this before the sigmoid. 1 concentrates noise levels in "
        "the middle; larger values spread them towards the clean and noisy ends.",
        "advanced", kohya="sigmoid_scale", minimum=0, min_exclusive=True, tier="expected", applies=_needs_sigmoid,
    ),
    Setting(
        "flux.discrete_flow_shift", "float", _DEFAULTS["discrete_flow_shift"], "Discrete flow shift",
        "Pushes the drawn noise levels towards noise; 3 as sd-scripts, 1 = no push.",
        "Maps a level t to shift·t / (1 + (shift−1)·t). Values above 1 spend more steps on noisy "
        "levels, where composition is decided. Used by the sigma and shift samplings.",
        "advanced", kohya="discrete_flow_shift", minimum=0, min_exclusive=True, tier="expected", applies=_needs_shift,
    ),
    Setting(
        "flux.model_prediction_type", "choice", _DEFAULTS["model_prediction_type"], "Model prediction type",
        "How the output is compared with the target: raw, additive or sigma_scaled.",
        "FLUX.1 predicts the direction from image to noise. raw compares that prediction with it as "
        "it is. additive adds the noisy input first. sigma_scaled (sd-scripts' default) turns the "
        "prediction into an estimate of the clean image (noisy input − t·prediction) before the "
        "comparison.",
        "advanced", kohya="model_prediction_type", choices=("raw", "additive", "sigma_scaled"), tier="expected",
        applies=flux_only,
    ),
    Setting(
        "flux.guidance_scale", "float", _DEFAULTS["guidance_scale"], "Guidance scale (training)",
        "The guidance value FLUX.1 [dev] is told during training; 1 is common for LoRAs, 3.5 default.",
        "FLUX.1 [dev] was distilled to take the guidance strength as an input instead of running "
        "twice. Training passes this value for every image. [schnell] has no such input, so it "
        "does nothing there.",
        "advanced", kohya="guidance_scale", minimum=0, tier="expected", applies=flux_only,
    ),
    Setting(
        "flux.t5xxl_max_token_length", "int", None, "T5 max tokens",
        "Caption tokens T5 reads; empty: 512 for [dev], 256 for [schnell].",
        "Longer captions are cut at this many T5 tokens, and shorter ones padded to it. Fewer tokens "
        "train faster. Leave empty to use the length each variant was distilled with.",
        "advanced", kohya="t5xxl_max_token_length", optional=True, minimum=1, maximum=512, tier="expected",
        applies=flux_only, empty_means="512 for dev, 256 for schnell",
    ),
    Setting(
        "flux.apply_t5_attn_mask", "bool", _DEFAULTS["apply_t5_attn_mask"], "T5 attention mask",
        "Hide T5's padding tokens from the encoder and the transformer's attention.",
        "Without the mask, the padding after a short caption is encoded and attended to like words, "
        "as FLUX.1 was trained. With it, padding is ignored, which some find cleaner for short "
        "captions.",
        "advanced", kohya="apply_t5_attn_mask", tier="expected", applies=flux_only,
    ),
]

# Settings of the SD (DDPM) objective and the CLIP caption handling that a FLUX.1 run does not use,
# as sd-scripts' Flux trainer does not: each is disabled for Flux with the reason, and refused.
SD_ONLY: dict[str, str] = {
    "training.noise_offset": "FLUX.1's flow matching draws plain noise (no offset), as sd-scripts does",
    "training.noise_offset_random_strength": "FLUX.1 uses no noise offset",
    "training.adaptive_noise_scale": "FLUX.1 uses no noise offset",
    "training.multires_noise_iterations": "FLUX.1's flow matching draws plain noise, as sd-scripts does",
    "training.multires_noise_discount": "FLUX.1 uses no multires noise",
    "training.min_timestep": "FLUX.1 draws its noise levels with flux.timestep_sampling",
    "training.max_timestep": "FLUX.1 draws its noise levels with flux.timestep_sampling",
    "training.min_snr_gamma": "Min-SNR weights DDPM noise levels; FLUX.1's flow matching has none",
    "training.debiased_estimation_loss": "the debiased weights are defined over DDPM noise levels",
    "training.clip_skip": "FLUX.1 uses CLIP-L's pooled output, which no layer skip changes",
    "training.max_token_length": "FLUX.1 reads 77 CLIP tokens; T5's length is flux.t5xxl_max_token_length",
    "training.attention": "FLUX.1 always uses PyTorch's attention",
    "sampling.sampler": "FLUX.1 samples with its own flow-matching Euler sampler",
    "network.train_norm": "the FLUX.1 LoRA layout (sd-scripts' lora_flux) has no norm keys",
}


def _sd_only_applies(key: str, reason: str, inner):
    def applies(values):
        if is_flux(values):
            return reason
        return inner(values) if inner else None
    applies.__name__ = f"applies_{key.replace('.', '_')}"
    return applies


def with_flux_exclusions(settings: list[Setting]) -> list[Setting]:
    """The settings with the SD-only ones disabled (with their reason) for FLUX.1."""
    return [replace(s, applies=_sd_only_applies(s.key, SD_ONLY[s.key], s.applies)) if s.key in SD_ONLY else s
            for s in settings]


def flux_rules(v: Mapping[str, Any], SETTINGS: Any) -> list[Problem]:
    """Refuse what a FLUX.1 run cannot use, and note Flux options set for another family
    (`SETTINGS`: the whole schema table, for the defaults of the SD-only settings)."""
    out: list[Problem] = []
    if is_flux(v):
        for key, reason in SD_ONLY.items():
            if v[key] != SETTINGS[key].default:
                out.append(error(key, f"does not apply to FLUX.1: {reason}",
                                 f"remove {key} (or set it to {SETTINGS[key].default!r})"))
        if v["network.type"] != "lora":
            out.append(error("network.type", f"{v['network.type']} is not offered for FLUX.1 (its Kohya files "
                             "name fused layers only plain LoRA can be written for)", "set network.type: lora"))
        if v["training.loss_type"] in ("huber", "smooth_l1") and v["training.huber_schedule"] == "snr":
            out.append(error("training.huber_schedule", "the snr schedule needs DDPM noise levels, which FLUX.1 has not",
                             "choose constant or exponential (as sd-scripts allows for Flux)"))
    else:
        for setting in FLUX_SETTINGS:
            if v[setting.key] != setting.default and _known_other_family(v):
                out.append(warning(setting.key, f"does nothing: {flux_only(v)}", f"remove {setting.key}"))
    if v["training.cache_text_encoder_outputs"] and _no_trained_text_encoder(v):
        out.append(error("training.cache_text_encoder_outputs",
                         "cached outputs cannot follow a text encoder that is being trained",
                         "set optimizer.text_encoder_lr: 0, or turn this off"))
    if v["training.cache_text_encoder_outputs"] and (v["captions.shuffle"] or v["captions.dropout_rate"]):
        key = "captions.shuffle" if v["captions.shuffle"] else "captions.dropout_rate"
        out.append(error(key, "changes captions every step, so their encoded form cannot be cached",
                         "turn it off, or turn training.cache_text_encoder_outputs off"))
    if v["training.cache_text_encoder_outputs_to_disk"] and not v["training.cache_text_encoder_outputs"]:
        out.append(error("training.cache_text_encoder_outputs_to_disk", "needs training.cache_text_encoder_outputs: true",
                         "turn cache_text_encoder_outputs on"))
    if v["training.fp8_base"] and v["training.mixed_precision"] == "no":
        out.append(error("training.fp8_base", "fp8 weights are computed in bf16 or fp16, and mixed precision is off",
                         "set training.mixed_precision: bf16 (or fp16), or turn fp8_base off"))
    if is_flux(v) and str(v.get("model.path") or "").lower().endswith((".safetensors", ".sft")):
        for key in ("model.clip_l", "model.t5xxl", "model.ae"):
            if not v[key]:
                out.append(error(key, "a single-file FLUX.1 transformer needs its text encoders and autoencoder as files",
                                 f"set {key} to the matching .safetensors file"))
        if not v["model.config_dir"]:
            out.append(error("model.config_dir", "a single-file FLUX.1 needs FLUX.1's configs and tokenizers",
                             "set model.config_dir to a diffusers FLUX.1 folder (weights not needed)"))
    return out
