"""SD 3.5's training step: flow matching with SD3's timestep densities and loss weightings, as sd-scripts does it.

Followed (same formulas, own code): sd-scripts `sd3_train_network.py` `get_noise_pred_and_target`
(the transformer's output turned into an estimate of the clean latents, `output · (−σ) + noisy`,
compared with the clean latents), `library/sd3_train_utils.py` `compute_density_for_timestep_sampling`
(uniform, logit-normal or "mode" draws), the `training_shift` push and the `min_timestep` /
`max_timestep` window of `get_noisy_model_input_and_timesteps` (σ = whole timesteps / 1000), and
`compute_loss_weighting_for_sd3` (sigma_sqrt, cosmap). Caption encoding follows
`library/strategy_sd3.py`: CLIP-L's and CLIP-G's penultimate states side by side, zero-padded to
T5's width, followed by T5's states; the pooled vector is both CLIPs' projected outputs; the
attention masks (when asked for) go into the encoders only; the per-encoder caption dropout zeroes
that encoder's part of the conditioning (done here, after the caption cache, so it differs per step).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from engine.diffusion.loss import diffusion_loss, huber_thresholds
from engine.diffusion.text import Conditioning

NUM_TRAIN_TIMESTEPS = 1000
CLIP_TOKENS = 77


@dataclass(frozen=True)
class SD3Options:
    weighting_scheme: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    training_shift: float = 1.0
    min_timestep: int | None = None
    max_timestep: int | None = None
    clip_l_dropout_rate: float = 0.0
    clip_g_dropout_rate: float = 0.0
    t5_dropout_rate: float = 0.0

    @classmethod
    def of(cls, cfg: Any) -> SD3Options:
        sd35, training = cfg.sd35, cfg.training
        return cls(sd35.weighting_scheme, sd35.logit_mean, sd35.logit_std, sd35.mode_scale, sd35.training_shift,
                   training.min_timestep, training.max_timestep, sd35.clip_l_dropout_rate, sd35.clip_g_dropout_rate,
                   sd35.t5_dropout_rate)


def timestep_density(options: SD3Options, batch: int, generator: torch.Generator | None) -> torch.Tensor:
    """u in [0, 1) per image: logit-normal and "mode" favour the middle; the other schemes draw evenly."""
    if options.weighting_scheme == "logit_normal":
        return torch.sigmoid(options.logit_mean + options.logit_std * torch.randn(batch, generator=generator))
    u = torch.rand(batch, generator=generator)
    if options.weighting_scheme == "mode":
        return 1 - u - options.mode_scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
    return u


def draw_timesteps(options: SD3Options, batch: int, generator: torch.Generator | None) -> torch.Tensor:
    """Whole timesteps in [min, max) after the training shift; σ is timestep / 1000 (as sd-scripts)."""
    u = timestep_density(options, batch, generator)
    shift = options.training_shift
    u = u * shift / (1 + (shift - 1) * u)  # >1 pushes towards noise (composition), <1 towards detail
    low = options.min_timestep if options.min_timestep is not None else 0
    high = options.max_timestep if options.max_timestep is not None else NUM_TRAIN_TIMESTEPS
    return (u * (high - low) + low).long().float()


def loss_weighting(scheme: str, sigmas: torch.Tensor) -> torch.Tensor:
    """Per-image loss weight: 1/σ² (sigma_sqrt), the cosine map (cosmap), else 1.

    sigma_sqrt is taken at σ ≥ 1/1000: at σ = 0 the clean-latent estimate equals the input exactly
    (zero loss), and 1/0 would turn that zero into NaN.
    """
    if scheme == "sigma_sqrt":
        return sigmas.clamp(min=1.0 / NUM_TRAIN_TIMESTEPS) ** -2.0
    if scheme == "cosmap":
        return 2 / (math.pi * (1 - 2 * sigmas + 2 * sigmas ** 2))
    return torch.ones_like(sigmas)


def drop_encoders(cond: Conditioning, rates: tuple[float, float, float], widths: tuple[int, int, int, int],
                  generator: torch.Generator | None) -> Conditioning:
    """Zero each encoder's part of a caption's conditioning with its own probability.

    `widths` = CLIP-L state width, CLIP-G state width, CLIP-L pooled width, CLIP-G pooled width.
    """
    if not any(rates):
        return cond
    hidden, pooled = cond.hidden.clone(), cond.pooled.clone()
    l_state, g_state, l_pool, _ = widths
    for i in range(hidden.shape[0]):
        drop_l, drop_g, drop_t5 = (bool(rate) and torch.rand(1, generator=generator).item() < rate for rate in rates)
        if drop_l:
            hidden[i, :CLIP_TOKENS, :l_state] = 0
            pooled[i, :l_pool] = 0
        if drop_g:
            hidden[i, :CLIP_TOKENS, l_state:l_state + g_state] = 0
            pooled[i, l_pool:] = 0
        if drop_t5:
            hidden[i, CLIP_TOKENS:] = 0
    return Conditioning(hidden, pooled)


class SD3Objective:
    """The SD 3.5 loss for one batch; built once per run by the family."""

    def __init__(self, cfg: Any, base: Any, *, generator: torch.Generator, weight_dtype: torch.dtype,
                 device: torch.device):
        from diffusers import FlowMatchEulerDiscreteScheduler

        self.options = SD3Options.of(cfg)
        self.training = cfg.training
        self.generator = generator
        self.weight_dtype = weight_dtype
        self.device = device
        # only its step count is read (the huber schedule), as sd-scripts' get_noise_scheduler
        self.schedule = FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS,
                                                        shift=self.options.training_shift)
        clip_l, clip_g = base.text_encoders[0].config, base.text_encoders[1].config
        self.widths = (clip_l.hidden_size, clip_g.hidden_size, clip_l.projection_dim, clip_g.projection_dim)
        self.rates = (self.options.clip_l_dropout_rate, self.options.clip_g_dropout_rate, self.options.t5_dropout_rate)

    def loss(self, denoiser: Any, latents: torch.Tensor, cond: Conditioning, weights: torch.Tensor,
             size_conds: Any, autocast: Callable[[], Any]) -> torch.Tensor:
        options, generator, device = self.options, self.generator, self.device
        noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(device)
        timesteps = draw_timesteps(options, latents.shape[0], generator).to(device)
        sigmas = (timesteps / NUM_TRAIN_TIMESTEPS).view(-1, 1, 1, 1)
        noisy = (sigmas * noise.float() + (1.0 - sigmas) * latents.float()).to(latents.dtype)
        cond = drop_encoders(cond, self.rates, self.widths, generator)
        output = self.predict(denoiser, noisy, timesteps, cond, autocast)
        estimate = output.float() * (-sigmas) + noisy.float()  # the clean latents the output implies
        weighting = loss_weighting(options.weighting_scheme, sigmas.flatten())
        huber_c = None
        if self.training.loss_type in ("huber", "smooth_l1"):
            huber_c = huber_thresholds(self.schedule, timesteps, self.training.huber_schedule,
                                       self.training.huber_c, self.training.huber_scale)
        return diffusion_loss(estimate, latents.float(), weights * weighting, self.training.loss_type, huber_c)

    def predict(self, denoiser: Any, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning,
                autocast: Callable[[], Any] | None = None) -> torch.Tensor:
        dtype, device = self.weight_dtype, noisy.device
        with autocast() if autocast is not None else contextlib.nullcontext():
            return denoiser(hidden_states=noisy.to(dtype), timestep=timesteps.to(device),
                            encoder_hidden_states=cond.hidden.to(device, dtype),
                            pooled_projections=cond.pooled.to(device, dtype), return_dict=False)[0]


def _clip_states(tokenizer: Any, encoder: Any, captions: list[str], mask: bool, device: Any):
    tokens = tokenizer(captions, padding="max_length", max_length=CLIP_TOKENS, truncation=True, return_tensors="pt")
    attention = tokens.attention_mask.to(device) if mask else None
    out = encoder(tokens.input_ids.to(device), attention_mask=attention, output_hidden_states=True)
    return out.hidden_states[-2], out[0]  # penultimate layer; the projected pooled vector


def encode_sd3_captions(tokenizers: list[Any], encoders: list[Any], captions: list[str], *, t5_max_tokens: int,
                        lg_mask: bool, t5_mask: bool, device: Any) -> Conditioning:
    """[CLIP-L | CLIP-G | zeros] over 77 tokens, then T5's states; pooled = CLIP-L ‖ CLIP-G projections."""
    l_states, l_pooled = _clip_states(tokenizers[0], encoders[0], captions, lg_mask, device)
    g_states, g_pooled = _clip_states(tokenizers[1], encoders[1], captions, lg_mask, device)
    tokens = tokenizers[2](captions, padding="max_length", max_length=t5_max_tokens, truncation=True,
                           return_tensors="pt")
    t5 = encoders[2]
    t5_states = t5(tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device) if t5_mask else None)[0]
    clip = torch.cat([l_states, g_states], dim=-1)
    clip = F.pad(clip, (0, t5_states.shape[-1] - clip.shape[-1])).to(t5_states.dtype)
    return Conditioning(torch.cat([clip, t5_states], dim=-2), torch.cat([l_pooled, g_pooled], dim=-1))
