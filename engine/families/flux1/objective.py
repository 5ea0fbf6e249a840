"""FLUX.1's training step: flow matching over 2×2-packed latents, as sd-scripts' Flux trainer does it.

Followed (same formulas, own code): sd-scripts `library/flux_train_utils.py`
`get_noisy_model_input_and_timesteps` (the five timestep samplings and the input mix),
`apply_model_prediction_type` (raw / additive / sigma_scaled), and `flux_train_network.py`
`get_noise_pred_and_target` (packing, ids, guidance, target = noise − latents). Packing, ids and
the image-size shift use diffusers' own `FluxPipeline` helpers and `calculate_shift`; the `sigma`
sampling reads the shifted schedule of diffusers' `FlowMatchEulerDiscreteScheduler`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from engine.diffusion.loss import diffusion_loss, huber_thresholds

NUM_TRAIN_TIMESTEPS = 1000


@dataclass
class FluxConditioning:
    hidden: torch.Tensor  # T5's per-token states [B, tokens, width]
    pooled: torch.Tensor  # CLIP-L's pooled vector [B, width]
    mask: torch.Tensor | None = None  # T5's attention mask [B, tokens] when flux.apply_t5_attn_mask


@dataclass(frozen=True)
class FlowOptions:
    timestep_sampling: str = "sigma"
    sigmoid_scale: float = 1.0
    discrete_flow_shift: float = 3.0
    model_prediction_type: str = "sigma_scaled"
    guidance_scale: float = 3.5
    ip_gamma: float = 0.0
    ip_gamma_random_strength: bool = False

    @classmethod
    def of(cls, cfg: Any) -> FlowOptions:
        flux, training = cfg.flux, cfg.training
        return cls(flux.timestep_sampling, flux.sigmoid_scale, flux.discrete_flow_shift, flux.model_prediction_type,
                   flux.guidance_scale, training.ip_noise_gamma, training.ip_noise_gamma_random_strength)


def shifted(t: torch.Tensor, shift: float) -> torch.Tensor:
    """t pushed towards noise: shift·t / (1 + (shift − 1)·t) (sd-scripts' `shift`, and `time_shift`
    with sigma 1, which is the same map with shift = e^mu)."""
    return t * shift / (1 + (shift - 1) * t)


def training_schedule(shift: float):
    """The training scheduler sd-scripts builds for Flux: 1000 steps with the discrete flow shift."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=shift)


