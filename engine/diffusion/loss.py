"""The diffusion training objective: target, loss and per-sample weights (the noise is in noise.py).

The losses and weights follow sd-scripts (`conditional_loss`, `get_huber_threshold_if_needed`,
`apply_snr_weight`, `apply_debiased_estimation`); the plain l2 path does no extra work.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def training_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
                    v_prediction: bool) -> torch.Tensor:
    return scheduler.get_velocity(latents, noise, timesteps) if v_prediction else noise


def snr_of(scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    alphas_cumprod = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    return alphas_cumprod / (1.0 - alphas_cumprod)


def min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float, v_prediction: bool) -> torch.Tensor:
    """Min-SNR-γ loss weights (Hang et al. 2023): min(SNR, γ)/SNR for ε, min(SNR, γ)/(SNR+1) for v."""
    snr = snr_of(scheduler, timesteps)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1.0) if v_prediction else clipped / snr


def debiased_weights(scheduler, timesteps: torch.Tensor, v_prediction: bool) -> torch.Tensor:
    """sd-scripts `apply_debiased_estimation`: 1/sqrt(SNR) for ε, 1/(SNR+1) for v, SNR capped at 1000."""
    snr = torch.clamp(snr_of(scheduler, timesteps), max=1000.0)
    return 1.0 / (snr + 1.0) if v_prediction else 1.0 / torch.sqrt(snr)


def huber_thresholds(scheduler, timesteps: torch.Tensor, schedule: str, c: float, scale: float) -> torch.Tensor:
    """sd-scripts `get_huber_threshold_if_needed`: the per-sample switch point of the huber losses."""
    if schedule == "exponential":  # 1 at t=0 falling to c at the last timestep, times the scale
        rate = -math.log(c) / scheduler.config.num_train_timesteps
        return torch.exp(-rate * timesteps.float()) * scale
    if schedule == "snr":  # near 1 where the signal dominates, near c where the noise does
        alphas_cumprod = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
        sigmas = ((1.0 - alphas_cumprod) / alphas_cumprod) ** 0.5
        return (1.0 - c) / (1.0 + sigmas) ** 2 + c
    return torch.full(timesteps.shape, c * scale, device=timesteps.device)


def elementwise_loss(prediction: torch.Tensor, target: torch.Tensor, loss_type: str,
                     huber_c: torch.Tensor | None = None) -> torch.Tensor:
    """sd-scripts `conditional_loss` with reduction 'none' (inputs already in float32)."""
    if loss_type == "l2":
        return F.mse_loss(prediction, target, reduction="none")
    if loss_type == "l1":
        return F.l1_loss(prediction, target, reduction="none")
    c = huber_c.view(-1, *([1] * (prediction.ndim - 1)))
    smooth = 2 * (torch.sqrt((prediction - target) ** 2 + c ** 2) - c)
    return c * smooth if loss_type == "huber" else smooth


def diffusion_loss(prediction: torch.Tensor, target: torch.Tensor, sample_weights: torch.Tensor,
                   loss_type: str = "l2", huber_c: torch.Tensor | None = None) -> torch.Tensor:
    errors = elementwise_loss(prediction.float(), target.float(), loss_type, huber_c)
    per_sample = errors.mean(dim=tuple(range(1, errors.ndim)))
    return (per_sample * sample_weights).mean()