def sample_sigmas(options: FlowOptions, batch: int, latent_height: int, latent_width: int,
                  generator: torch.Generator | None, schedule_sigmas: torch.Tensor | None = None) -> torch.Tensor:
    """Noise levels σ in (0, 1] for a batch, by `flux.timestep_sampling` (timesteps are σ × 1000)."""
    mode = options.timestep_sampling
    if mode == "uniform":
        return torch.rand(batch, generator=generator)
    if mode in ("sigmoid", "shift", "flux_shift"):
        t = torch.sigmoid(options.sigmoid_scale * torch.randn(batch, generator=generator))
        if mode == "shift":
            return shifted(t, options.discrete_flow_shift)
        if mode == "flux_shift":
            from diffusers.pipelines.flux.pipeline_flux import calculate_shift

            # FLUX.1's resolution-dependent shift: mu grows linearly with the packed image's token count
            mu = calculate_shift((latent_height // 2) * (latent_width // 2))
            return shifted(t, math.exp(mu))
        return t
    # "sigma": a uniform index into the shifted 1000-step schedule
    if schedule_sigmas is None:
        schedule_sigmas = training_schedule(options.discrete_flow_shift).sigmas
    indices = (torch.rand(batch, generator=generator) * NUM_TRAIN_TIMESTEPS).long()
    return schedule_sigmas[indices].float()


def apply_prediction_type(kind: str, prediction: torch.Tensor, noisy: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """sd-scripts `apply_model_prediction_type` (its weighting scheme 'none' weights every sample by 1)."""
    if kind == "additive":
        return prediction + noisy
    if kind == "sigma_scaled":
        return prediction * (-sigmas) + noisy
    return prediction


class FlowMatchingObjective:
    """The Flux loss for one batch; built once per run by the family."""

    def __init__(self, cfg: Any, base: Any, *, generator: torch.Generator, weight_dtype: torch.dtype,
                 device: torch.device):
        self.options = FlowOptions.of(cfg)
        self.training = cfg.training
        self.generator = generator
        self.weight_dtype = weight_dtype
        self.device = device
        self.schedule = training_schedule(self.options.discrete_flow_shift)
        self.schedule_sigmas = self.schedule.sigmas.float()
        # read once from the unwrapped model: accelerate may wrap the denoiser later
        self.guidance = bool(base.unet.config.guidance_embeds)
        self.vae_scale_factor = base.vae_scale_factor

    def loss(self, denoiser: Any, latents: torch.Tensor, cond: FluxConditioning, weights: torch.Tensor,
             size_conds: Any, autocast: Callable[[], Any]) -> torch.Tensor:
        options, generator, device = self.options, self.generator, self.device
        batch, channels, height, width = latents.shape
        noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(device)
        sigmas = sample_sigmas(options, batch, height, width, generator, self.schedule_sigmas).to(device)
        s = sigmas.view(-1, 1, 1, 1)
        mixed = noise
        if options.ip_gamma:  # input perturbation: extra noise in the input only (sd-scripts applies it to Flux)
            gamma = (torch.rand(1, generator=generator).item() * options.ip_gamma
                     if options.ip_gamma_random_strength else options.ip_gamma)
            mixed = noise + gamma * torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(device)
        noisy = ((1.0 - s) * latents.float() + s * mixed.float()).to(latents.dtype)
        prediction = self.predict(denoiser, noisy, sigmas, cond, autocast)
        prediction = apply_prediction_type(options.model_prediction_type, prediction.float(), noisy.float(), s)
        target = noise.float() - latents.float()
        huber_c = None
        if self.training.loss_type in ("huber", "smooth_l1"):
            huber_c = huber_thresholds(self.schedule, sigmas * NUM_TRAIN_TIMESTEPS, self.training.huber_schedule,
                                       self.training.huber_c, self.training.huber_scale)
        return diffusion_loss(prediction, target, weights, self.training.loss_type, huber_c)

    def predict(self, denoiser: Any, noisy: torch.Tensor, sigmas: torch.Tensor, cond: FluxConditioning,
                autocast: Callable[[], Any] | None = None) -> torch.Tensor:
        """The transformer's output for unpacked noisy latents, unpacked again to their shape."""
        from diffusers import FluxPipeline

        batch, channels, height, width = noisy.shape
        device, dtype = noisy.device, self.weight_dtype
        packed = FluxPipeline._pack_latents(noisy.to(dtype), batch, channels, height, width)
        img_ids = FluxPipeline._prepare_latent_image_ids(batch, height // 2, width // 2, device, dtype)
        txt_ids = torch.zeros(cond.hidden.shape[1], 3, device=device, dtype=dtype)
        guidance = torch.full((batch,), self.options.guidance_scale, device=device, dtype=torch.float32) \
            if self.guidance else None
        attention = None
        if cond.mask is not None:  # padding hidden from every joint attention (text tokens come first)
            keep = torch.cat([cond.mask.to(device, torch.bool),
                              torch.ones(batch, packed.shape[1], device=device, dtype=torch.bool)], dim=1)
            attention = {"attention_mask": keep[:, None, None, :]}
        with autocast() if autocast is not None else contextlib.nullcontext():
            out = denoiser(hidden_states=packed, timestep=sigmas.to(dtype), guidance=guidance,
                           pooled_projections=cond.pooled.to(device, dtype), encoder_hidden_states=cond.hidden.to(device, dtype),
                           txt_ids=txt_ids, img_ids=img_ids, joint_attention_kwargs=attention, return_dict=False)[0]
        scale = self.vae_scale_factor
        return FluxPipeline._unpack_latents(out, height * scale, width * scale, scale)


def encode_flux_captions(tokenizers: list[Any], encoders: list[Any], captions: list[str], *, t5_max_tokens: int,
                         t5_mask: bool, device: Any) -> FluxConditioning:
    """CLIP-L's pooled vector and T5's states, tokenized as FluxPipeline does (77 and N tokens, padded)."""
    clip_tokenizer, t5_tokenizer = tokenizers
    clip, t5 = encoders
    ids = clip_tokenizer(captions, padding="max_length", max_length=clip_tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids.to(device)
    pooled = clip(ids, output_hidden_states=False).pooler_output
    tokens = t5_tokenizer(captions, padding="max_length", max_length=t5_max_tokens, truncation=True,
                          return_tensors="pt")
    mask = tokens.attention_mask.to(device) if t5_mask else None
    hidden = t5(tokens.input_ids.to(device), attention_mask=mask)[0]
    return FluxConditioning(hidden, pooled, mask.bool() if mask is not None else None)
